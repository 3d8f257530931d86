"""The proxy's header and cookie rules, the sign-in redirect check and the CSP nonce."""

from __future__ import annotations

import pytest

from hivematrix.nexus import proxy
from hivematrix.nexus.chrome import policy_with_nonce
from hivematrix.nexus.directory import ServiceDirectory
from hivematrix.nexus.views import safe_next

OWN = frozenset({"hm_session"})
FORWARDING = proxy.Forwarding(service="codex", client_ip="10.0.0.9", proto="https",
                              host="hm.example.test", port="443", correlation_id="c-1",
                              token="jwt")


def test_request_headers_replace_identity_and_forwarding() -> None:
    incoming = [("Host", "hm.example.test"), ("Authorization", "Bearer forged"),
                ("X-Forwarded-For", "1.2.3.4"), ("Forwarded", "for=1.2.3.4"),
                ("Connection", "keep-alive, X-Private"), ("X-Private", "1"),
                ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Accept", "text/html"),
                ("Cookie", "hm_session=secret; theme=dark"), ("Content-Length", "999")]
    out = proxy.request_headers(incoming, FORWARDING, OWN, "12")
    names = [name.lower() for name, _ in out]
    assert dict(out) == {
        "Accept": "text/html", "Cookie": "theme=dark", "Content-Length": "12",
        "Authorization": "Bearer jwt", "X-Forwarded-For": "10.0.0.9",
        "X-Forwarded-Proto": "https", "X-Forwarded-Host": "hm.example.test",
        "X-Forwarded-Port": "443", "X-Forwarded-Prefix": "/codex", "X-Correlation-ID": "c-1"}
    assert len(names) == len(set(names))


def test_only_nexus_cookies_are_withheld() -> None:
    assert proxy.filter_cookie_header(["a=1; hm_session=x", "b=2"], OWN) == "a=1; b=2"
    assert proxy.filter_cookie_header(["hm_session=x"], OWN) == ""


def test_response_headers_drop_hop_by_hop_and_scope_cookies() -> None:
    upstream = [("Content-Type", "text/html"), ("Connection", "close, X-Hop"), ("X-Hop", "1"),
                ("Transfer-Encoding", "chunked"), ("Content-Length", "5"),
                ("Set-Cookie", "pref=1; Path=/; Domain=127.0.0.1; HttpOnly"),
                ("Set-Cookie", "hm_session=evil; Path=/"),
                ("Location", "http://127.0.0.1:5010/companies/3?tab=1"),
                ("X-Custom", "kept")]
    out = proxy.response_headers(upstream, service="codex", backend_origin="http://127.0.0.1:5010",
                                 own_cookies=OWN)
    assert out == [("Content-Type", "text/html"),
                   ("Set-Cookie", "pref=1; HttpOnly; Path=/codex; SameSite=Lax"),
                   ("Location", "/codex/companies/3?tab=1"), ("X-Custom", "kept")]


@pytest.mark.parametrize(("cookie", "expected"), [
    ("a=1; Path=/codex/x", "a=1; Path=/codex/x; SameSite=Lax"),
    ("a=1; Path=/codexevil", "a=1; Path=/codex/codexevil; SameSite=Lax"),
    ("a=1; SameSite=Strict; Secure", "a=1; Path=/codex; SameSite=Strict; Secure"),
    ("not a cookie", None),
    ("a=1, b=2", None),
])
def test_cookie_scoping(cookie: str, expected: str | None) -> None:
    assert proxy.scope_cookie(cookie, "codex", OWN) == expected


def test_foreign_redirects_are_left_alone() -> None:
    assert proxy.rewrite_location("https://other.test/x", "codex",
                                  "http://127.0.0.1:5010") == "https://other.test/x"
    assert proxy.rewrite_location("/codex/y", "codex", "http://127.0.0.1:5010") == "/codex/y"


@pytest.mark.parametrize(("given", "kept"), [
    ("/template/?a=1", "/template/?a=1"), ("/", "/"), (None, "/"), ("", "/"),
    ("https://evil.test/", "/"), ("//evil.test", "/"), ("/\\evil.test", "/"),
    ("javascript:alert(1)", "/"), ("/ok\r\nSet-Cookie: x=1", "/"), ("relative", "/"),
])
def test_next_is_a_local_path_or_home(given: str | None, kept: str) -> None:
    assert safe_next(given) == kept


def test_csp_gets_the_nonce_but_inline_policies_stay_as_they_are() -> None:
    policy = "default-src 'self'; script-src 'self'; style-src 'self'"
    assert policy_with_nonce(policy, "n1", "") == (
        "default-src 'self'; script-src 'self' 'nonce-n1'; style-src 'self'")
    assert policy_with_nonce("default-src 'self'", "n1", "") == (
        "default-src 'self'; script-src 'self' 'nonce-n1'")
    inline = "script-src 'self' 'unsafe-inline'"
    assert policy_with_nonce(inline, "n1", "") == inline
    assert "'nonce-n2'" in policy_with_nonce(None, "n2", "default-src 'self'")


def test_directory_filters_by_level_and_rereads_the_file(tmp_path) -> None:
    path = tmp_path / "services.json"
    path.write_text('{"codex": {"url": "http://127.0.0.1:5010", "title": "Codex"},'
                    ' "helm": {"url": "http://127.0.0.1:5004", "admin_only": true},'
                    ' "ledger": {"url": "http://127.0.0.1:5030", "billing_or_admin_only": true},'
                    ' "core": {"url": "http://127.0.0.1:5000"},'
                    ' "hidden": {"url": "http://127.0.0.1:5099", "visible": false},'
                    ' "broken": {"title": "no url"}}')
    directory = ServiceDirectory(path)
    names = lambda level: [e.name for e in directory.navigation(level)]  # noqa: E731
    assert names("admin") == ["codex", "helm", "ledger"]
    assert names("billing") == ["codex", "ledger"]
    assert names("technician") == ["codex"]
    assert names(None) == []
    assert directory.get("core").proxied is False and directory.get("broken") is None
    assert directory.home("technician", "helm") == "codex"
    assert directory.home("admin", "helm") == "helm"
    path.write_text('{"beacon": {"url": "http://127.0.0.1:5001"}}')
    import os
    os.utime(path, ns=(1, 1))  # a different stamp even within the same clock tick
    directory._checked_at = float("-inf")  # rather than waiting out CHECK_SECONDS
    assert names("technician") == ["beacon"]
