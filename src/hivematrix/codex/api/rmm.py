"""`/api/assets/<id>/rmm...`: an RMM-managed asset as the RMM sees it right now, and remote
quick jobs on it, through the configured RMM connector (Datto).

The connector's credentials never leave Codex: callers name a Codex asset, Codex resolves its
RMM device id. Reads are for staff (and the assistant acting for them); starting a job runs
code on a client's machine, so only admins and technicians may, and it is logged with who
asked. Nothing is stored: every answer is the vendor's, fetched for this request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Dict, String
from apiflask.validators import Length, Regexp
from flask import current_app, g
from werkzeug.wrappers import Response

from hivematrix.codex import access, assets
from hivematrix.codex.api import refusals
from hivematrix.codex.api.visibility import own_company_only
from hivematrix.codex.connectors.factory import NotConfigured, rmm
from hivematrix.codex.connectors.http import ConnectorError
from hivematrix.codex.models import Asset
from hivematrix.codex.settings import BadSetting
from hivematrix.common.auth import permission_required, service_allowed
from hivematrix.common.db import get_session
from hivematrix.common.errors import problem

bp = APIBlueprint("codex_rmm", __name__, tag="RMM")

STAFF = ("admin", "technician", "billing")
#: The assistant looks devices up for the staff member it is chatting with.
READERS = ("brainhair",)
#: A job id or component uid as Datto writes them (UUIDs); nothing else reaches a URL.
VENDOR_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
VENDOR_ID = Regexp(VENDOR_ID_PATTERN,
                   error="Use the RMM's id: letters, digits, dashes or underscores.")
MAX_VARIABLES = 50


class QuickJobIn(Schema):
    component_uid = String(required=True, validate=VENDOR_ID)
    variables = Dict(keys=String(validate=Length(1, 100)),
                     values=String(validate=Length(max=2000)), load_default=dict,
                     validate=Length(max=MAX_VARIABLES))
    job_name = String(load_default="", validate=Length(max=200))


class RMMUnavailable(Exception):
    """The RMM could not answer; ``status`` is 503 (not configured) or 502 (it failed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _managed(asset_id: int) -> Asset:
    """The asset, visible to the caller, and managed by the configured RMM (409 otherwise)."""
    asset = assets.get(get_session(), asset_id)
    own_company_only(asset.company, f"There is no asset {asset_id}.")
    if not asset.rmm_device_id or not asset.rmm_source:
        raise assets.AssetError(None, f"Asset {asset_id} ({asset.hostname}) is not "
                                "managed by an RMM.", 409)
    return asset


@contextmanager
def _connector(asset: Asset) -> Iterator[Any]:
    try:
        connector = rmm(current_app.config)
    except NotConfigured as exc:
        raise RMMUnavailable(503, str(exc)) from None
    except BadSetting as exc:
        raise RMMUnavailable(503, f"The RMM is misconfigured: {exc}") from None
    try:
        if connector.source != asset.rmm_source:
            raise assets.AssetError(None, f"Asset {asset.id} is managed by "
                                    f"{asset.rmm_source}, not the configured RMM "
                                    f"({connector.source}).", 409)
        yield connector
    except ConnectorError as exc:
        raise RMMUnavailable(502, str(exc)) from None
    finally:
        close = getattr(connector, "close", None)
        if callable(close):
            close()


def _vendor_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """The RMM's failures as problem documents (502/503), never a traceback."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except RMMUnavailable as exc:
            title = "Not configured" if exc.status == 503 else "RMM failed"
            return problem(exc.status, str(exc), title=title)

    return wrapper


def _asset_ref(asset: Asset) -> dict[str, Any]:
    return {"id": asset.id, "hostname": asset.hostname,
            "account_number": asset.company.account_number,
            "rmm_source": asset.rmm_source, "rmm_device_id": asset.rmm_device_id}


@bp.get("/api/assets/<int:asset_id>/rmm")
@bp.doc(summary="Live details of an RMM-managed asset",
        description="Asked of the RMM now (nothing stored): online state, last seen, "
                    "patches, antivirus, agent version, UDFs... Staff and the Brainhair "
                    "service. 409 when the asset is not RMM-managed, 503 when no RMM is "
                    "configured, 502 when the RMM fails.")
@permission_required(*STAFF)
@service_allowed(*READERS)
@refusals
@_vendor_errors
def device_details(asset_id: int) -> Any:
    asset = _managed(asset_id)
    with _connector(asset) as connector:
        details = connector.device_details(str(asset.rmm_device_id))
    return {"asset": _asset_ref(asset), "device": details}


@bp.post("/api/assets/<int:asset_id>/rmm/jobs")
@bp.doc(summary="Run a component on an RMM-managed asset (a quick job)",
        description="Admins and technicians. Body: `component_uid` (the RMM's component), "
                    "`variables` (name → value, at most 50), `job_name`. Answers 201 with the "
                    "job reference (`job_uid`); follow it with GET .../rmm/jobs/<job_uid>. "
                    "The RMM refusing (unknown component or variable): 502 with its reason.")
@permission_required(*access.WRITERS)
@bp.input(QuickJobIn, location="json", arg_name="data")
@refusals
@_vendor_errors
def start_job(asset_id: int, data: dict[str, Any]) -> Any:
    asset = _managed(asset_id)
    who = str(g.user.get("preferred_username") or g.user.get("sub") or "unknown")
    name = data["job_name"].strip() or f"HiveMatrix: {data['component_uid']}"
    with _connector(asset) as connector:
        job = connector.run_quick_job(str(asset.rmm_device_id), data["component_uid"],
                                      data["variables"], job_name=f"{name} (by {who})")
    current_app.logger.warning(f"RMM quick job {job.get('job_uid')} (component "
                               f"{data['component_uid']}) started on asset {asset.id} "
                               f"({asset.hostname}) by {who}")
    return {"asset": _asset_ref(asset), "job": job}, 201


@bp.get("/api/assets/<int:asset_id>/rmm/jobs/<job_uid>")
@bp.doc(summary="A quick job's status, and its results once completed",
        description="`job.status` is `active` or `completed`; once completed, `results` has "
                    "each component's status, warnings and stdout/stderr on this asset. "
                    "Staff and the Brainhair service.")
@permission_required(*STAFF)
@service_allowed(*READERS)
@refusals
@_vendor_errors
def job(asset_id: int, job_uid: str) -> Any | Response:
    if VENDOR_ID_PATTERN.match(job_uid) is None:
        return problem(400, "job_uid: not an RMM job id", title="Bad path parameter",
                       errors={"path": {"job_uid": ["Not an RMM job id."]}})
    asset = _managed(asset_id)
    with _connector(asset) as connector:
        status = connector.job_status(job_uid)
        results = (connector.job_results(job_uid, str(asset.rmm_device_id))
                   if status.get("status") == "completed" else None)
    return {"asset": _asset_ref(asset), "job": status, "results": results}
