"""``call_service`` between two real apps over HTTP, with service tokens from fake Core."""

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apiflask import APIBlueprint, APIFlask
from flask import current_app, g, request, stream_with_context

from hivematrix.common.auth import current_principal, service_allowed
from hivematrix.common.service_client import (
    REFRESH_MARGIN,
    ServiceAuthError,
    ServiceUnavailableError,
    UnknownServiceError,
    call_service,
    stream_service,
)
from hivematrix.common.testing import FakeCore, TokenFactory, free_port, serve_wsgi

target_bp = APIBlueprint("target_api", __name__)
caller_bp = APIBlueprint("caller_api", __name__)


@target_bp.route("/api/echo", methods=["GET", "POST"])
@service_allowed("caller")
def echo() -> dict[str, Any]:
    """Records what arrived, after the kit verified the service token (aud=target)."""
    principal = current_principal()
    assert principal is not None
    seen = {"correlation_id": request.headers.get("X-Correlation-ID"),
            "authorization": request.headers.get("Authorization"),
            "service": g.service, "audience": principal.claims["aud"],
            "body": request.get_json(silent=True), "extra": request.headers.get("X-Extra")}
    current_app.config["SEEN"].append(seen)
    return seen


@target_bp.get("/api/guarded")
@service_allowed("somebody-else")
def guarded() -> dict[str, Any]:
    return {}


@target_bp.get("/api/slow")
def slow() -> dict[str, Any]:
    current_app.config["RELEASE"].wait(5)
    return {}


@target_bp.get("/api/lines")
@service_allowed("caller")
def lines() -> Any:
    """Three lines, the second only after the caller has read the first."""
    def body() -> Iterator[bytes]:
        yield b'{"n": 1}\n'
        current_app.config["READ_FIRST"].wait(5)
        yield b'{"n": 2}\n{"n": 3}\n'

    return current_app.response_class(stream_with_context(body()),
                                      mimetype="application/x-ndjson")


@caller_bp.get("/relay")
def relay() -> tuple[dict[str, Any], int]:
    response = call_service("target", "/api/echo")
    return {"target_said": response.json(), "correlation_id": g.correlation_id}, 200


@pytest.fixture
def target_app(build_app) -> APIFlask:
    app = build_app(target_bp, name="target")
    app.config["SEEN"] = []
    return app


@pytest.fixture
def target_url(target_app: APIFlask) -> Iterator[str]:
    with serve_wsgi(target_app) as url:
        yield url


def write_services(home: Path, services: dict[str, str]) -> None:
    document = {name: {"url": url, "port": int(url.rsplit(":", 1)[1].strip("/"))}
                for name, url in services.items()}
    (home / "services.json").write_text(json.dumps(document), encoding="utf-8")


@pytest.fixture
def registered(hm_home: Path, target_url: str) -> str:
    write_services(hm_home, {"target": target_url})
    return target_url


@pytest.fixture
def caller_app(build_app, fake_core: FakeCore, registered: str) -> APIFlask:
    fake_core.secrets = {"caller": "s3cret"}
    return build_app(caller_bp, name="caller", SERVICE_SECRET="s3cret")


def test_stream_reads_the_body_as_it_arrives(caller_app: APIFlask,
                                              target_app: APIFlask) -> None:
    target_app.config["READ_FIRST"] = threading.Event()
    seen = []
    with caller_app.app_context(), stream_service("target", "/api/lines") as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            seen.append(json.loads(line)["n"])
            target_app.config["READ_FIRST"].set()  # the rest is sent only after this
    assert seen == [1, 2, 3]


def test_stream_of_an_unreachable_service_is_unavailable(caller_app: APIFlask,
                                                         hm_home: Path) -> None:
    write_services(hm_home, {"target": f"http://127.0.0.1:{free_port()}"})
    with caller_app.app_context(), pytest.raises(ServiceUnavailableError), \
            stream_service("target", "/api/lines"):
        pass


def token_requests(core: FakeCore) -> int:
    return core.count("/service-token")


def test_call_reaches_target_with_a_verified_service_token(caller_app: APIFlask,
                                                           target_app: APIFlask) -> None:
    with caller_app.app_context():
        response = call_service("target", "/api/echo")
    assert response.status_code == 200
    assert response.json()["service"] == "caller"
    assert response.json()["audience"] == "target"


def test_token_comes_from_core_with_the_service_secret(caller_app: APIFlask,
                                                       fake_core: FakeCore) -> None:
    # fake Core checks HTTP Basic caller:secret against fake_core.secrets.
    with caller_app.app_context():
        assert call_service("target", "/api/echo").status_code == 200
    assert token_requests(fake_core) == 1


def test_token_is_cached_between_calls(caller_app: APIFlask, target_app: APIFlask,
                                       fake_core: FakeCore) -> None:
    with caller_app.app_context():
        call_service("target", "/api/echo")
        call_service("target", "/api/echo")
    assert token_requests(fake_core) == 1
    first, second = target_app.config["SEEN"]
    assert first["authorization"] == second["authorization"]


def test_token_close_to_expiry_is_not_reused(caller_app: APIFlask, fake_core: FakeCore,
                                             signing_key) -> None:
    class ShortLived(TokenFactory):
        def service(self, caller: str, target: str, **overrides: Any) -> str:
            return super().service(caller, target, exp=int(time.time()) + REFRESH_MARGIN - 5)

    fake_core.tokens = ShortLived(signing_key)
    with caller_app.app_context():
        call_service("target", "/api/echo")
        call_service("target", "/api/echo")
    assert token_requests(fake_core) == 2


def test_tokens_are_cached_per_target(caller_app: APIFlask, hm_home: Path, registered: str,
                                      fake_core: FakeCore) -> None:
    write_services(hm_home, {"target": registered, "mirror": registered})
    with caller_app.app_context():
        call_service("target", "/api/echo")
        call_service("mirror", "/api/echo")
        call_service("target", "/api/echo")
    assert token_requests(fake_core) == 2


def test_token_for_one_target_is_refused_by_another(caller_app: APIFlask, hm_home: Path,
                                                    registered: str,
                                                    target_app: APIFlask) -> None:
    # "mirror" is the target app under a second name: the token says aud=mirror.
    write_services(hm_home, {"mirror": registered})
    with caller_app.app_context():
        response = call_service("mirror", "/api/echo")
    assert response.status_code == 401
    assert target_app.config["SEEN"] == []


def test_request_from_view_relays_the_correlation_id(caller_app: APIFlask,
                                                     target_app: APIFlask,
                                                     fake_core: FakeCore) -> None:
    response = caller_app.test_client().get("/relay", headers={"X-Correlation-ID": "abc-123"})
    assert response.status_code == 200
    assert response.json["target_said"]["correlation_id"] == "abc-123"
    assert target_app.config["SEEN"][0]["correlation_id"] == "abc-123"
    assert ("/service-token", "abc-123") in fake_core.seen


def test_generated_correlation_id_is_relayed_too(caller_app: APIFlask,
                                                 target_app: APIFlask) -> None:
    response = caller_app.test_client().get("/relay")
    minted = response.json["correlation_id"]
    assert len(minted) == 32
    assert target_app.config["SEEN"][0]["correlation_id"] == minted


def test_call_outside_a_request_sends_no_correlation_id(caller_app: APIFlask,
                                                        target_app: APIFlask) -> None:
    with caller_app.app_context():
        call_service("target", "/api/echo")
    assert target_app.config["SEEN"][0]["correlation_id"] is None


def test_method_body_and_headers_are_passed_through(caller_app: APIFlask) -> None:
    with caller_app.app_context():
        response = call_service("target", "api/echo", "POST", json={"n": 1},
                                headers={"X-Extra": "yes"})
    assert response.json()["body"] == {"n": 1}
    assert response.json()["extra"] == "yes"


def test_caller_cannot_replace_the_service_token(caller_app: APIFlask) -> None:
    with caller_app.app_context():
        response = call_service("target", "/api/echo", headers={"Authorization": "Bearer x"})
    assert response.json()["service"] == "caller"


def test_error_answers_are_returned_not_raised(caller_app: APIFlask) -> None:
    with caller_app.app_context():
        response = call_service("target", "/api/guarded")
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/problem+json"


def test_url_with_trailing_slash_is_joined_cleanly(caller_app: APIFlask, hm_home: Path,
                                                   registered: str) -> None:
    write_services(hm_home, {"target": f"{registered}/"})
    with caller_app.app_context():
        assert call_service("target", "/api/echo").status_code == 200


def test_unknown_target_raises_unknown_service_error(caller_app: APIFlask) -> None:
    with caller_app.app_context(), pytest.raises(UnknownServiceError, match="nowhere"):
        call_service("nowhere", "/api/echo")


def test_missing_services_file_means_unknown_service(caller_app: APIFlask,
                                                     hm_home: Path) -> None:
    (hm_home / "services.json").unlink()
    with caller_app.app_context(), pytest.raises(UnknownServiceError):
        call_service("target", "/api/echo")


def test_target_down_raises_service_unavailable(caller_app: APIFlask, hm_home: Path) -> None:
    write_services(hm_home, {"target": f"http://127.0.0.1:{free_port()}"})
    with caller_app.app_context(), pytest.raises(ServiceUnavailableError):
        call_service("target", "/api/echo")


def test_slow_target_times_out_as_service_unavailable(build_app, fake_core: FakeCore,
                                                      registered: str,
                                                      target_app: APIFlask) -> None:
    fake_core.secrets = {"caller": "s3cret"}
    target_app.config["RELEASE"] = release = threading.Event()
    app = build_app(caller_bp, name="caller", SERVICE_SECRET="s3cret", HTTP_TIMEOUT=0.2)
    started = time.monotonic()
    try:
        with app.app_context(), pytest.raises(ServiceUnavailableError, match="target"):
            call_service("target", "/api/slow")
        assert time.monotonic() - started < 2
    finally:
        release.set()


def test_core_down_raises_service_unavailable(build_app, registered: str) -> None:
    app = build_app(caller_bp, name="caller", SERVICE_SECRET="s3cret",
                    CORE_SERVICE_URL=f"http://127.0.0.1:{free_port()}")
    with app.app_context(), pytest.raises(ServiceUnavailableError, match="Core"):
        call_service("target", "/api/echo")


def test_wrong_secret_raises_service_auth_error(build_app, fake_core: FakeCore,
                                                registered: str) -> None:
    fake_core.secrets = {"caller": "s3cret"}
    app = build_app(caller_bp, name="caller", SERVICE_SECRET="guess")
    with app.app_context(), pytest.raises(ServiceAuthError):
        call_service("target", "/api/echo")


def test_missing_secret_raises_service_auth_error_without_asking_core(
        build_app, fake_core: FakeCore, registered: str) -> None:
    app = build_app(caller_bp, name="caller")
    with app.app_context(), pytest.raises(ServiceAuthError, match="SERVICE_SECRET"):
        call_service("target", "/api/echo")
    assert token_requests(fake_core) == 0


def test_refused_token_is_not_cached(build_app, fake_core: FakeCore, registered: str) -> None:
    app = build_app(caller_bp, name="caller", SERVICE_SECRET="s3cret")
    with app.app_context():
        with pytest.raises(ServiceAuthError):
            call_service("target", "/api/echo")
        fake_core.secrets = {"caller": "s3cret"}
        assert call_service("target", "/api/echo").status_code == 200
