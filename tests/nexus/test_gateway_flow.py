"""Sign-in, proxying and sign-out through a real Nexus in front of real services."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import httpx
import jwt
import pytest
from sqlalchemy import create_engine, text

from hivematrix.common.testing import free_port

from .conftest import BIG, Platform, start_platform

pytestmark = pytest.mark.processes
HTML = {"Accept": "text/html"}


def session_data(platform: Platform, client: httpx.Client) -> dict:
    """What Nexus keeps server-side for this browser (read from its database)."""
    digest = hashlib.sha256(client.cookies["hm_session"].encode()).hexdigest()
    engine = create_engine(f"sqlite:///{platform.home}/nexus/nexus.db")
    with engine.connect() as connection:
        raw = connection.execute(text("SELECT data FROM nexus_sessions WHERE id_hash = :h"),
                                 {"h": digest}).scalar_one()
    engine.dispose()
    return dict(json.loads(raw))


def worker_peak_kib(platform: Platform) -> int:
    """The largest peak resident size among Nexus's server processes."""
    group = platform.processes["nexus"].process.pid
    peaks = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != group:
                continue
            status = (entry / "status").read_text()
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]))
    return max(peaks)


def test_sign_in_lands_on_the_composed_template_page(platform: Platform) -> None:
    client = platform.login("alice", next_path="/template/")
    page = client.get("/template/", headers=HTML)
    assert page.status_code == 200, page.text
    assert 'data-testid="username">alice<' in page.text
    assert 'class="side-nav"' in page.text and "/nexus/static/global.css" in page.text
    assert 'side-nav__link side-nav__link--active" href="/template/"' in page.text
    nonce = page.headers["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]
    assert f'nonce="{nonce}"' in page.text
    # The JWT stays on the server: the browser holds only an opaque, HttpOnly cookie.
    token = session_data(platform, client)["jwt"]
    assert token.count(".") == 2
    for cookie in client.cookies.jar:
        assert token not in (cookie.value or "")
        if cookie.name != "hm_session":  # backends' cookies stay under their own paths
            assert cookie.path in ("/template", "/keycloak"), cookie


def test_root_sends_users_home_and_strangers_to_login(platform: Platform) -> None:
    assert platform.client().get("/").headers["Location"] == "/login"
    client = platform.login("tom")
    # Home is the first service in services.json that tom may use (it is ordered by port).
    listed = json.loads((platform.home / "services.json").read_text())
    first = next(name for name, entry in listed.items() if entry.get("visible")
                 and not entry.get("admin_only") and not entry.get("billing_or_admin_only")
                 and name not in ("core", "identity", "nexus"))
    assert client.get("/").headers["Location"] == f"/{first}/"


def test_signed_out_html_requests_go_to_login_and_api_calls_get_401(platform: Platform) -> None:
    client = platform.client()
    page = client.get("/echo/some/page?x=1", headers=HTML)
    assert page.status_code == 302
    assert page.headers["Location"] == "/login?next=/echo/some/page?x%3D1"
    api = client.get("/echo/api/thing", headers={"Accept": "application/json"})
    assert api.status_code == 401
    assert api.headers["Content-Type"] == "application/problem+json"


def test_the_backend_gets_the_jwt_and_forwarding_headers_only(platform: Platform) -> None:
    client = platform.login("alice")
    answer = client.patch("/echo/items/7?sort=name&x=%20y", content=b"patched body",
                          headers={"Authorization": "Bearer forged", "X-Forwarded-For": "6.6.6.6",
                                   "X-Forwarded-Prefix": "/evil", "Connection": "X-Drop-Me",
                                   "X-Drop-Me": "1", "X-Custom": "kept",
                                   "X-Correlation-ID": "corr-123"})
    assert answer.status_code == 200, answer.text
    seen = answer.json()
    assert seen["method"] == "PATCH" and seen["path"] == "/items/7"
    assert seen["query"] == "sort=name&x=%20y"
    assert seen["body_length"] == len(b"patched body")
    headers = {name.lower(): value for name, value in seen["headers"].items()}
    token = headers["authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["preferred_username"] == "alice" and claims["iss"] == "hivematrix-core"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-prefix"] == "/echo"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == platform.nexus.removeprefix("http://")
    assert headers["x-custom"] == "kept" and "x-drop-me" not in headers
    assert headers["x-correlation-id"] == "corr-123"
    assert "hm_session" not in headers.get("cookie", "")
    # Hop-by-hop answers stay behind; cookies are confined to the service's path.
    assert "x-secret-hop" not in answer.headers and "keep-alive" not in answer.headers
    cookies = answer.headers.get_list("set-cookie")
    assert any(c.startswith("echo_pref=1") and "Path=/echo" in c for c in cookies)
    assert not any(c.startswith("hm_session=") for c in cookies)


def test_options_and_a_generated_correlation_id_reach_the_backend(platform: Platform) -> None:
    client = platform.login("alice")
    answer = client.options("/echo/anything")
    logged = [json.loads(line) for line in platform.processes["nexus"].log().splitlines()
              if answer.headers["X-Correlation-ID"] in line]
    assert any(entry.get("user") for entry in logged), logged  # the request log names them
    assert answer.json()["method"] == "OPTIONS"
    seen = {k.lower(): v for k, v in answer.json()["headers"].items()}
    assert seen["x-correlation-id"] == answer.headers["X-Correlation-ID"]
    assert len(seen["x-correlation-id"]) >= 16


def test_a_large_upload_streams_through(platform: Platform) -> None:
    client = platform.login("alice")
    body = os.urandom(3 * 1024 * 1024)
    answer = client.post("/echo/upload", content=body,
                         headers={"Content-Type": "application/octet-stream"})
    assert answer.status_code == 200 and answer.json()["body_length"] == len(body)


def test_a_50_mb_download_streams_without_growing_nexus(platform: Platform) -> None:
    client = platform.login("alice")
    client.get("/echo/warm-up")
    before = worker_peak_kib(platform)
    received = 0
    with client.stream("GET", "/echo/big") as response:
        assert response.status_code == 200
        assert response.headers["Content-Length"] == str(BIG)
        for chunk in response.iter_raw():
            received += len(chunk)
    assert received == BIG
    growth_mib = (worker_peak_kib(platform) - before) / 1024
    assert growth_mib < 15, f"Nexus's peak memory grew by {growth_mib:.1f} MiB"


def test_server_sent_events_arrive_as_they_are_sent(platform: Platform) -> None:
    client = platform.login("alice")
    arrivals = []
    with client.stream("GET", "/echo/events", headers={"Accept": "text/event-stream"}) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                arrivals.append((json.loads(line[6:])["n"], time.monotonic()))
    assert [n for n, _ in arrivals] == [0, 1, 2]
    # The backend waits 0.5 s between events: buffering would deliver them together.
    assert arrivals[2][1] - arrivals[0][1] > 0.8


def test_admin_only_and_billing_services_are_enforced_at_the_edge(platform: Platform) -> None:
    tom, bill, alice = (platform.login(name) for name in ("tom", "bill", "alice"))
    denied = tom.get("/vault/secrets", headers=HTML)
    assert denied.status_code == 403 and "Vault" in denied.text
    assert tom.get("/books/", headers={"Accept": "application/json"}).status_code == 403
    assert bill.get("/books/").status_code == 200
    assert bill.get("/vault/").status_code == 403
    assert alice.get("/vault/").status_code == 200
    # The navigation offers only what the user may open.
    page = tom.get("/template/", headers=HTML).text
    assert 'href="/echo/"' in page and 'href="/vault/"' not in page


def test_hidden_and_unknown_services_are_404(platform: Platform) -> None:
    client = platform.login("alice")
    for path in ("/core/api/token/validate", "/identity/api/users", "/nexus/", "/nowhere/"):
        assert client.get(path).status_code == 404, path


def test_a_revocation_at_core_is_refused_within_a_second(platform: Platform) -> None:
    client = platform.login("alice")
    assert client.get("/echo/").status_code == 200
    token = session_data(platform, client)["jwt"]
    core = platform.processes["core"].url
    assert httpx.post(f"{core}/api/token/revoke", json={"token": token}).status_code == 200
    revoked_at = time.monotonic()
    while client.get("/echo/", headers={"Accept": "application/json"}).status_code == 200:
        assert time.monotonic() - revoked_at < 1.0, "still served a second after revocation"
        time.sleep(0.05)
    assert client.get("/echo/", headers=HTML).headers["Location"].startswith("/login")


def test_logout_revokes_ends_the_provider_session_and_lands_signed_out(
        platform: Platform) -> None:
    client = platform.login("alice")
    token = session_data(platform, client)["jwt"]
    out = client.get("/logout")
    assert out.status_code == 302 and "Clear-Site-Data" in out.headers
    end_session = out.headers["Location"]
    assert end_session.startswith("/keycloak/realms/hivematrix/protocol/openid-connect/logout?")
    landed = client.get(end_session, headers=HTML)
    assert landed.status_code == 302
    assert landed.headers["Location"] == f"{platform.nexus}/logged-out"
    page = client.get("/logged-out", headers=HTML)
    assert page.status_code == 200 and "signed out" in page.text
    core = platform.processes["core"].url
    assert httpx.post(f"{core}/api/token/validate", json={"token": token}).status_code == 401
    assert client.get("/template/", headers=HTML).headers["Location"].startswith("/login")
    # The provider's session is gone too: signing in again asks for the password.
    again = client.get(client.get("/login").headers["Location"], headers=HTML)
    assert again.status_code == 200 and 'name="password"' in again.text


def test_next_must_be_a_local_path(platform: Platform) -> None:
    for target in ("https://evil.test/", "//evil.test/", "/\\evil.test", "javascript:alert(1)"):
        client = platform.client()
        start = client.get("/login", params={"next": target})
        assert start.status_code == 302
        data = session_data(platform, client)
        assert data["login"]["next"] == "/", target


def test_backend_down_is_a_502_page_naming_the_service(platform: Platform) -> None:
    services = json.loads((platform.home / "services.json").read_text())
    services["ghost"] = {"url": f"http://127.0.0.1:{free_port()}", "title": "Ghost"}
    (platform.home / "services.json").write_text(json.dumps(services))
    client = platform.login("alice")
    time.sleep(1.1)  # Nexus looks at services.json at most once a second
    page = client.get("/ghost/", headers=HTML)
    assert page.status_code == 502 and "&#39;ghost&#39;" in page.text
    assert 'class="side-nav"' in page.text  # still inside the platform's frame
    api = client.get("/ghost/api", headers={"Accept": "application/json"})
    assert api.status_code == 502 and api.json()["detail"].startswith("The service 'ghost'")


def test_theme_preference_persists_for_the_user(platform: Platform) -> None:
    client = platform.login("bill")
    assert 'data-theme="light"' in client.get("/template/", headers=HTML).text
    changed = client.put("/nexus/api/preferences", json={"theme": "dark"})
    assert changed.status_code == 200 and changed.json()["theme"] == "dark"
    bad = client.put("/nexus/api/preferences", json={"color_theme": "neon"})
    assert bad.status_code == 422 and "color_theme" in bad.text
    again = platform.login("bill")  # a new browser, same user
    assert 'data-theme="dark"' in again.get("/template/", headers=HTML).text


def test_the_jwt_is_renewed_with_the_refresh_token(tmp_path: Path, echo: str) -> None:
    """With a renewal margin as long as the token, every request renews it."""
    platform = start_platform(tmp_path, echo, nexus_env={"NEXUS_RENEW_MARGIN_SECONDS": "3600"})
    try:
        client = platform.login("alice")
        first = session_data(platform, client)["jwt"]
        assert client.get("/echo/").status_code == 200
        second = session_data(platform, client)["jwt"]
        assert second != first, platform.processes["nexus"].log()[-3000:]
        core = platform.processes["core"].url
        assert httpx.post(f"{core}/api/token/validate", json={"token": first}).status_code == 401
        assert httpx.post(f"{core}/api/token/validate", json={"token": second}).status_code == 200
    finally:
        for process in platform.processes.values():
            process.stop()


def test_core_down_is_a_503_not_a_silent_accept(platform: Platform) -> None:
    client = platform.login("alice")
    assert client.get("/echo/").status_code == 200
    core = platform.processes["core"]
    core.stop()
    try:
        time.sleep(0.6)  # past the cached "still valid" answer
        page = client.get("/echo/", headers=HTML)
        assert page.status_code == 503 and "Core is not answering" in page.text
        assert int(page.headers["Retry-After"]) > 0
    finally:
        core.start()
    assert client.get("/echo/").status_code == 200  # the session survived Core's restart
