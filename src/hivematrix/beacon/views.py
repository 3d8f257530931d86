"""Beacon's pages and JSON API: check the caller, ask Codex, let wall.py shape, render.

Staff (admin, technician, billing) see every wall; client users get 403 everywhere. A wall
screen reaches ``/display/<view>`` and its data through Nexus's display link, as the Nexus
service with ``X-HiveMatrix-Display`` — never as a user, and never with ticket descriptions.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from apiflask import APIBlueprint
from flask import current_app, g, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import Forbidden
from werkzeug.wrappers import Response

from hivematrix.beacon import wall
from hivematrix.beacon.codex import CodexError, CodexFeed
from hivematrix.beacon.settings import BeaconSettings, View
from hivematrix.common import ratelimit
from hivematrix.common.auth import bearer_token, permission_required, service_allowed
from hivematrix.common.errors import problem

bp = APIBlueprint("beacon", __name__, tag="Beacon")

STAFF = ("admin", "technician", "billing")
#: Codex lets these start a ticket sync; Beacon offers the button to them only.
SYNCERS = ("admin", "technician")
DISPLAY_HEADER = "X-HiveMatrix-Display"
_AGENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def _settings() -> BeaconSettings:
    found: BeaconSettings = current_app.extensions["beacon.settings"]
    return found


def _codex() -> CodexFeed:
    found: CodexFeed = current_app.extensions["beacon.codex"]
    return found


def _view_or_404(slug: str) -> View | Response:
    view = _settings().view(slug)
    if view is None:
        names = ", ".join(view.slug for view in _settings().views)
        return problem(404, f"There is no view '{slug}'; the views are {names}.",
                       title="Unknown view")
    return view


def _agent_id() -> str | Response | None:
    raw = request.args.get("agent_id", "").strip()
    if not raw:
        return None
    if raw != wall.UNASSIGNED and not _AGENT_ID.fullmatch(raw):
        return problem(422, "agent_id: must be a PSA agent id or 'unassigned'.",
                       title="Invalid input",
                       errors={"query": {"agent_id": ["Must be a PSA agent id or "
                                                      "'unassigned'."]}})
    return raw


def _is_display_call() -> bool:
    """A wall screen through a Nexus display link (the only way Nexus calls as itself).

    :raises Forbidden: a Nexus service call that is not a display link's.
    """
    if not g.is_service_call:
        return False
    if not request.headers.get(DISPLAY_HEADER):
        raise Forbidden("Only Nexus display links may open the wall without a user.")
    return True


def _board(view: View, agent_id: str | None, display: bool) -> tuple[dict[str, Any], str | None]:
    """The wall's data, and the reason it is empty when Codex could not be asked."""
    codex = _codex()
    settings = _settings()
    now = datetime.now(UTC)
    try:
        template = codex.psa_config().get("ticket_url_template")
    except CodexError as exc:
        current_app.logger.warning(f"no PSA ticket links: {exc}")
        template = None
    error = None
    try:
        if view.others:
            feed = codex.feed()
        elif view.group_ids:  # a view of its own groups only needs those
            feed = codex.feed(view.group_ids)
        else:  # no groups configured yet: an empty wall, but still the sync indicator
            feed = {"last_sync_time": codex.last_ticket_sync()}
    except CodexError as exc:
        current_app.logger.error(f"ticket feed unavailable: {exc}")
        feed, error = {}, str(exc)
    board = wall.board(feed, view, settings.views, agent_id=agent_id,
                       url_template=template if isinstance(template, str) else None, now=now,
                       stale_after=timedelta(minutes=settings.stale_sync_minutes),
                       display=display)
    return board, error


def _agents() -> list[dict[str, str]]:
    codex = _codex()
    try:
        provider = codex.psa_config().get("provider")
        return wall.agent_choices(codex.agents(), provider if isinstance(provider, str) else None)
    except CodexError as exc:
        current_app.logger.warning(f"no agent list for the filter: {exc}")
        return []


def _level() -> str:
    return str((g.user or {}).get("permission_level", ""))


# --- pages ----------------------------------------------------------------------------------

@bp.get("/")
@bp.doc(hide=True)
@permission_required(*STAFF)
def index() -> Response:
    return redirect(url_for(".wall_page", slug=_settings().first.slug))


@bp.get("/display")
@bp.doc(hide=True)
@permission_required(*STAFF)
def display_index() -> Response:
    return redirect(url_for(".display_page", slug=_settings().first.slug))


@bp.get("/<slug>")
@bp.doc(hide=True)
@permission_required(*STAFF)
def wall_page(slug: str) -> Response | tuple[str, int]:
    """One view's wall: four sections, the agent filter, the refresh button."""
    view = _view_or_404(slug)
    if isinstance(view, Response):
        return view
    agent_id = _agent_id()
    if isinstance(agent_id, Response):
        return agent_id
    board, error = _board(view, agent_id, display=False)
    settings = _settings()
    agents = _agents()
    if agent_id and agent_id != wall.UNASSIGNED and all(a["id"] != agent_id for a in agents):
        agents.append({"id": agent_id, "name": f"Agent {agent_id}"})  # e.g. one who left
    page = render_template(
        "beacon/wall.html", board=board, error=error, view=view, views=settings.views,
        agents=agents, agent_id=agent_id, unassigned=wall.UNASSIGNED,
        refresh_seconds=settings.refresh_seconds, display=False,
        blank_row=wall.blank_row(display=False),
        api_url=url_for(".api_tickets", slug=view.slug, agent_id=agent_id),
        can_sync=_level() in SYNCERS, is_admin=_level() == "admin",
        unconfigured=not view.others and not view.group_ids)
    return page, 200


@bp.get("/display/<slug>")
@bp.doc(hide=True)
@permission_required(*STAFF)
@service_allowed("nexus")
def display_page(slug: str) -> Response | tuple[str, int]:
    """The wall for a screen: the same sections in large type, no navigation, no details."""
    _is_display_call()
    view = _view_or_404(slug)
    if isinstance(view, Response):
        return view
    agent_id = _agent_id()
    if isinstance(agent_id, Response):
        return agent_id
    board, error = _board(view, agent_id, display=True)
    settings = _settings()
    page = render_template(
        "beacon/display.html", board=board, error=error, view=view,
        refresh_seconds=settings.refresh_seconds, display=True,
        blank_row=wall.blank_row(display=True),
        api_url=url_for(".api_tickets", slug=view.slug, agent_id=agent_id))
    return page, 200


# --- JSON API -------------------------------------------------------------------------------

@bp.get("/api/tickets/<slug>")
@bp.doc(summary="One view's wall",
        description="`sections` (1 open, 2 customer replied, 3 needs agent / update overdue, "
                    "4 other active), each with its `rows` (texts, SLA class, sort keys); "
                    "`sync` (the last ticket sync and whether it is stale). `agent_id` "
                    "narrows to one PSA agent (`unassigned`: nobody). Staff, and Nexus "
                    "display links (without descriptions).")
@permission_required(*STAFF)
@service_allowed("nexus")
def api_tickets(slug: str) -> Response:
    display = _is_display_call()
    view = _view_or_404(slug)
    if isinstance(view, Response):
        return view
    agent_id = _agent_id()
    if isinstance(agent_id, Response):
        return agent_id
    board, error = _board(view, agent_id, display=display)
    if error:
        return problem(502, error, title="Codex unavailable")
    response = jsonify(board)
    response.headers["Cache-Control"] = "no-store"
    return response


def _relay(answer_status: int, body: Any, fallback: str) -> Response:
    """Codex's answer to the browser: JSON as it came, or a problem when it sent none."""
    if isinstance(body, dict):
        response = jsonify(body)
        response.status_code = answer_status
        if answer_status >= 400:
            response.mimetype = "application/problem+json"
        return response
    return problem(answer_status if answer_status >= 400 else 502, fallback)


@bp.post("/api/sync")
@bp.doc(summary="Ask Codex to sync tickets from the PSA now",
        description="Technicians and admins. Forwards the caller's own token to Codex's "
                    "`POST /api/sync/tickets`; answers Codex's 202 (`job_id`), 409 (a sync "
                    "is already running, with its `job_id`) or 503 (no PSA configured).")
@permission_required(*SYNCERS)
@ratelimit.limit("10 per minute")
def api_sync() -> Response:
    token = bearer_token()
    if token is None:  # the access check already required one; keeps the type exact
        raise Forbidden("A user token is required.")
    try:
        answer = _codex().start_ticket_sync(token)
    except CodexError as exc:
        return problem(502, str(exc), title="Codex unavailable")
    body = answer.body
    if answer.status == 202 and isinstance(body, dict) and body.get("job_id"):
        body = {"job_id": body["job_id"], "status": body.get("status", "running"),
                "status_url": url_for(".api_sync_job", job_id=str(body["job_id"]))}
    elif answer.status == 409 and isinstance(body, dict) and body.get("job_id"):
        body = {**body, "status_url": url_for(".api_sync_job", job_id=str(body["job_id"]))}
    return _relay(answer.status, body, "Codex could not start a ticket sync.")


@bp.get("/api/sync/jobs/<job_id>")
@bp.doc(summary="Progress of a ticket sync started from the wall",
        description="Technicians and admins: `status` (running, succeeded, partial, "
                    "failed), `progress`, `counts`, `error`, `finished_at`.")
@permission_required(*SYNCERS)
def api_sync_job(job_id: str) -> Response:
    try:
        answer = _codex().job(job_id)
    except CodexError as exc:
        return problem(502, str(exc), title="Codex unavailable")
    if answer.status == 200 and isinstance(answer.body, dict) and answer.body.get(
            "kind") not in (None, "tickets"):
        # The wall follows the ticket syncs it starts; other jobs are Codex's business.
        return problem(404, f"There is no ticket sync job '{job_id}'.")
    response = _relay(answer.status, answer.body, "Codex could not report the sync job.")
    response.headers["Cache-Control"] = "no-store"
    return response
