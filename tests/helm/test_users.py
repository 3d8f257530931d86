"""Helm's users and groups pages, against a real identity service and the Keycloak fake.

The identity tests run the whole platform as processes (identity, Core, Helm, Nexus) and sign
in through Nexus, so Helm acts on identity with the administrator's real token. The Keycloak
tests run Helm in this process against :mod:`tests.fakes.keycloak`, set up the way
``hivematrix keycloak configure`` leaves a realm.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

from hivematrix.cli.keycloak import KeycloakSettings, configure, connect, write_master_config
from hivematrix.common.db import Database
from hivematrix.common.testing import free_port, watched_page
from hivematrix.helm import create_app
from hivematrix.helm.directory import (
    DirectoryUser,
    chosen_provider,
    parse_new_user,
)
from hivematrix.identity import accounts, passwords
from tests.fakes.keycloak import ADMIN_PASSWORD, ADMIN_USER, FakeKeycloak, running
from tests.nexus.conftest import PASSWORD, Platform

HTML = {"Accept": "text/html"}
XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
TEMPORARY = re.compile(r'data-testid="temporary-password">([^<]+)<')


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def shown_password(page: str) -> str:
    found = TEMPORARY.search(page)
    assert found, page
    return html.unescape(found.group(1))


def level_of(page: str) -> str:
    found = re.search(r'data-testid="user-level">([^<]+)<', page)
    assert found, page
    return found.group(1)


# --- plain functions -------------------------------------------------------------------------

def test_the_provider_follows_the_setting_and_master_config() -> None:
    written_by_identity = {"url": "http://127.0.0.1:8080", "realm": "hivematrix"}
    written_by_configure = {**written_by_identity, "issuer": "https://kc.example/realms/x"}
    assert chosen_provider("auto", written_by_identity) == "identity"
    assert chosen_provider("auto", {}) == "identity"
    assert chosen_provider("auto", written_by_configure) == "keycloak"
    assert chosen_provider("identity", written_by_configure) == "identity"
    assert chosen_provider("KEYCLOAK", {}) == "keycloak"


def test_levels_come_from_cores_mapping() -> None:
    def user(*groups: str) -> DirectoryUser:
        return DirectoryUser("u", "", None, groups, True)

    assert user("billing", "admins").level == "admin"
    assert user("/technicians").level == "technician"
    assert user("billing").level == "billing"
    assert user("client").level == user("acme-dental").level == user().level == "client"


def test_the_create_form_is_checked_field_by_field() -> None:
    known = ["admins", "billing"]
    new, errors = parse_new_user({"username": " Carol ", "name": "Carol C", "email": ""},
                                 ["billing", "billing"], known)
    assert errors == {} and new is not None
    assert (new.username, new.email, new.groups) == ("carol", None, ("billing",))
    new, errors = parse_new_user({"username": "a b/c", "name": "x\x00", "email": "no-at"},
                                 ["wizards"], known)
    assert new is None
    assert set(errors) == {"username", "name", "email", "groups"}
    assert "wizards" in errors["groups"][0]
    assert parse_new_user({"username": ""}, [], known)[1] == {
        "username": ["A username is required."]}


# --- the real identity service, through Nexus ------------------------------------------------

def identity_record(platform: Platform, username: str) -> dict[str, Any]:
    """The user's row in identity's database."""
    database = Database(f"sqlite:///{platform.home}/identity/identity.db")
    try:
        with database.transaction() as session:
            user = accounts.get_user(session, username)
            return {"subject": user.subject, "enabled": user.enabled,
                    "must_change_password": user.must_change_password,
                    "password_hash": user.password_hash, "groups": sorted(user.group_names)}
    finally:
        database.dispose()


def identity_user(platform: Platform, username: str) -> tuple[bool, bool, str | None, list[str]]:
    """(enabled, must change password, password hash, groups) from identity's database."""
    row = identity_record(platform, username)
    return row["enabled"], row["must_change_password"], row["password_hash"], row["groups"]


def form_post(client: httpx.Client, page_path: str, action: str,
              data: dict[str, Any]) -> httpx.Response:
    """Submit a form of the page at ``page_path`` as a browser would: with its CSRF token."""
    page = client.get(page_path, headers=HTML)
    assert page.status_code == 200, page.text
    assert f'action="{action}"' in page.text, page.text
    return client.post(action, headers=HTML, data={"csrf_token": csrf(page.text), **data})


@pytest.fixture(scope="module")
def alice(helm_platform: Platform) -> Iterator[httpx.Client]:
    client = helm_platform.login("alice", next_path="/helm/users")
    yield client
    client.close()


@pytest.mark.processes
def test_identity_users_are_listed_and_searched(alice: httpx.Client) -> None:
    page = alice.get("/helm/users", headers=HTML)
    assert page.status_code == 200, page.text
    assert "built-in identity service" in page.text
    rows = dict(re.findall(r'<tr data-username="([^"]+)">.*?data-testid="user-level">([^<]+)<',
                           page.text, flags=re.S))
    assert {"alice": "admin", "tom": "technician", "bill": "billing",
            "admin": "admin"}.items() <= rows.items()
    assert "tom@example.test" in page.text

    found = alice.get("/helm/users", params={"q": "TOM@"}, headers=HTML)
    assert re.findall(r'<tr data-username="([^"]+)"', found.text) == ["tom"]
    groups = alice.get("/helm/groups", headers=HTML)
    assert groups.status_code == 200
    assert re.search(r'<tr data-group="technicians"><td>technicians</td><td>technician</td>'
                     r'<td>\d+</td>', groups.text)


@pytest.mark.processes
def test_identity_create_change_disable_and_reset(helm_platform: Platform,
                                                  alice: httpx.Client) -> None:
    created = form_post(alice, "/helm/users/new", "/helm/users/new", {
        "username": "Carol", "name": "Carol Count", "email": "carol@example.test",
        "groups": ["billing"]})
    assert created.status_code == 201, created.text
    # Helm says no-store; Nexus's composed pages are at least private and revalidated.
    assert "private" in created.headers["Cache-Control"]
    first = shown_password(created.text)
    enabled, must_change, password_hash, groups = identity_user(helm_platform, "carol")
    assert (enabled, must_change, groups) == (True, True, ["billing"])
    assert passwords.verify_password(password_hash, first)
    assert level_of(created.text) == "billing"
    # Shown once: the user's page does not show it again.
    assert TEMPORARY.search(alice.get("/helm/users/carol", headers=HTML).text) is None

    saved = form_post(alice, "/helm/users/carol", "/helm/users/carol/groups",
                      {"groups": ["billing", "technicians"]})
    assert saved.status_code == 303 and saved.headers["Location"].endswith(
        "/users/carol?saved=groups")
    after = alice.get(saved.headers["Location"], headers=HTML).text
    assert "Groups saved." in after and level_of(after) == "technician"
    assert identity_user(helm_platform, "carol")[3] == ["billing", "technicians"]

    disabled = form_post(alice, "/helm/users/carol", "/helm/users/carol/enabled",
                         {"enabled": "false"})
    assert disabled.status_code == 303
    assert "disabled" in alice.get("/helm/users/carol", headers=HTML).text
    assert identity_user(helm_platform, "carol")[0] is False
    enabled_again = form_post(alice, "/helm/users/carol", "/helm/users/carol/enabled",
                              {"enabled": "true"})
    assert enabled_again.status_code == 303
    assert identity_user(helm_platform, "carol")[0] is True

    reset = form_post(alice, "/helm/users/carol", "/helm/users/carol/password", {})
    assert reset.status_code == 200
    second = shown_password(reset.text)
    assert second != first
    _, must_change, password_hash, _ = identity_user(helm_platform, "carol")
    assert must_change and passwords.verify_password(password_hash, second)

    # Identity acted for alice: its request log names her (her subject) on every change.
    alice_sub = identity_record(helm_platform, "alice")["subject"]
    log_lines = [json.loads(line) for line in
                 (helm_platform.home / "logs" / "identity.log").read_text().splitlines()
                 if line.startswith("{")]
    changes = {(entry.get("method"), entry.get("path"), entry.get("user"))
               for entry in log_lines if entry.get("message") == "request"}
    assert ("PUT", "/api/users/carol/groups", alice_sub) in changes, changes
    assert ("POST", "/api/users/carol/password", alice_sub) in changes


@pytest.mark.processes
def test_identity_refusals_are_shown_clearly(helm_platform: Platform,
                                             alice: httpx.Client) -> None:
    taken = form_post(alice, "/helm/users/new", "/helm/users/new",
                      {"username": "tom", "name": "Another Tom"})
    assert taken.status_code == 409
    assert "username: A user named &#39;tom&#39; already exists." in taken.text
    assert 'value="Another Tom"' in taken.text  # the form comes back filled in

    invalid = form_post(alice, "/helm/users/new", "/helm/users/new",
                        {"username": "-dash", "email": "not-an-email"})
    assert invalid.status_code == 422
    assert "email: Not an email address." in invalid.text

    by_identity = form_post(alice, "/helm/users/new", "/helm/users/new",
                            {"username": "-dash"})
    assert by_identity.status_code == 422
    assert "username: Use letters, digits" in by_identity.text  # identity's own rule

    # The bootstrap administrator steps down; alice is then the last one.
    admin_groups = identity_user(helm_platform, "admin")[3]
    stepped_down = form_post(alice, "/helm/users/admin", "/helm/users/admin/groups",
                             {"groups": []})
    assert stepped_down.status_code == 303
    try:
        refused = form_post(alice, "/helm/users/alice", "/helm/users/alice/groups",
                            {"groups": ["technicians"]})
        assert refused.status_code == 409
        assert "the last enabled administrator" in refused.text
        assert 'data-testid="user-error"' in refused.text
        not_disabled = form_post(alice, "/helm/users/alice", "/helm/users/alice/enabled",
                                 {"enabled": "false"})
        assert not_disabled.status_code == 409
        assert "the last enabled administrator" in not_disabled.text
        assert identity_user(helm_platform, "alice")[0] is True
        assert identity_user(helm_platform, "alice")[3] == ["admins"]
    finally:
        form_post(alice, "/helm/users/admin", "/helm/users/admin/groups",
                  {"groups": admin_groups})

    missing = alice.get("/helm/users/nobody", headers=HTML)
    assert missing.status_code == 404 and "No user named" in missing.text


@pytest.mark.processes
def test_forms_need_their_csrf_token(helm_platform: Platform, alice: httpx.Client) -> None:
    alice.get("/helm/users/new", headers=HTML)
    refused = alice.post("/helm/users/new", headers=HTML, data={"username": "forged"})
    assert refused.status_code == 400
    before = identity_user(helm_platform, "tom")[2]
    # As a foreign page's form would arrive: form-encoded, even with no fields.
    reset = alice.post("/helm/users/tom/password", content="", headers={
        **HTML, "Content-Type": "application/x-www-form-urlencoded"})
    assert reset.status_code == 400
    assert identity_user(helm_platform, "tom")[2] == before
    assert "forged" not in alice.get("/helm/users", headers=HTML).text


@pytest.mark.processes
def test_technicians_get_403_on_every_users_route(helm_platform: Platform) -> None:
    tom = helm_platform.login("tom", next_path="/")
    try:
        for path in ("/helm/users", "/helm/users/new", "/helm/users/alice", "/helm/groups"):
            assert tom.get(path, headers=HTML).status_code == 403, path
        # A JSON body passes the CSRF check, so the answer is the authorisation's.
        for path in ("/helm/users/new", "/helm/users/alice/groups",
                     "/helm/users/alice/enabled", "/helm/users/alice/password"):
            assert tom.post(path, json={"groups": []}).status_code == 403, path
    finally:
        tom.close()
    assert identity_user(helm_platform, "alice")[3] == ["admins"]


@pytest.mark.browser
@pytest.mark.processes
def test_a_display_name_never_runs_as_html(browser: Any, helm_platform: Platform,
                                           alice: httpx.Client) -> None:
    created = form_post(alice, "/helm/users/new", "/helm/users/new",
                        {"username": "mallory", "name": XSS})
    assert created.status_code == 201, created.text
    assert XSS not in created.text and str(escape(XSS)) in created.text

    context, page, problems = watched_page(browser)
    nexus = helm_platform.nexus
    page.goto(f"{nexus}/helm/users?q=mallory")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{nexus}/helm/users?q=mallory")
    names = page.get_by_test_id("user-name")
    assert names.count() == 1 and names.first.inner_text() == XSS
    page.click("a:text('mallory')")
    page.wait_for_url(f"{nexus}/helm/users/mallory")
    assert page.get_by_test_id("user-name").inner_text() == XSS
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img[src=x], main script").count() == 0
    assert problems == []
    context.close()


# --- Keycloak, through the contract fake -----------------------------------------------------

@pytest.fixture
def keycloak(hm_home: Path) -> Iterator[FakeKeycloak]:
    """A realm as `hivematrix keycloak configure` leaves it (admin in admins), recorded in
    master_config.json the way that command records it."""
    with running(FakeKeycloak()) as fake:
        result = configure(connect(fake.url, ADMIN_USER, ADMIN_PASSWORD),
                           KeycloakSettings(server_url=fake.url))
        write_master_config(hm_home, result)
        yield fake


@pytest.fixture
def make_helm(make_service_app: Callable[..., Flask],
              tmp_path: Path) -> Callable[..., Flask]:
    def make(**settings: Any) -> Flask:
        return make_service_app(create_app, migrations="hivematrix.helm",
                                DATABASE_URL=f"sqlite:///{tmp_path}/helm.db",
                                HELM_BACKGROUND_JOBS=False, **settings)

    return make


@pytest.fixture
def kc_helm(keycloak: FakeKeycloak, make_helm: Callable[..., Flask]) -> FlaskClient:
    return make_helm(HELM_KEYCLOAK_ADMIN_PASSWORD=ADMIN_PASSWORD).test_client()


@pytest.fixture
def admin(tokens: Any) -> dict[str, str]:
    return {**tokens.headers(tokens.user("admin")), **HTML}


def post_form(client: FlaskClient, headers: dict[str, str], page: str, action: str,
              data: dict[str, Any]) -> Any:
    shown = client.get(page, headers=headers)
    assert shown.status_code == 200, shown.get_data(as_text=True)
    token = csrf(shown.get_data(as_text=True))
    return client.post(action, headers=headers, data={"csrf_token": token, **data})


def kc_user(keycloak: FakeKeycloak, username: str) -> dict[str, Any]:
    return keycloak.user("hivematrix", username)


def kc_groups(keycloak: FakeKeycloak, username: str) -> set[str]:
    return keycloak.group_names_of("hivematrix", kc_user(keycloak, username)["id"])


def test_keycloak_create_change_disable_and_reset(keycloak: FakeKeycloak, kc_helm: FlaskClient,
                                                  admin: dict[str, str]) -> None:
    listed = kc_helm.get("/users", headers=admin).get_data(as_text=True)
    assert "Keycloak" in listed and 'data-username="admin"' in listed

    created = post_form(kc_helm, admin, "/users/new", "/users/new", {
        "username": "Tina", "name": "Tina van Tech", "email": "tina@example.test",
        "groups": ["technicians"]})
    text = created.get_data(as_text=True)
    assert created.status_code == 201, text
    assert created.headers["Cache-Control"] == "no-store"
    tina = kc_user(keycloak, "tina")
    assert (tina["firstName"], tina["lastName"], tina["email"]) == (
        "Tina", "van Tech", "tina@example.test")
    assert tina["enabled"] is True and tina["requiredActions"] == ["UPDATE_PASSWORD"]
    credential = keycloak.realms["hivematrix"].passwords[tina["id"]]
    assert credential["temporary"] is True and credential["value"] == shown_password(text)
    assert kc_groups(keycloak, "tina") == {"technicians"}
    assert level_of(text) == "technician"

    searched = kc_helm.get("/users?q=van+tech", headers=admin).get_data(as_text=True)
    assert re.findall(r'<tr data-username="([^"]+)"', searched) == ["tina"]
    assert "Tina van Tech" in searched

    saved = post_form(kc_helm, admin, "/users/tina", "/users/tina/groups",
                      {"groups": ["billing"]})
    assert saved.status_code == 303
    assert kc_groups(keycloak, "tina") == {"billing"}
    assert level_of(kc_helm.get("/users/tina", headers=admin).get_data(as_text=True)) == "billing"

    disabled = post_form(kc_helm, admin, "/users/tina", "/users/tina/enabled",
                         {"enabled": "false"})
    assert disabled.status_code == 303 and kc_user(keycloak, "tina")["enabled"] is False
    # The whole representation went back, so nothing else was cleared.
    assert keycloak.updates[-1][1]["firstName"] == "Tina"
    assert kc_user(keycloak, "tina")["email"] == "tina@example.test"

    reset = post_form(kc_helm, admin, "/users/tina", "/users/tina/password", {})
    assert reset.status_code == 200
    again = keycloak.realms["hivematrix"].passwords[tina["id"]]
    assert again["value"] == shown_password(reset.get_data(as_text=True)) != credential["value"]
    assert again["temporary"] is True

    groups = kc_helm.get("/groups", headers=admin).get_data(as_text=True)
    assert '<tr data-group="admins"><td>admins</td><td>admin</td><td>1</td>' in groups
    assert '<tr data-group="billing"><td>billing</td><td>billing</td><td>1</td>' in groups
    assert '<tr data-group="client"><td>client</td><td>client</td><td>0</td>' in groups


def test_keycloak_keeps_an_enabled_administrator(keycloak: FakeKeycloak, kc_helm: FlaskClient,
                                                 admin: dict[str, str]) -> None:
    refused = post_form(kc_helm, admin, "/users/admin", "/users/admin/groups", {"groups": []})
    assert refused.status_code == 409
    assert "the last enabled administrator" in refused.get_data(as_text=True)
    disabled = post_form(kc_helm, admin, "/users/admin", "/users/admin/enabled",
                         {"enabled": "false"})
    assert disabled.status_code == 409
    assert kc_groups(keycloak, "admin") == {"admins"} and kc_user(keycloak, "admin")["enabled"]

    made = post_form(kc_helm, admin, "/users/new", "/users/new",
                     {"username": "second", "groups": ["admins"]})
    assert made.status_code == 201
    moved = post_form(kc_helm, admin, "/users/admin", "/users/admin/groups",
                      {"groups": ["technicians"]})
    assert moved.status_code == 303 and kc_groups(keycloak, "admin") == {"technicians"}


def test_keycloak_refusals_are_clear_and_leave_nothing_half_made(
        keycloak: FakeKeycloak, kc_helm: FlaskClient, admin: dict[str, str]) -> None:
    taken = post_form(kc_helm, admin, "/users/new", "/users/new", {"username": "admin"})
    assert taken.status_code == 409
    assert "username: Keycloak: User exists with same username" in taken.get_data(as_text=True)
    post_form(kc_helm, admin, "/users/new", "/users/new",
              {"username": "first", "email": "one@example.test"})
    same_email = post_form(kc_helm, admin, "/users/new", "/users/new",
                           {"username": "second", "email": "one@example.test"})
    assert same_email.status_code == 409
    assert "email: Keycloak: User exists with same email" in same_email.get_data(as_text=True)

    keycloak.realms["hivematrix"].password_min_length = 40
    weak = post_form(kc_helm, admin, "/users/new", "/users/new",
                     {"username": "pat", "groups": ["billing"]})
    assert weak.status_code == 422
    assert "Invalid password: minimum length 40." in weak.get_data(as_text=True)
    assert all(user["username"] != "pat" for user in keycloak.realms["hivematrix"].users.values())

    unknown_group = post_form(kc_helm, admin, "/users/admin", "/users/admin/groups",
                              {"groups": ["admins", "wizards"]})
    assert unknown_group.status_code == 422
    assert "groups: Unknown group(s): wizards." in unknown_group.get_data(as_text=True)
    assert kc_helm.get("/users/nobody", headers=admin).status_code == 404


@pytest.mark.parametrize(("settings", "status", "message"), [
    ({"HELM_KEYCLOAK_ADMIN_PASSWORD": None}, 200, "HELM_KEYCLOAK_ADMIN_PASSWORD"),
    ({"HELM_KEYCLOAK_ADMIN_PASSWORD": "wrong"}, 503, "rejected Helm&#39;s admin credentials"),
    ({"HELM_KEYCLOAK_ADMIN_PASSWORD": ADMIN_PASSWORD,
      "HELM_KEYCLOAK_URL": f"http://127.0.0.1:{free_port()}"}, 503, "cannot be reached"),
    ({"HELM_KEYCLOAK_ADMIN_PASSWORD": ADMIN_PASSWORD, "HELM_KEYCLOAK_REALM": "other"}, 503,
     "has no realm &#39;other&#39;"),
])
def test_keycloak_problems_are_named(keycloak: FakeKeycloak, make_helm: Callable[..., Flask],
                                     admin: dict[str, str], settings: dict[str, Any],
                                     status: int, message: str) -> None:
    page = make_helm(**settings).test_client().get("/users", headers=admin)
    assert page.status_code == status
    assert message in page.get_data(as_text=True)


def test_without_a_registered_identity_service_the_page_says_what_is_missing(
        hm_home: Path, make_helm: Callable[..., Flask], admin: dict[str, str]) -> None:
    client = make_helm().test_client()
    for path in ("/users", "/users/new", "/users/tom", "/groups"):
        page = client.get(path, headers=admin)
        assert page.status_code == 200, path
        assert "The identity service is not registered in services.json." in page.get_data(
            as_text=True)
    # (No users form is offered now; the session's token comes from another Helm form.)
    token = csrf(client.get("/settings", headers=admin).get_data(as_text=True))
    refused = client.post("/users/new", headers=admin,
                          data={"csrf_token": token, "username": "carol"})
    assert refused.status_code == 409
    assert "not registered" in refused.get_data(as_text=True)


def test_every_users_route_is_for_admins_only(keycloak: FakeKeycloak, kc_helm: FlaskClient,
                                              tokens: Any) -> None:
    app: Flask = kc_helm.application  # type: ignore[attr-defined]
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("helm_users.")]
    assert len(rules) == 8
    for level in ("technician", "billing", "client"):
        headers = {**tokens.headers(tokens.user(level)), **HTML}
        for rule in rules:
            path = rule.rule.replace("<username>", "admin")
            for method in sorted((rule.methods or set()) & {"GET", "POST"}):
                answer = kc_helm.open(path, method=method, headers={
                    **headers, "Content-Type": "application/json"}, data="{}")
                assert answer.status_code == 403, (level, method, path)
    service = tokens.headers(tokens.service("core", "helm"))
    assert kc_helm.get("/users", headers=service).status_code == 403
    assert kc_helm.get("/users").status_code == 401
    assert kc_groups(keycloak, "admin") == {"admins"}


def test_keycloak_forms_need_their_csrf_token(keycloak: FakeKeycloak, kc_helm: FlaskClient,
                                              admin: dict[str, str]) -> None:
    kc_helm.get("/users/admin", headers=admin)
    # As a foreign page's form would arrive: form-encoded, even with no fields.
    for path, data in (("/users/admin/groups", {"groups": []}),
                       ("/users/admin/enabled", {"enabled": "false"}),
                       ("/users/admin/password", {}), ("/users/new", {"username": "eve"})):
        answer = kc_helm.post(path, headers=admin, data=data,
                              content_type="application/x-www-form-urlencoded")
        assert answer.status_code == 400, path
    assert kc_user(keycloak, "admin")["enabled"] is True
    assert len(keycloak.realms["hivematrix"].users) == 1


def test_keycloak_names_are_escaped(keycloak: FakeKeycloak, kc_helm: FlaskClient,
                                    admin: dict[str, str]) -> None:
    made = post_form(kc_helm, admin, "/users/new", "/users/new",
                     {"username": "mallory", "name": XSS, "email": "m@example.test"})
    assert made.status_code == 201
    for path in ("/users", "/users/mallory"):
        text = kc_helm.get(path, headers=admin).get_data(as_text=True)
        assert XSS not in text and "<img src=x" not in text and "<script>window" not in text
        assert str(escape(XSS)) in text
