"""Beacon's calls to Codex: the feed, the PSA's agents and ticket links, and ticket syncs.

Reads use Beacon's own service token (Codex admits ``beacon`` on them). Starting a sync
does not: Codex lets only technicians and admins start one, so Beacon forwards the signed-in
user's own token and Codex decides — a service token would let anyone who can see the
wall start PSA traffic (upstream's hole).

Agents and the ticket link template change rarely, so they are kept for
``BEACON_CODEX_CACHE_SECONDS`` in each process (a minute by default; several workers may
each hold a copy that long, which is harmless for such data). The feed is never cached:
the wall must show what Codex has now.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from hivematrix.common.health import Check
from hivematrix.common.logging import CORRELATION_HEADER, current_correlation_id
from hivematrix.common.service_client import ServiceCallError, ServiceClient

TARGET = "codex"
JOB_ID = re.compile(r"[A-Za-z0-9-]{1,64}")


class CodexError(RuntimeError):
    """Codex could not give an answer; the message is safe to show to staff."""


@dataclass(frozen=True)
class Answer:
    """Codex's status and JSON body, passed on as they are (sync start and job progress)."""

    status: int
    body: Any


class CodexFeed:
    """Codex as the wall sees it."""

    def __init__(self, client: ServiceClient, *, cache_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    # --- reads with Beacon's service token ------------------------------------------------

    def read(self, path: str, params: Any = None) -> Any:
        """GET one of Codex's JSON reads with Beacon's service token.

        :raises CodexError: Codex is down, refused or answered something else than JSON.
        """
        try:
            response = self.client.call(TARGET, path, params=params,
                                        headers={"Accept": "application/json"})
        except ServiceCallError as exc:
            raise CodexError(f"Codex is not reachable right now ({exc}).") from exc
        if response.status_code != 200:
            raise CodexError(f"Codex answered {response.status_code} to {path}.")
        try:
            return response.json()
        except ValueError as exc:
            raise CodexError(f"Codex's answer to {path} is not JSON.") from exc

    def feed(self, group_ids: Iterable[str] | None = None) -> dict[str, Any]:
        """Codex's active-ticket feed, of some PSA groups only when ``group_ids`` is given.

        :raises CodexError: Codex is down or refused.
        """
        groups = sorted(group_ids or [])
        params = {"group_id": ",".join(groups)} if groups else None
        body = self.read("/api/tickets/active", params)
        if not isinstance(body, dict):
            raise CodexError("Codex's ticket feed is not an object.")
        return body

    def last_ticket_sync(self) -> str | None:
        """When the last ticket sync finished (ISO 8601), from ``/api/sync/status``.

        :raises CodexError: Codex is down or refused.
        """
        body = self.read("/api/sync/status")
        tickets = (body.get("kinds") or {}).get("tickets") if isinstance(body, dict) else None
        finished = tickets.get("last_success_at") if isinstance(tickets, dict) else None
        return finished if isinstance(finished, str) else None

    def _cached(self, key: str, load: Callable[[], Any]) -> Any:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < self.cache_seconds:
                return hit[1]
        value = load()
        with self._lock:
            self._cache[key] = (now, value)
        return value

    def agents(self) -> list[dict[str, Any]]:
        """The PSA's agents (Codex's ``/api/psa/agents``), cached.

        :raises CodexError: Codex is down or refused.
        """
        body = self._cached("agents", lambda: self.read("/api/psa/agents"))
        return [agent for agent in body if isinstance(agent, dict)] if isinstance(
            body, list) else []

    def psa_config(self) -> dict[str, Any]:
        """Which PSA is configured and its ticket URL template, cached.

        :raises CodexError: Codex is down or refused.
        """
        body = self._cached("config", lambda: self.read("/api/psa/config"))
        return body if isinstance(body, dict) else {}

    def job(self, job_id: str) -> Answer:
        """One sync job's progress (without its log, which the wall does not show).

        :raises CodexError: Codex is down.
        """
        if not JOB_ID.fullmatch(job_id):
            return Answer(404, {"detail": f"There is no sync job '{job_id}'."})
        try:
            response = self.client.call(TARGET, f"/api/sync/jobs/{job_id}",
                                        headers={"Accept": "application/json"})
        except ServiceCallError as exc:
            raise CodexError(f"Codex is not reachable right now ({exc}).") from exc
        body = _json_or_none(response)
        if response.status_code == 200 and isinstance(body, dict):
            body = {key: body.get(key) for key in ("id", "kind", "status", "started_at",
                                                   "finished_at", "progress", "counts",
                                                   "error", "triggered_by")}
        return Answer(response.status_code, body)

    # --- a sync, as the signed-in user ----------------------------------------------------

    def start_ticket_sync(self, user_token: str) -> Answer:
        """Ask Codex for a ticket sync on behalf of the user whose token this is.

        :raises CodexError: Codex is down.
        """
        try:
            url = f"{self.client.base_url(TARGET)}/api/sync/tickets"
            correlation = current_correlation_id()
            headers = {"Authorization": f"Bearer {user_token}", "Accept": "application/json",
                       **({CORRELATION_HEADER: correlation} if correlation else {})}
            response = self.client.http.post(url, headers=headers, json={})
        except (ServiceCallError, httpx.HTTPError) as exc:
            raise CodexError(f"Codex is not reachable right now ({exc}).") from exc
        return Answer(response.status_code, _json_or_none(response))


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def health_check(codex: CodexFeed) -> Callable[[], Check]:
    """``/health?deep=1``: can Beacon read Codex's PSA configuration?"""

    def check() -> Check:
        try:
            codex.read("/api/psa/config")
        except CodexError as exc:
            return Check("degraded", {"error": str(exc)})
        return Check("healthy")

    return check
