"""Every HTTP error is an RFC 7807 problem; browsers get the same content as an escaped page."""

import json
import re

import apiflask
import pytest
from apiflask import APIBlueprint, APIFlask, Schema
from apiflask.fields import Integer, String
from flask import abort, request
from flask.testing import FlaskClient

from hivematrix.common.errors import problem_slug, refusals_for
from hivematrix.common.ratelimit import limit

bp = APIBlueprint("errs", __name__)

SCRIPT = "<script>alert('x')</script>"


class ItemIn(Schema):
    name = String(required=True)
    count = Integer()


@bp.get("/ok")
def ok() -> dict[str, str]:
    return {"ok": "yes"}


@bp.post("/items")
@bp.input(ItemIn)
def add_item(json_data: dict) -> dict:
    return json_data


@bp.post("/echo")
def echo() -> dict:
    return {"length": len(request.get_json())}


@bp.get("/boom")
def boom() -> dict:
    raise RuntimeError("database password is hunter2")


@bp.get("/reject")
def reject() -> dict:
    abort(400, description=f"Name {SCRIPT} is not allowed.")


@bp.get("/conflict")
def conflict() -> dict:
    apiflask.abort(409, "Already there.", extra_data={"existing_id": 7})


@bp.get("/unavailable")
def unavailable() -> dict:
    apiflask.abort(503, "database at 10.1.2.3 refused password", extra_data={"dsn": "x"},
                   headers={"Retry-After": "5"})


class Refused(Exception):
    """A business module's refusal: a status and the input field at fault."""

    def __init__(self, message: str, status: int, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.field = status, field


@bp.get("/refused/<int:status>")
@refusals_for(Refused, rollback=False)
def refused(status: int) -> dict[str, str]:
    field = request.args.get("field")
    raise Refused(f"{field or 'it'}: {SCRIPT} is not allowed", status, field)


@bp.get("/limited")
@limit("1 per minute")
def limited() -> dict[str, str]:
    return {"ok": "yes"}


@pytest.fixture
def app(build_app) -> APIFlask:
    # TESTING would re-raise view exceptions in the test client instead of answering 500.
    return build_app(bp, TESTING=False, MAX_CONTENT_LENGTH=64)


@pytest.fixture
def client(app: APIFlask) -> FlaskClient:
    return app.test_client()


HTML = {"Accept": "text/html"}
BROWSER_ACCEPT = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response.content_type == "application/problem+json"
    body = json.loads(response.get_data(as_text=True))
    assert body["status"] == status
    assert body["type"] == f"about:blank#{problem_slug(status)}"
    assert body["title"]
    assert body["detail"]
    return body


def test_problem_slugs_follow_the_status_phrase() -> None:
    assert problem_slug(404) == "not-found"
    assert problem_slug(429) == "too-many-requests"
    assert problem_slug(418) == "im-a-teapot"


def test_404_is_a_problem_naming_the_path(client: FlaskClient) -> None:
    body = assert_problem(client.get("/no/such/page"), 404)
    assert body["title"] == "Not Found"
    assert body["instance"] == "/no/such/page"


def test_problem_carries_the_request_correlation_id(client: FlaskClient) -> None:
    body = assert_problem(client.get("/nope", headers={"X-Correlation-ID": "abc-123"}), 404)
    assert body["correlation_id"] == "abc-123"


def test_405_is_a_problem_with_allow_header(client: FlaskClient) -> None:
    response = client.delete("/ok")
    assert_problem(response, 405)
    allowed = {method.strip() for method in response.headers["Allow"].split(",")}
    assert "GET" in allowed
    assert "DELETE" not in allowed


def test_form_post_to_a_get_route_is_405_not_a_csrf_error(client: FlaskClient) -> None:
    assert_problem(client.post("/ok", data={"a": "b"}), 405)


def test_413_for_a_body_over_max_content_length(client: FlaskClient) -> None:
    response = client.post("/echo", json={"blob": "x" * 200})
    assert_problem(response, 413)


def test_body_under_max_content_length_is_accepted(client: FlaskClient) -> None:
    response = client.post("/echo", json={"blob": "x"})
    assert response.status_code == 200


def test_429_has_retry_after_header_and_field(client: FlaskClient) -> None:
    assert client.get("/limited").status_code == 200
    body = assert_problem(response := client.get("/limited"), 429)
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert body["retry_after"] == retry_after


def test_429_from_the_default_limit(build_app) -> None:
    client = build_app(bp, RATELIMIT_DEFAULT="2 per minute").test_client()
    statuses = [client.get("/ok").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    response = client.get("/ok")
    assert_problem(response, 429)
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_500_hides_the_exception(client: FlaskClient) -> None:
    response = client.get("/boom")
    body = assert_problem(response, 500)
    text = response.get_data(as_text=True)
    assert body["detail"] == "The server could not complete the request."
    for leak in ("hunter2", "RuntimeError", "Traceback", "test_errors.py"):
        assert leak not in text


def test_500_names_the_correlation_id_of_the_logged_traceback(client: FlaskClient) -> None:
    response = client.get("/boom", headers={"X-Correlation-ID": "trace-me-1"})
    assert assert_problem(response, 500)["correlation_id"] == "trace-me-1"
    assert response.headers["X-Correlation-ID"] == "trace-me-1"


def test_500_page_for_browsers_hides_the_exception(client: FlaskClient) -> None:
    response = client.get("/boom", headers=HTML)
    page = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "hunter2" not in page and "Traceback" not in page
    assert "500 Internal Server Error" in page
    assert re.search(r"Reference: <code>[0-9a-f]{32}</code>", page)


def test_5xx_abort_message_is_not_shown_either(client: FlaskClient) -> None:
    response = client.get("/unavailable")
    body = assert_problem(response, 503)
    assert body["detail"] == "The server could not complete the request."
    assert "10.1.2.3" not in response.get_data(as_text=True)
    assert "dsn" not in body
    assert response.headers["Retry-After"] == "5"


def test_validation_error_names_the_missing_field(client: FlaskClient) -> None:
    body = assert_problem(client.post("/items", json={"count": 1}), 422)
    assert "name" in body["errors"]["json"]
    assert "json.name" in body["detail"]


def test_validation_error_names_the_wrongly_typed_field(client: FlaskClient) -> None:
    body = assert_problem(client.post("/items", json={"name": "a", "count": "many"}), 422)
    assert list(body["errors"]["json"]) == ["count"]
    assert "json.count: Not a valid integer." in body["detail"]


def test_valid_input_reaches_the_view(client: FlaskClient) -> None:
    response = client.post("/items", json={"name": "a", "count": 2})
    assert response.status_code == 200
    assert response.json == {"name": "a", "count": 2}


def test_apiflask_abort_keeps_message_and_extra_data(client: FlaskClient) -> None:
    body = assert_problem(client.get("/conflict"), 409)
    assert body["detail"] == "Already there."
    assert body["existing_id"] == 7


def test_werkzeug_abort_description_becomes_the_detail(client: FlaskClient) -> None:
    body = assert_problem(client.get("/reject"), 400)
    assert body["detail"] == f"Name {SCRIPT} is not allowed."


@pytest.mark.parametrize("accept", [{}, {"Accept": "*/*"}, {"Accept": "application/json"},
                                    {"Accept": "application/problem+json"}])
def test_api_clients_get_problem_json(client: FlaskClient, accept: dict[str, str]) -> None:
    assert_problem(client.get("/nope", headers=accept), 404)


@pytest.mark.parametrize("accept", [HTML, BROWSER_ACCEPT])
def test_browsers_get_an_html_error_page(client: FlaskClient, accept: dict[str, str]) -> None:
    response = client.get("/nope", headers=accept)
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "404 Not Found" in response.get_data(as_text=True)


def test_html_error_page_escapes_user_controlled_detail(client: FlaskClient) -> None:
    page = client.get("/reject", headers=HTML).get_data(as_text=True)
    assert SCRIPT not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page


def test_html_error_page_escapes_the_path(client: FlaskClient) -> None:
    page = client.get("/%3Cscript%3Ealert(1)%3C/script%3E", headers=HTML).get_data(as_text=True)
    assert "<script>" not in page


def test_html_validation_error_lists_the_field(client: FlaskClient) -> None:
    response = client.post("/items", json={}, headers=HTML)
    assert response.status_code == 422
    assert "json.name" in response.get_data(as_text=True)


def test_openapi_documents_errors_as_problems(client: FlaskClient) -> None:
    spec = client.get("/apispec.json").json
    responses = spec["paths"]["/items"]["post"]["responses"]
    assert "422" in responses
    schema_text = json.dumps(spec)
    assert "retry_after" in schema_text and "correlation_id" in schema_text


@pytest.mark.parametrize(("status", "title", "location"), [
    (400, "Bad query parameter", "query"), (404, "Not found", "json"),
    (409, "Conflict", "json"), (422, "Refused", "json")])
def test_a_business_refusal_is_a_problem_naming_its_field(
        client: FlaskClient, status: int, title: str, location: str) -> None:
    body = assert_problem(client.get(f"/refused/{status}?field=rate"), status)
    assert body["title"] == title
    assert body["errors"] == {location: {"rate": [f"rate: {SCRIPT} is not allowed"]}}
    page = client.get(f"/refused/{status}?field=rate", headers=HTML).get_data(as_text=True)
    assert SCRIPT not in page and "&lt;script&gt;" in page


def test_a_refusal_without_a_field_names_none(client: FlaskClient) -> None:
    body = assert_problem(client.get("/refused/409"), 409)
    assert "errors" not in body
