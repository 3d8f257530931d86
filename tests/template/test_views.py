"""The template's pages and API at each permission level, and for service callers."""

import re

import pytest
from flask.testing import FlaskClient

from hivematrix.common.testing import TokenFactory

LEVELS = ["admin", "technician", "billing", "client"]
HTML = {"Accept": "text/html"}


def csrf_token(client: FlaskClient, headers: dict[str, str]) -> str:
    page = client.get("/", headers=headers).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the note form carries a CSRF token"
    return match.group(1)


@pytest.mark.parametrize("level", LEVELS)
def test_index_shows_name_and_permission_level(client: FlaskClient, as_user, level: str) -> None:
    response = client.get("/", headers={**as_user(level), **HTML})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f"Hello, {level.title()} User!" in page
    assert f'data-testid="permission-level">{level}<' in page


def test_index_escapes_user_controlled_text(client: FlaskClient, as_user) -> None:
    page = client.get("/", headers=as_user("admin", name="<script>alert(1)</script>"))
    text = page.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


@pytest.mark.parametrize(("level", "has_form"), [("admin", True), ("technician", True),
                                                 ("billing", False), ("client", False)])
def test_note_form_only_for_writers(client: FlaskClient, as_user, level: str,
                                    has_form: bool) -> None:
    page = client.get("/", headers=as_user(level)).get_data(as_text=True)
    assert ('name="csrf_token"' in page) is has_form


def test_index_without_token_is_401(client: FlaskClient) -> None:
    response = client.get("/", headers=HTML)
    assert response.status_code == 401
    assert "text/html" in response.content_type


def test_index_refuses_service_callers(client: FlaskClient, tokens: TokenFactory) -> None:
    response = client.get("/", headers=tokens.headers(tokens.service("helm", "template")))
    assert response.status_code == 403


def test_add_note_through_the_form(client: FlaskClient, as_user) -> None:
    headers = as_user("technician")
    token = csrf_token(client, headers)
    form = {"csrf_token": token, "title": "Swap UPS battery", "body": "Rack 2"}
    response = client.post("/notes", headers=headers, data=form)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/")
    page = client.get("/", headers=headers).get_data(as_text=True)
    assert "Swap UPS battery" in page and "technician-user" in page


def test_form_without_csrf_token_is_rejected(client: FlaskClient, as_user) -> None:
    response = client.post("/notes", headers=as_user("admin"), data={"title": "x"})
    assert response.status_code == 400
    assert response.json["detail"] == "The CSRF token is missing."
    assert client.get("/api/data", headers=as_user("admin")).json["note_count"] == 0


def test_blank_title_rerenders_form_with_error(client: FlaskClient, as_user) -> None:
    headers = as_user("admin")
    token = csrf_token(client, headers)
    response = client.post("/notes", headers=headers,
                           data={"csrf_token": token, "title": "   ", "body": "<b>kept</b>"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Title must not be blank." in page
    assert "&lt;b&gt;kept&lt;/b&gt;" in page
    assert client.get("/api/data", headers=headers).json["note_count"] == 0


@pytest.mark.parametrize("level", ["billing", "client"])
def test_readers_cannot_post_notes(client: FlaskClient, as_user, level: str) -> None:
    response = client.post("/api/notes", headers=as_user(level), json={"title": "x"})
    assert response.status_code == 403
    assert response.content_type == "application/problem+json"


@pytest.mark.parametrize(("level", "status"), [("admin", 200), ("technician", 403),
                                               ("billing", 403), ("client", 403)])
def test_admin_page_is_admin_only(client: FlaskClient, as_user, level: str, status: int) -> None:
    assert client.get("/admin", headers=as_user(level)).status_code == status


def test_admin_page_refuses_service_tokens(client: FlaskClient, tokens: TokenFactory) -> None:
    response = client.get("/admin", headers=tokens.headers(tokens.service("helm", "template")))
    assert response.status_code == 403


@pytest.mark.parametrize("level", LEVELS)
def test_api_data_for_users(client: FlaskClient, as_user, level: str) -> None:
    response = client.get("/api/data", headers=as_user(level))
    assert response.status_code == 200
    assert response.json["caller"] == "user"
    assert response.json["permission_level"] == level
    assert response.json["notes"] == []


def test_api_data_for_helm_service(client: FlaskClient, tokens: TokenFactory, as_user) -> None:
    client.post("/api/notes", headers=as_user("admin"), json={"title": "one"})
    response = client.get("/api/data", headers=tokens.headers(tokens.service("helm", "template")))
    assert response.status_code == 200
    assert response.json == {"caller": "service", "name": "helm", "note_count": 1}


def test_api_data_refuses_other_services(client: FlaskClient, tokens: TokenFactory) -> None:
    response = client.get("/api/data", headers=tokens.headers(tokens.service("codex", "template")))
    assert response.status_code == 403
    assert "codex" in response.json["detail"]


def test_api_data_refuses_service_token_for_another_service(client: FlaskClient,
                                                           tokens: TokenFactory) -> None:
    token = tokens.service("helm", "ledger")
    response = client.get("/api/data", headers=tokens.headers(token))
    assert response.status_code == 401


def test_api_data_without_token_is_problem_json(client: FlaskClient) -> None:
    response = client.get("/api/data")
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"
    assert response.json["type"] == "about:blank#unauthorized"
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")


def test_api_add_note(client: FlaskClient, as_user) -> None:
    response = client.post("/api/notes", headers=as_user("technician"),
                           json={"title": "Renew cert", "body": "before Friday"})
    assert response.status_code == 201
    assert response.json["title"] == "Renew cert"
    assert response.json["created_by"] == "technician-user"
    listed = client.get("/api/data", headers=as_user("client")).json["notes"]
    assert [note["title"] for note in listed] == ["Renew cert"]


@pytest.mark.parametrize(("body", "field"), [({}, "title"), ({"title": ""}, "title"),
                                             ({"title": "x" * 151}, "title"),
                                             ({"title": "ok", "body": 5}, "body")])
def test_api_add_note_names_the_bad_field(client: FlaskClient, as_user, body, field) -> None:
    response = client.post("/api/notes", headers=as_user("admin"), json=body)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert field in response.json["errors"]["json"]
    assert f"json.{field}" in response.json["detail"]
    assert client.get("/api/data", headers=as_user("admin")).json["note_count"] == 0


def test_openapi_documents_the_api(client: FlaskClient) -> None:
    spec = client.get("/apispec.json").json
    assert spec["openapi"].startswith("3.")
    assert {"/api/data", "/api/notes", "/health"} <= set(spec["paths"])
    assert spec["paths"]["/api/data"]["get"]["security"] == [{"BearerAuth": []}]
