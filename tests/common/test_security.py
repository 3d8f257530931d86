"""CSRF tokens on browser-submittable requests, and security headers on every response."""

import re

import pytest
from apiflask import APIBlueprint, APIFlask
from flask import render_template_string, request
from flask.testing import FlaskClient

from hivematrix.common.auth import token_required
from hivematrix.common.testing import TokenFactory

bp = APIBlueprint("secured", __name__)

FORM_PAGE = '<form method="post"><input name="csrf_token" value="{{ csrf_token() }}"></form>'


@bp.get("/form")
@token_required
def form_page() -> str:
    return render_template_string(FORM_PAGE)


@bp.post("/form")
@token_required
def form_submit() -> dict[str, object]:
    return {"saved": request.form.get("title") or request.get_json(silent=True)}


@bp.route("/item", methods=["PUT", "PATCH", "DELETE"])
def change_item() -> dict[str, str]:
    return {"changed": request.method}


@bp.get("/public")
def public() -> dict[str, str]:
    return {"hello": "world"}


@pytest.fixture
def app(build_app) -> APIFlask:
    return build_app(bp)


@pytest.fixture
def client(app: APIFlask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def auth(tokens: TokenFactory) -> dict[str, str]:
    return tokens.headers(tokens.user("technician"))


def csrf_token(client: FlaskClient, auth: dict[str, str]) -> str:
    page = client.get("/form", headers=auth).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


# --- CSRF ----------------------------------------------------------------------------------

def test_bodyless_post_with_its_own_authorization_needs_no_csrf_token(
        client: FlaskClient, auth: dict[str, str]) -> None:
    assert client.post("/form", headers=auth).status_code == 200


def test_bodyless_post_without_authorization_needs_a_csrf_token(client: FlaskClient) -> None:
    response = client.post("/form")
    assert response.status_code == 400
    assert "CSRF" in response.json["detail"]


def test_empty_form_post_with_authorization_still_needs_a_csrf_token(
        client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post("/form", headers={**auth,
                                             "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400


def test_form_post_without_csrf_token_is_400(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post("/form", headers=auth, data={"title": "x"})
    assert response.status_code == 400
    assert response.content_type == "application/problem+json"
    assert response.json["detail"] == "The CSRF token is missing."


def test_form_post_with_token_from_the_page_passes(client: FlaskClient,
                                                   auth: dict[str, str]) -> None:
    token = csrf_token(client, auth)
    response = client.post("/form", headers=auth, data={"csrf_token": token, "title": "x"})
    assert response.status_code == 200
    assert response.json == {"saved": "x"}


def test_form_post_with_a_made_up_token_is_400(client: FlaskClient,
                                               auth: dict[str, str]) -> None:
    csrf_token(client, auth)  # the session exists, the token does not match it
    response = client.post("/form", headers=auth, data={"csrf_token": "made.up", "title": "x"})
    assert response.status_code == 400


def test_token_from_another_browser_session_is_400(app: APIFlask, auth: dict[str, str]) -> None:
    token = csrf_token(app.test_client(), auth)
    response = app.test_client().post("/form", headers=auth,
                                      data={"csrf_token": token, "title": "x"})
    assert response.status_code == 400


def test_csrf_header_works_for_scripts(client: FlaskClient, auth: dict[str, str]) -> None:
    token = csrf_token(client, auth)
    response = client.post("/form", headers={**auth, "X-CSRFToken": token},
                           data={"title": "x"})
    assert response.status_code == 200


def test_json_post_needs_no_csrf_token(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post("/form", headers=auth, json={"title": "x"})
    assert response.status_code == 200
    assert response.json == {"saved": {"title": "x"}}


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data; boundary=x"])
def test_other_cross_site_submittable_types_need_a_token(client: FlaskClient,
                                                         auth: dict[str, str],
                                                         content_type: str) -> None:
    response = client.post("/form", headers={**auth, "Content-Type": content_type},
                           data=b'{"title": "x"}')
    assert response.status_code == 400


def test_form_post_to_a_missing_route_is_404_not_a_csrf_error(client: FlaskClient) -> None:
    assert client.post("/nowhere", data={"a": "b"}).status_code == 404


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_methods_no_form_can_send_need_no_token(client: FlaskClient, method: str) -> None:
    # Cross-site, a browser sends these only after a CORS preflight, which is never granted.
    response = client.open("/item", method=method, data={"x": "1"})
    assert response.status_code == 200 and response.json == {"changed": method}


def test_safe_methods_need_no_token(client: FlaskClient, auth: dict[str, str]) -> None:
    assert client.get("/form", headers=auth).status_code == 200
    assert client.head("/public").status_code == 200


def test_session_cookie_is_named_per_service_and_http_only(client: FlaskClient,
                                                           auth: dict[str, str]) -> None:
    cookie = client.get("/form", headers=auth).headers["Set-Cookie"]
    assert cookie.startswith("hm_svc_session=")
    assert "HttpOnly" in cookie


def test_session_cookie_is_same_site_lax(client: FlaskClient, auth: dict[str, str]) -> None:
    cookie = client.get("/form", headers=auth).headers["Set-Cookie"]
    assert "SameSite=Lax" in cookie


# --- headers -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/public", "/nowhere", "/health"])
def test_security_headers_on_every_response(client: FlaskClient, path: str) -> None:
    headers = client.get(path).headers
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "object-src 'none'" in csp


def test_pages_allow_no_inline_scripts(client: FlaskClient, auth: dict[str, str]) -> None:
    csp = client.get("/form", headers=auth).headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp


def test_api_explorer_may_run_its_inline_script(client: FlaskClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert "script-src 'self' 'unsafe-inline'" in response.headers["Content-Security-Policy"]


def test_authenticated_responses_are_not_cached(client: FlaskClient,
                                                auth: dict[str, str]) -> None:
    assert client.get("/form", headers=auth).headers["Cache-Control"] == "no-store"


def test_failed_authenticated_responses_are_not_cached(client: FlaskClient) -> None:
    response = client.get("/form", headers={"Authorization": "Bearer forged"})
    assert response.status_code == 401
    assert response.headers["Cache-Control"] == "no-store"


def test_anonymous_responses_may_be_cached(client: FlaskClient) -> None:
    assert "Cache-Control" not in client.get("/public").headers


def test_hsts_only_over_https(client: FlaskClient) -> None:
    assert "Strict-Transport-Security" not in client.get("/public").headers
    secure = client.get("/public", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_hsts_when_nexus_forwards_https(client: FlaskClient) -> None:
    response = client.get("/public", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" in response.headers
