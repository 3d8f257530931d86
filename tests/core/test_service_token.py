"""POST /service-token: only an authenticated service gets a token, addressed to one target."""

import base64
from pathlib import Path

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.common.auth import InvalidToken, JWKSCache, TokenVerifier
from hivematrix.common.testing import migrated_database, serve_wsgi
from hivematrix.core.service_secrets import ServiceSecrets
from hivematrix.template import SERVICE as TEMPLATE
from hivematrix.template import create_app as create_template


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def secrets_file(hm_home: Path) -> ServiceSecrets:
    secrets = ServiceSecrets(hm_home / "core" / "service-secrets.json")
    secrets.store("helm", "helm-secret-value")
    secrets.store("ledger", "ledger-secret-value")
    return secrets


def mint(core: FlaskClient, caller: str, target: str, secret: str, user: str | None = None):
    return core.post("/service-token", json={"calling_service": caller, "target_service": target},
                     headers=basic(user or caller, secret))


@pytest.mark.usefixtures("secrets_file")
def test_authenticated_service_gets_a_token_for_its_target(core: FlaskClient) -> None:
    response = mint(core, "helm", "template", "helm-secret-value")
    assert response.status_code == 200
    claims = jwt.decode(response.json["token"], options={"verify_signature": False})
    assert claims["type"] == "service" and claims["aud"] == "template"
    assert (claims["calling_service"], claims["target_service"]) == ("helm", "template")
    assert claims["sub"] == "service:helm" and claims["exp"] - claims["iat"] == 300
    assert claims["jti"] and "permission_level" not in claims


@pytest.mark.usefixtures("secrets_file")
@pytest.mark.parametrize("headers", [
    {}, basic("helm", "wrong"), basic("ledger", "ledger-secret-value"), basic("helm", ""),
    {"Authorization": "Bearer helm-secret-value"},
], ids=["none", "wrong-secret", "other-services-secret", "empty-secret", "bearer"])
def test_unauthenticated_minting_is_401(core: FlaskClient, headers: dict[str, str]) -> None:
    response = core.post("/service-token", headers=headers,
                         json={"calling_service": "helm", "target_service": "template"})
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"


@pytest.mark.usefixtures("secrets_file")
def test_unregistered_service_cannot_mint(core: FlaskClient) -> None:
    assert mint(core, "codex", "template", "anything").status_code == 401


@pytest.mark.usefixtures("secrets_file")
def test_unknown_target_is_400_naming_the_field(core: FlaskClient) -> None:
    response = mint(core, "helm", "nosuch", "helm-secret-value")
    assert response.status_code == 400
    assert response.json["detail"].startswith("target_service")


@pytest.mark.usefixtures("secrets_file")
def test_a_service_cannot_address_itself(core: FlaskClient) -> None:
    response = mint(core, "helm", "helm", "helm-secret-value")
    assert response.status_code == 400


@pytest.mark.usefixtures("secrets_file")
def test_malformed_names_are_422(core: FlaskClient) -> None:
    response = mint(core, "helm", "Template!", "helm-secret-value")
    assert response.status_code == 422
    assert "target_service" in response.json["errors"]["json"]


@pytest.mark.usefixtures("secrets_file")
def test_receivers_enforce_the_audience(core_app: Flask) -> None:
    token = mint(core_app.test_client(), "helm", "template", "helm-secret-value").json["token"]
    with serve_wsgi(core_app) as url:
        jwks = JWKSCache(f"{url}/.well-known/jwks.json")
        assert TokenVerifier(jwks=jwks, service_name="template").verify(token).service == "helm"
        with pytest.raises(InvalidToken, match="not meant for this service"):
            TokenVerifier(jwks=jwks, service_name="codex").verify(token)


@pytest.mark.usefixtures("secrets_file")
def test_template_answers_a_core_minted_service_token(core_app: Flask, tmp_path: Path,
                                                       hm_home: Path) -> None:
    helm_token = mint(core_app.test_client(), "helm", "template", "helm-secret-value")
    ledger_token = mint(core_app.test_client(), "ledger", "template", "ledger-secret-value")
    url = f"sqlite:///{tmp_path}/template.db"
    with serve_wsgi(core_app) as core_url, migrated_database(TEMPLATE.migrations, url):
        template = create_template({"HIVEMATRIX_HOME": str(hm_home), "DATABASE_URL": url,
                                    "CORE_SERVICE_URL": core_url, "SECRET_KEY": "t"})
        client = template.test_client()
        helm = client.get("/api/data",
                          headers={"Authorization": f"Bearer {helm_token.json['token']}"})
        assert helm.status_code == 200 and helm.json["caller"] == "service"
        ledger = client.get("/api/data",
                            headers={"Authorization": f"Bearer {ledger_token.json['token']}"})
        assert ledger.status_code == 403  # authenticated, but not a caller the route admits
        template.extensions["hivematrix.db"].dispose()
