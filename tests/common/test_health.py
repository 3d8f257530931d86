"""``/health``: checks rolled up into healthy / degraded (200) / unhealthy (503)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient

from hivematrix.common.health import Check, HealthChecks, disk_check


@pytest.fixture
def app(build_app) -> APIFlask:
    return build_app()


@pytest.fixture
def checks(app: APIFlask) -> HealthChecks:
    registry: HealthChecks = app.extensions["hivematrix.health"]
    return registry


@pytest.fixture
def client(app: APIFlask) -> FlaskClient:
    return app.test_client()


def healthy() -> Check:
    return Check("healthy", {"pool": 5})


def degraded() -> Check:
    return Check("degraded", {"lag_seconds": 40})


def unhealthy() -> Check:
    return Check("unhealthy", {"reason": "connection refused"})


def raises() -> Check:
    raise ConnectionError("password=hunter2 rejected")


def test_healthy_service_answers_200(client: FlaskClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json["status"] == "healthy"
    assert response.json["service"] == "svc"


def test_report_lists_each_check_with_details_and_latency(client: FlaskClient,
                                                          checks: HealthChecks) -> None:
    checks.add("database", healthy)
    report = client.get("/health").json["checks"]
    assert set(report) == {"disk", "database"}
    assert report["database"]["status"] == "healthy"
    assert report["database"]["pool"] == 5
    assert report["database"]["latency_ms"] >= 0
    assert 0 <= report["disk"]["usage_percent"] <= 100


def test_report_timestamp_is_current_utc(client: FlaskClient) -> None:
    stamp = datetime.fromisoformat(client.get("/health").json["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - stamp) < timedelta(seconds=5)


def test_health_needs_no_token(client: FlaskClient) -> None:
    assert client.get("/health").status_code == 200


def test_failing_non_critical_check_degrades_with_200(client: FlaskClient,
                                                      checks: HealthChecks) -> None:
    checks.add("cache", unhealthy, critical=False)
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json["status"] == "degraded"
    assert response.json["checks"]["cache"]["status"] == "unhealthy"
    assert response.json["checks"]["cache"]["reason"] == "connection refused"


def test_degraded_critical_check_degrades_with_200(client: FlaskClient,
                                                   checks: HealthChecks) -> None:
    checks.add("replica", degraded)
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json["status"] == "degraded"


def test_failing_critical_check_is_unhealthy_503(client: FlaskClient,
                                                 checks: HealthChecks) -> None:
    checks.add("database", unhealthy)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json["status"] == "unhealthy"
    assert response.json["checks"]["database"]["status"] == "unhealthy"


def test_unhealthy_wins_over_degraded_whatever_the_order(client: FlaskClient,
                                                         checks: HealthChecks) -> None:
    checks.add("database", unhealthy)
    checks.add("replica", degraded)
    checks.add("cache", healthy)
    assert client.get("/health").json["status"] == "unhealthy"


def test_503_health_is_still_the_json_report(client: FlaskClient, checks: HealthChecks) -> None:
    checks.add("database", unhealthy)
    response = client.get("/health")
    assert response.content_type == "application/json"
    assert "checks" in response.json


def test_check_that_raises_is_reported_as_unhealthy(client: FlaskClient,
                                                    checks: HealthChecks) -> None:
    checks.add("database", raises)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json["checks"]["database"] == {
        "status": "unhealthy", "error": "ConnectionError",
        "latency_ms": response.json["checks"]["database"]["latency_ms"]}


def test_check_that_raises_does_not_leak_its_message(client: FlaskClient,
                                                     checks: HealthChecks) -> None:
    checks.add("database", raises)
    assert "hunter2" not in client.get("/health").get_data(as_text=True)


def test_non_critical_check_that_raises_only_degrades(client: FlaskClient,
                                                      checks: HealthChecks) -> None:
    checks.add("cache", raises, critical=False)
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json["status"] == "degraded"


def test_other_checks_still_run_after_one_raises(client: FlaskClient,
                                                 checks: HealthChecks) -> None:
    checks.add("broken", raises)
    checks.add("database", healthy)
    assert client.get("/health").json["checks"]["database"]["status"] == "healthy"


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Check:
        self.calls += 1
        return Check("healthy")


def test_deep_checks_are_skipped_by_default(client: FlaskClient, checks: HealthChecks) -> None:
    expensive = Counting()
    checks.add("upstream", expensive, deep=True)
    assert "upstream" not in client.get("/health").json["checks"]
    assert expensive.calls == 0


@pytest.mark.parametrize("flag", ["1", "true", "yes"])
def test_deep_checks_run_with_deep_flag(client: FlaskClient, checks: HealthChecks,
                                        flag: str) -> None:
    expensive = Counting()
    checks.add("upstream", expensive, deep=True)
    assert "upstream" in client.get(f"/health?deep={flag}").json["checks"]
    assert expensive.calls == 1


def test_deep_flag_zero_skips_deep_checks(client: FlaskClient, checks: HealthChecks) -> None:
    expensive = Counting()
    checks.add("upstream", expensive, deep=True)
    client.get("/health?deep=0")
    assert expensive.calls == 0


def test_failing_deep_check_counts_only_when_run(client: FlaskClient,
                                                 checks: HealthChecks) -> None:
    checks.add("upstream", unhealthy, deep=True)
    assert client.get("/health").status_code == 200
    assert client.get("/health?deep=1").status_code == 503


# --- disk ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("degraded_at", "unhealthy_at", "expected"), [
    (100, 100, "healthy"), (0, 100, "degraded"), (0, 0, "unhealthy"), (100, 0, "unhealthy"),
])
def test_disk_check_thresholds(tmp_path: Path, degraded_at: float, unhealthy_at: float,
                               expected: str) -> None:
    outcome = disk_check(str(tmp_path), degraded_at, unhealthy_at)()
    assert outcome.status == expected


def test_disk_check_reports_usage(tmp_path: Path) -> None:
    details = disk_check(str(tmp_path))().details
    assert details["total_gb"] > 0
    assert 0 <= details["free_gb"] <= details["total_gb"]
    assert 0 <= details["usage_percent"] <= 100


def test_disk_check_of_a_missing_path_is_reported_not_raised(tmp_path: Path) -> None:
    registry = HealthChecks("svc")
    registry.add("disk", disk_check(str(tmp_path / "gone")))
    report = registry.run()
    assert report["status"] == "unhealthy"
    assert report["checks"]["disk"]["error"] == "FileNotFoundError"


def test_disk_thresholds_come_from_settings_degraded(build_app) -> None:
    client = build_app(DISK_DEGRADED_PERCENT=0.0).test_client()
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json["checks"]["disk"]["status"] == "degraded"


def test_disk_thresholds_come_from_settings_unhealthy(build_app) -> None:
    client = build_app(DISK_DEGRADED_PERCENT=0.0, DISK_UNHEALTHY_PERCENT=0.0).test_client()
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json["checks"]["disk"]["status"] == "unhealthy"
