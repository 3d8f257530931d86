"""``/metrics``: request counts and latency per endpoint, in Prometheus text format."""

import pytest
from apiflask import APIBlueprint, APIFlask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from hivematrix.common.auth import token_required

bp = APIBlueprint("measured", __name__)


@bp.get("/ping")
def ping() -> dict[str, str]:
    return {"pong": "yes"}


@bp.get("/items/<int:item_id>")
def item(item_id: int) -> dict[str, int]:
    return {"id": item_id}


@bp.get("/private")
@token_required
def private() -> dict[str, str]:
    return {}


@bp.get("/boom")
def boom() -> dict[str, str]:
    raise RuntimeError("boom")


@pytest.fixture
def app(build_app) -> APIFlask:
    return build_app(bp)


@pytest.fixture
def client(app: APIFlask) -> FlaskClient:
    return app.test_client()


def samples(client: FlaskClient, name: str) -> dict[tuple[str, str, str], float]:
    """``(method, endpoint, status) -> value`` of one sample name (the service label checked)."""
    text = client.get("/metrics").get_data(as_text=True)
    found: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                assert sample.labels["service"] == "svc"
                key = (sample.labels["method"], sample.labels["endpoint"],
                       sample.labels.get("status", ""))
                found[key] = sample.value
    return found


def requests_total(client: FlaskClient) -> dict[tuple[str, str, str], float]:
    return samples(client, "hivematrix_http_requests_total")


def test_request_is_counted_with_its_endpoint(client: FlaskClient) -> None:
    client.get("/ping")
    assert requests_total(client)[("GET", "measured.ping", "200")] == 1


def test_raw_exposition_names_the_counter_and_endpoint(client: FlaskClient) -> None:
    client.get("/ping")
    text = client.get("/metrics").get_data(as_text=True)
    assert "hivematrix_http_requests_total{" in text
    assert 'endpoint="measured.ping"' in text


def test_metrics_use_the_prometheus_content_type(client: FlaskClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"


def test_repeated_requests_add_up(client: FlaskClient) -> None:
    for _ in range(3):
        client.get("/ping")
    assert requests_total(client)[("GET", "measured.ping", "200")] == 3


def test_paths_with_parameters_share_one_endpoint_label(client: FlaskClient) -> None:
    for item_id in (1, 2, 3):
        client.get(f"/items/{item_id}")
    counted = requests_total(client)
    assert counted[("GET", "measured.item", "200")] == 3
    assert not any("/items/" in endpoint for _, endpoint, _ in counted)


def test_unmatched_paths_share_one_label(client: FlaskClient) -> None:
    client.get("/random-1")
    client.get("/random-2")
    assert requests_total(client)[("GET", "unmatched", "404")] == 2


def test_status_label_records_failures(client: FlaskClient) -> None:
    client.get("/private")
    assert requests_total(client)[("GET", "measured.private", "401")] == 1


def test_unhandled_exceptions_are_counted_as_500(build_app) -> None:
    client = build_app(bp, TESTING=False).test_client()
    client.get("/boom")
    assert requests_total(client)[("GET", "measured.boom", "500")] == 1


def test_latency_is_observed_per_endpoint(client: FlaskClient) -> None:
    client.get("/ping")
    client.get("/ping")
    counts = samples(client, "hivematrix_http_request_duration_seconds_count")
    assert counts[("GET", "measured.ping", "")] == 2
    total = samples(client, "hivematrix_http_request_duration_seconds_sum")
    assert total[("GET", "measured.ping", "")] > 0


def test_scrapes_are_counted_under_their_own_endpoint(client: FlaskClient) -> None:
    client.get("/metrics")
    assert requests_total(client)[("GET", "hivematrix.metrics_view", "200")] == 1


def test_apps_in_one_process_keep_separate_figures(build_app) -> None:
    first = build_app(bp).test_client()
    second = build_app(bp).test_client()
    first.get("/ping")
    assert ("GET", "measured.ping", "200") not in requests_total(second)
