"""``create_service_app``: the one place that turns a service's views into a HiveMatrix app."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import swagger_ui_bundle
from apiflask import APIBlueprint, APIFlask
from flask import Blueprint, Response, current_app, request, send_from_directory
from werkzeug.middleware.proxy_fix import ProxyFix

from hivematrix import __version__
from hivematrix.common import (
    auth,
    db,
    errors,
    logging,
    logship,
    metrics,
    ratelimit,
    security,
    service_client,
)
from hivematrix.common.config import load_settings
from hivematrix.common.health import HealthChecks, disk_check

kit = APIBlueprint("hivematrix", __name__, template_folder="templates", tag="Platform")


@kit.get("/health")
@kit.doc(summary="Service health",
         description="healthy or degraded answer 200, unhealthy 503; `?deep=1` runs "
                     "the expensive checks too.")
@ratelimit.exempt
def health() -> tuple[dict[str, Any], int]:
    checks: HealthChecks = current_app.extensions["hivematrix.health"]
    deep = request.args.get("deep", "").lower() in ("1", "true", "yes")
    report = checks.run(deep=deep)
    return report, 503 if report["status"] == "unhealthy" else 200


@kit.get("/metrics")
@kit.doc(summary="Prometheus metrics", hide=True)
@ratelimit.exempt
def metrics_view() -> Response:
    return metrics.metrics_response()


# Swagger UI's files ship in a wheel, so /docs works without reaching a CDN.
docs_assets = Blueprint("docs_assets", __name__)


@docs_assets.get("/docs/assets/<path:filename>")
@ratelimit.exempt
def docs_asset(filename: str) -> Response:
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)


def create_service_app(
    name: str,
    settings: Mapping[str, Any] | None = None,
    *,
    import_name: str | None = None,
    title: str | None = None,
    blueprints: Iterable[Blueprint] = (),
    defaults: Mapping[str, Any] | None = None,
    database: bool = True,
    trust_forwarded: bool | str = True,
) -> APIFlask:
    """Build a service's app with everything every service shares.

    :param name: the service name (``template``); also the settings folder and token audience.
    :param settings: overrides that win over files and environment (tests).
    :param import_name: the service's package, for its templates (default ``hivematrix.<name>``).
    :param blueprints: the service's views, registered before rate limits are applied.
    :param defaults: the service's own setting defaults.
    :param database: attach ``DATABASE_URL`` as the service's database.
    :param trust_forwarded: apply ``X-Forwarded-*`` (one hop), or the name of a boolean
        setting that decides. Backends trust Nexus; Nexus itself faces the network and
        trusts them only behind a configured TLS terminator.
    """
    config = load_settings(name, settings, defaults=defaults)
    app = APIFlask(import_name or f"hivematrix.{name}", title=title or f"HiveMatrix {name}",
                   version=__version__, spec_path="/apispec.json", docs_path="/docs",
                   json_errors=False)
    app.config.update(config)
    app.config.update(
        # The bundled Swagger UI (4.x) renders OpenAPI 3.0 documents, not 3.1.
        OPENAPI_VERSION="3.0.3",
        SWAGGER_UI_CSS="docs/assets/swagger-ui.css",
        SWAGGER_UI_BUNDLE_JS="docs/assets/swagger-ui-bundle.js",
        SWAGGER_UI_STANDALONE_PRESET_JS="docs/assets/swagger-ui-standalone-preset.js",
        DOCS_FAVICON="docs/assets/favicon-32x32.png",
    )
    # Nexus forwards one hop of X-Forwarded-For/Proto/Host/Prefix; services listen on
    # 127.0.0.1 only, so nobody else can set them.
    if (app.config[trust_forwarded] if isinstance(trust_forwarded, str) else trust_forwarded):
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_prefix=1)  # type: ignore[method-assign]

    # Order matters: the correlation id must exist before anything logs or fails.
    logging.configure_logging(name, app.config["LOG_LEVEL"], app.config["LOG_JSON"])
    logging.init_app(app)
    errors.init_app(app)
    metrics.init_app(app)
    checks = HealthChecks(name)
    checks.add("disk", disk_check(app.config["HIVEMATRIX_HOME"],
                                  app.config["DISK_DEGRADED_PERCENT"],
                                  app.config["DISK_UNHEALTHY_PERCENT"]))
    app.extensions["hivematrix.health"] = checks
    security.init_app(app)
    auth.init_app(app)
    service_client.init_app(app)
    logship.init_app(app)
    if database:
        db.init_app(app)

    app.register_blueprint(kit)
    app.register_blueprint(docs_assets)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    auth.document_security(app)
    # Last: rate limits are applied to the views registered above.
    ratelimit.init_app(app)
    return app
