"""A contract fake of the Freshservice API v2, served over real HTTP.

It follows the documented contract (vendor-apis.md section 1): Basic auth with the API key as
user name and ``X`` as password (401 ``{code, message}`` otherwise); ``page``/``per_page``
paging up to 100 with a ``Link: <...>; rel="next"`` header only while more pages exist (400
above 100); singular and plural wrapper keys; the rate-limit headers on every answer and 429
with ``Retry-After`` on demand (every Nth call, or the next N calls); validation errors as
``{description, errors: [{field, message, code}]}`` and empty 404s.

Tickets: the list hides spam and deleted tickets unless ``filter=spam``/``deleted`` asks for
them, lists only the last 30 days without ``updated_since``, embeds ``stats`` and
``requester`` on ``include=``; ``/tickets/filter`` parses the quoted query grammar (``:``,
``:>``, ``:<``, ``AND``, ``OR``, parentheses, numbers, quoted strings and dates, ``null``),
pages by 30 and reports a ``total``. Writes (department PUT merging custom fields and
refusing undeclared ones, ticket PUT, notes) are applied and recorded in :attr:`writes`.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, jsonify, request

from hivematrix.common.testing import serve_wsgi

API_KEY = "fs-api-key-7Qx2"
RATE_LIMIT_TOTAL = 200  # a Garden plan's calls per minute
FILTER_PAGE = 30
#: The agent the API key belongs to: it authors notes added through the API.
API_AGENT_ID = 21001931878


def stamp(moment: datetime) -> str:
    """A datetime as Freshservice sends it: ISO-8601 UTC with a ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_stamp(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _validation(field: str, message: str, code: str) -> tuple[Response, int]:
    return jsonify({"description": "Validation failed",
                    "errors": [{"field": field, "message": message, "code": code}]}), 400


class FilterError(ValueError):
    pass


_TOKEN = re.compile(r"\s*(?:(?P<open>\()|(?P<close>\))|(?P<joiner>AND|OR)(?![\w])|"
                    r"(?P<field>[a-z_][a-z0-9_]*)(?P<op>:[<>]?)"
                    r"(?:(?P<number>\d+)|'(?P<string>[^']*)'|(?P<null>null)))")
_DATE_FIELDS = frozenset({"created_at", "due_by", "fr_due_by"})
_FILTER_FIELDS = {"workspace_id": "workspace_id", "requester_id": "requester_id",
                  "email": "email", "agent_id": "responder_id", "group_id": "group_id",
                  "priority": "priority", "status": "status", "impact": "impact",
                  "urgency": "urgency", "tag": "tags", "due_by": "due_by",
                  "fr_due_by": "fr_due_by", "created_at": "created_at"}

Predicate = Callable[[dict[str, Any]], bool]


def parse_filter(query: str) -> Predicate:
    """The ticket filter grammar as a predicate over stored tickets; FilterError if invalid."""
    return _FilterParser(query).parse()


class _FilterParser:
    """Recursive descent: expression = conjunction (OR conjunction)*, conjunction = operand
    (AND operand)*, operand = "(" expression ")" | field op value."""

    def __init__(self, query: str) -> None:
        self.tokens: list[re.Match[str]] = []
        position = 0
        while query[position:].strip():
            match = _TOKEN.match(query, position)
            if match is None:
                raise FilterError(f"cannot read the query at position {position}")
            self.tokens.append(match)
            position = match.end()
        self.index = 0

    def parse(self) -> Predicate:
        predicate = self.expression()
        if self.index != len(self.tokens):
            raise FilterError(f"unexpected {self.tokens[self.index].group().strip()!r}")
        return predicate

    def peek(self) -> re.Match[str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def joined(self, joiner: str, part: Callable[[], Predicate],
               combine: Callable[[Iterator[bool]], bool]) -> Predicate:
        parts = [part()]
        while (token := self.peek()) is not None and token["joiner"] == joiner:
            self.index += 1
            parts.append(part())
        return lambda ticket: combine(each(ticket) for each in parts)

    def expression(self) -> Predicate:
        return self.joined("OR", self.conjunction, any)

    def conjunction(self) -> Predicate:
        return self.joined("AND", self.operand, all)

    def operand(self) -> Predicate:
        token = self.peek()
        if token is None:
            raise FilterError("the query ends too early")
        self.index += 1
        if token["open"]:
            inner = self.expression()
            closing = self.peek()
            if closing is None or not closing["close"]:
                raise FilterError("a parenthesis is not closed")
            self.index += 1
            return inner
        if not token["field"]:
            raise FilterError(f"unexpected {token.group().strip()!r}")
        return _comparison(token)


def _comparison(token: re.Match[str]) -> Predicate:
    name, op = token["field"], token["op"]
    if name not in _FILTER_FIELDS:
        raise FilterError(f"{name} cannot be filtered on")
    key = _FILTER_FIELDS[name]
    if token["null"]:
        return lambda ticket: ticket.get(key) is None
    if name in _DATE_FIELDS:
        if token["string"] is None or op == ":":
            raise FilterError(f"{name} takes :> or :< and a 'yyyy-mm-dd' date")
        return _on_date(key, op, datetime.fromisoformat(token["string"]).date())
    return _on_value(key, op, int(token["number"]) if token["number"] else token["string"])


def _on_date(key: str, op: str, day: date) -> Predicate:
    def matches(ticket: dict[str, Any]) -> bool:
        if ticket.get(key) is None:
            return False
        value = parse_stamp(ticket[key]).date()
        return value >= day if op == ":>" else value <= day

    return matches


def _on_value(key: str, op: str, wanted: Any) -> Predicate:
    def matches(ticket: dict[str, Any]) -> bool:
        value = ticket.get(key)
        if isinstance(value, list):
            return wanted in value
        if op == ":":
            return bool(value == wanted)
        if not isinstance(value, int) or not isinstance(wanted, int):
            return False
        return value >= wanted if op == ":>" else value <= wanted

    return matches


class FreshserviceFake:
    """One Freshservice account; tests seed it, run the connector against it, inspect it.

    Payload lists hold whatever a test puts there (malformed payloads included); tickets are
    stored with their ``stats`` and flags and shaped per request.
    """

    def __init__(self, *, api_key: str = API_KEY, throttle_every: int = 0,
                 retry_after: int = 1) -> None:
        self.lock = threading.RLock()
        self.api_key = api_key
        self.throttle_every = throttle_every
        self.throttle_next = 0
        self.retry_after = retry_after
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.department_fields = ["account_number", "plan_selected", "contract_term",
                                  "contract_start_date", "company_main_number", "address"]
        self.statuses = {2, 3, 4, 5, 9, 13, 23}
        self.departments: list[Any] = []
        self.requesters: list[Any] = []
        self.agents: list[Any] = []
        self.tickets: list[Any] = []
        self.conversations: dict[int, list[Any]] = {}
        self.time_entries: dict[int, list[Any]] = {}
        self.calls = 0
        self.throttled = 0  # 429s answered
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, path, query
        self.writes: list[tuple[str, str, Any]] = []  # method, path, JSON body
        self._ids = itertools.count(21009000001)

    # -- seeding --------------------------------------------------------------------------

    def seed(self) -> FreshserviceFake:
        """A small MSP account: three companies, their people, two agents, six tickets."""
        now = self.now
        self.departments = [
            {"id": 21000097757, "name": "Acme Dental", "description": "Client since 2019",
             "head_user_id": None, "prime_user_id": 21001000001,
             "domains": ["acmedental.com"],
             "custom_fields": {"account_number": "620547", "plan_selected": "Gold",
                               "contract_term": "2 years", "contract_start_date": "2024-03-01",
                               "company_main_number": "+1 555 0100",
                               "address": "1 Main St, Springfield"},
             "created_at": "2022-08-29T14:17:32Z", "updated_at": "2024-01-05T09:00:11Z"},
            {"id": 21000097758, "name": "Beta Law", "description": None, "head_user_id": None,
             "prime_user_id": None, "domains": [],
             "custom_fields": {"account_number": None, "plan_selected": "Silver",
                               "contract_term": "Monthly"},
             "created_at": "2023-02-01T10:00:00Z", "updated_at": "2023-02-01T10:00:00Z"},
            {"id": 21000097759, "name": "Cobalt Clinic", "description": "",
             "head_user_id": 21001000003, "prime_user_id": None,
             "domains": ["cobalt.example", "cobaltclinic.example"], "custom_fields": None,
             "created_at": "2023-06-12T08:30:00Z", "updated_at": "2023-06-12T08:30:00Z"},
        ]
        self.requesters = [
            self.requester(21001000001, "Dana", "Reyes", "dana@acmedental.com",
                           [21000097757], job_title="Office Manager",
                           secondary_emails=["billing@acmedental.com"], vip_user=True),
            self.requester(21001000002, "Eli", "Park", "eli@acmedental.com", [21000097757],
                           mobile_phone_number="+1 555 0199"),
            self.requester(21001000003, "Fay", "Olsen", "fay@cobalt.example",
                           [21000097759, 21000097757]),
            self.requester(21001000004, "Gus", "", "gus@betalaw.example", [21000097758],
                           active=False),
        ]
        self.agents = [
            self.agent(API_AGENT_ID, "Sam", "Tech", "sam@msp.example", [21000188001]),
            self.agent(21001931879, "Riley", "Ng", "riley@msp.example",
                       [21000188001, 21000188002], job_title="Engineer"),
        ]
        recent = now - timedelta(minutes=3)
        self.tickets = [
            self.ticket(1001, "Printer offline", 2, 3, 21001000001, 21000097757,
                        created=now - timedelta(days=2), updated=recent,
                        responder=API_AGENT_ID, description="<p>The front desk printer "
                        "shows <b>offline</b>.</p><p>Since Monday.</p>",
                        stats={"first_responded_at": stamp(now - timedelta(days=2, hours=-1)),
                               "agent_responded_at": stamp(now - timedelta(hours=5))}),
            self.ticket(1002, "New laptop for Eli", 4, 2, 21001000002, 21000097757,
                        created=now - timedelta(days=10), updated=now - timedelta(days=6),
                        type_="Service Request",
                        stats={"resolved_at": stamp(now - timedelta(days=6)),
                               "closed_at": None}),
            self.ticket(1003, "VPN drops", 5, 4, 21001000003, 21000097759,
                        created=now - timedelta(days=20), updated=now - timedelta(days=15),
                        stats={"resolved_at": stamp(now - timedelta(days=16)),
                               "closed_at": stamp(now - timedelta(days=15))}),
            self.ticket(1004, "Old migration project", 9, 1, 21001000004, 21000097758,
                        created=now - timedelta(days=60), updated=now - timedelta(days=45),
                        # A reopened ticket still carries its earlier resolution's time.
                        stats={"resolved_at": stamp(now - timedelta(days=50))}),
            self.ticket(1005, "WIN BIG PRIZES", 2, 1, 21001000004, None,
                        created=now - timedelta(days=1), updated=recent, spam=True),
            self.ticket(1006, "Duplicate of 1001", 2, 3, 21001000001, 21000097757,
                        created=now - timedelta(days=2), updated=recent, deleted=True),
        ]
        self.time_entries = {
            1001: [self.time_entry(21000167654, API_AGENT_ID, "01:30", "Checked the driver"),
                   self.time_entry(21000167655, 21001931879, "00:20", "Call with Dana",
                                   billable=False)],
            1002: [self.time_entry(21000167656, 21001931879, "02:05:30", "Imaged laptop")],
        }
        self.conversations = {
            1001: [
                self.conversation(21000500001, 21001000001, "<div>It still says "
                                  "<i>offline</i>&nbsp;today.</div>", incoming=True,
                                  from_email="Dana Reyes <dana@acmedental.com>"),
                self.conversation(21000500002, API_AGENT_ID, "<p>Driver reinstalled.</p>"
                                  "<script>alert(1)</script><ul><li>rebooted</li>"
                                  "<li>test page ok</li></ul>", private=True, source=2),
            ],
        }
        return self

    def requester(self, id_: int, first: str, last: str, email: str,
                  departments: list[int], **extra: Any) -> dict[str, Any]:
        payload = {"id": id_, "first_name": first, "last_name": last, "job_title": None,
                   "primary_email": email, "secondary_emails": [], "work_phone_number": None,
                   "mobile_phone_number": None, "department_ids": departments,
                   "active": True, "vip_user": False, "has_logged_in": False,
                   "is_agent": False, "custom_fields": {}, "time_zone": "Eastern Time (US "
                   "& Canada)", "created_at": "2023-01-01T00:00:00Z",
                   "updated_at": "2023-01-01T00:00:00Z"}
        payload.update(extra)
        return payload

    def agent(self, id_: int, first: str, last: str, email: str, groups: list[int],
              **extra: Any) -> dict[str, Any]:
        payload = {"id": id_, "first_name": first, "last_name": last, "occasional": False,
                   "active": True, "job_title": "Technician", "email": email,
                   "member_of": groups, "observer_of": [], "department_ids": [],
                   "roles": [{"role_id": 1, "assignment_scope": "entire_helpdesk",
                              "groups": []}], "custom_fields": {},
                   "created_at": "2021-05-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"}
        payload.update(extra)
        return payload

    def ticket(self, id_: int, subject: str, status: int, priority: int, requester_id: int,
               department_id: int | None, *, created: datetime, updated: datetime,
               responder: int | None = None, description: str = "", type_: str = "Incident",
               stats: dict[str, Any] | None = None, spam: bool = False,
               deleted: bool = False) -> dict[str, Any]:
        return {"id": id_, "subject": subject, "type": type_, "status": status,
                "priority": priority, "urgency": 2, "impact": 2, "source": 2,
                "requester_id": requester_id, "responder_id": responder,
                "group_id": 21000188001, "department_id": department_id,
                "workspace_id": 2, "category": "Hardware", "sub_category": None,
                "item_category": None, "description": description or f"<p>{subject}</p>",
                "description_text": "", "due_by": stamp(created + timedelta(days=3)),
                "fr_due_by": stamp(created + timedelta(hours=4)), "is_escalated": False,
                "fr_escalated": False, "tags": [], "cc_emails": [], "custom_fields": {},
                "attachments": [], "spam": spam, "deleted": deleted,
                "created_at": stamp(created), "updated_at": stamp(updated),
                "stats": {"first_responded_at": None, "agent_responded_at": None,
                          "resolved_at": None, "closed_at": None, **(stats or {})}}

    def time_entry(self, id_: int, agent_id: int, spent: str, note: str, *,
                   billable: bool = True) -> dict[str, Any]:
        moment = stamp(self.now - timedelta(days=1))
        return {"id": id_, "agent_id": agent_id, "time_spent": spent, "billable": billable,
                "executed_at": moment, "start_time": moment, "timer_running": False,
                "task_id": None, "note": note, "custom_fields": {}, "created_at": moment,
                "updated_at": moment}

    def conversation(self, id_: int, user_id: int, body: str, *, private: bool = False,
                     incoming: bool = False, source: int = 0,
                     from_email: str | None = None) -> dict[str, Any]:
        moment = stamp(self.now - timedelta(hours=6))
        return {"id": id_, "user_id": user_id, "body": body, "body_text": "",
                "incoming": incoming, "private": private, "source": source,
                "support_email": None, "from_email": from_email, "to_emails": [],
                "cc_emails": [], "bcc_emails": [], "attachments": [], "created_at": moment,
                "updated_at": moment}

    # -- lookups --------------------------------------------------------------------------

    def department(self, id_: int) -> dict[str, Any] | None:
        return next((d for d in self.departments
                     if isinstance(d, dict) and d.get("id") == id_), None)

    def stored_ticket(self, id_: int) -> dict[str, Any] | None:
        return next((t for t in self.tickets if isinstance(t, dict) and t.get("id") == id_),
                    None)

    def queries(self, path: str) -> list[dict[str, str]]:
        """The query strings of the GET requests made to ``path``."""
        return [query for method, seen, query in self.requests
                if method == "GET" and seen == path]

    # -- the app --------------------------------------------------------------------------

    def _shaped_department(self, payload: Any) -> Any:
        """A department as the API answers it: every declared custom field, null if unset."""
        if not isinstance(payload, dict) or "custom_fields" not in payload:
            return payload
        custom = payload["custom_fields"] or {}
        return {**payload, "custom_fields": {name: custom.get(name)
                                             for name in self.department_fields}}

    def _shaped_ticket(self, payload: Any, include: set[str]) -> Any:
        if not isinstance(payload, dict):
            return payload
        shaped = {key: value for key, value in payload.items() if key != "stats"}
        if "stats" in include:
            shaped["stats"] = payload.get("stats")
        if "requester" in include:
            person = next((r for r in self.requesters if isinstance(r, dict)
                           and r.get("id") == payload.get("requester_id")), None)
            shaped["requester"] = None if person is None else {
                "id": person["id"], "email": person.get("primary_email"),
                "name": " ".join(p for p in (person.get("first_name"),
                                             person.get("last_name")) if p),
                "mobile": person.get("mobile_phone_number"),
                "phone": person.get("work_phone_number")}
        return shaped

    def wsgi(self) -> Flask:  # noqa: C901 - one small handler per documented endpoint
        app = Flask("fake_freshservice")

        @app.before_request
        def guard() -> Any:
            with self.lock:
                self.requests.append((request.method, request.path.removeprefix("/api/v2"),
                                      request.args.to_dict()))
                auth = request.authorization
                if (auth is None or auth.type != "basic" or auth.username != self.api_key
                        or auth.password != "X"):
                    return jsonify({"code": "invalid_credentials",
                                    "message": "Your API key is not valid for this account."}
                                   ), 401
                self.calls += 1
                throttled = self.throttle_next > 0 or (
                    self.throttle_every and self.calls % self.throttle_every == 0)
                if self.throttle_next > 0:
                    self.throttle_next -= 1
            if throttled:
                with self.lock:
                    self.throttled += 1
                response = jsonify({"code": "rate_limit_exceeded",
                                    "message": "You have exceeded the limit of requests per "
                                               "minute for this account."})
                response.status_code = 429
                response.headers["Retry-After"] = str(self.retry_after)
                return response
            return None

        @app.after_request
        def rate_headers(response: Response) -> Response:
            response.headers["X-RateLimit-Total"] = str(RATE_LIMIT_TOTAL)
            response.headers["X-RateLimit-Remaining"] = str(
                max(RATE_LIMIT_TOTAL - self.calls % RATE_LIMIT_TOTAL, 0))
            response.headers["X-RateLimit-Used-CurrentRequest"] = "1"
            return response

        def paged(key: str, items: list[Any]) -> Any:
            try:
                page = int(request.args.get("page", "1"))
                per_page = int(request.args.get("per_page", "30"))
            except ValueError:
                return _validation("page", "It should be a number", "datatype_mismatch")
            if page < 1:
                return _validation("page", "It should be a positive number", "invalid_value")
            if not 1 <= per_page <= 100:
                return _validation("per_page", "It should be between 1 and 100",
                                   "invalid_value")
            start = (page - 1) * per_page
            response = jsonify({key: items[start:start + per_page]})
            if start + per_page < len(items):
                query = {**request.args.to_dict(), "page": str(page + 1),
                         "per_page": str(per_page)}
                response.headers["Link"] = (f"<{request.base_url}?{urlencode(query)}>; "
                                            'rel="next"')
            return response

        def json_body() -> dict[str, Any] | None:
            body = request.get_json(silent=True)
            return body if isinstance(body, dict) else None

        @app.get("/api/v2/departments")
        def departments() -> Any:
            return paged("departments", [self._shaped_department(d) for d in self.departments])

        @app.get("/api/v2/departments/<int:id_>")
        def department(id_: int) -> Any:
            found = self.department(id_)
            if found is None:
                return Response(status=404)
            return jsonify({"department": self._shaped_department(found)})

        @app.put("/api/v2/departments/<int:id_>")
        def update_department(id_: int) -> Any:
            found = self.department(id_)
            if found is None:
                return Response(status=404)
            body = json_body()
            if body is None:
                return _validation("body", "It should be a JSON object", "invalid_value")
            for key in body:
                if key not in ("name", "description", "head_user_id", "prime_user_id",
                               "domains", "custom_fields"):
                    return _validation(key, "Unexpected/invalid field in request",
                                       "invalid_field")
            custom = body.get("custom_fields") or {}
            for key in custom:
                if key not in self.department_fields:
                    return _validation(key, "Unexpected/invalid field in request",
                                       "invalid_field")
            with self.lock:
                self.writes.append(("PUT", f"/departments/{id_}", body))
                found.update({k: v for k, v in body.items() if k != "custom_fields"})
                found["custom_fields"] = {**(found.get("custom_fields") or {}), **custom}
                found["updated_at"] = stamp(datetime.now(UTC))
            return jsonify({"department": self._shaped_department(found)})

        @app.get("/api/v2/requesters")
        def requesters() -> Any:
            return paged("requesters", self.requesters)

        @app.get("/api/v2/agents")
        def agents() -> Any:
            return paged("agents", self.agents)

        def includes() -> set[str] | None:
            wanted = {part for part in request.args.get("include", "").split(",") if part}
            return wanted if wanted <= {"stats", "requester"} else None

        def visible(ticket: Any, view: str | None) -> bool:
            if not isinstance(ticket, dict):
                return view is None
            if view == "spam":
                return bool(ticket.get("spam"))
            if view == "deleted":
                return bool(ticket.get("deleted"))
            return not ticket.get("spam") and not ticket.get("deleted")

        @app.get("/api/v2/tickets")
        def tickets() -> Any:
            include = includes()
            if include is None:
                return _validation("include", "It should be one of stats, requester",
                                   "invalid_value")
            view = request.args.get("filter")
            if view not in (None, "spam", "deleted", "new_and_my_open", "watching"):
                return _validation("filter", "It should be one of new_and_my_open, watching, "
                                   "spam, deleted", "invalid_value")
            since_text = request.args.get("updated_since")
            try:
                since = parse_stamp(since_text) if since_text else None
            except ValueError:
                return _validation("updated_since", "It should be a valid date time",
                                   "invalid_value")
            listed = []
            for ticket in self.tickets:
                if not visible(ticket, view if view in ("spam", "deleted") else None):
                    continue
                if isinstance(ticket, dict):
                    if since is None:  # without updated_since: created in the last 30 days
                        if parse_stamp(ticket["created_at"]) < self.now - timedelta(days=30):
                            continue
                    elif parse_stamp(ticket["updated_at"]) < since:
                        continue
                listed.append(ticket)
            reverse = request.args.get("order_type", "desc") == "desc"
            listed.sort(key=lambda t: str(t.get("created_at", "")) if isinstance(t, dict)
                        else "", reverse=reverse)
            return paged("tickets", [self._shaped_ticket(t, include) for t in listed])

        @app.get("/api/v2/tickets/filter")
        def filter_tickets() -> Any:
            raw = request.args.get("query", "")
            if len(raw) < 2 or not (raw.startswith('"') and raw.endswith('"')):
                return _validation("query", "The query should be enclosed in double quotes",
                                   "invalid_value")
            if len(raw) - 2 > 512:
                return _validation("query", "It should be at most 512 characters",
                                   "invalid_value")
            try:
                predicate = parse_filter(raw[1:-1])
            except (FilterError, ValueError) as exc:
                return _validation("query", str(exc), "invalid_value")
            try:
                page = int(request.args.get("page", "1"))
            except ValueError:
                return _validation("page", "It should be a number", "datatype_mismatch")
            matches = [self._shaped_ticket(t, set()) for t in self.tickets
                       if isinstance(t, dict) and visible(t, None) and predicate(t)]
            matches.sort(key=lambda t: str(t["created_at"]), reverse=True)
            start = (page - 1) * FILTER_PAGE
            return jsonify({"tickets": matches[start:start + FILTER_PAGE],
                            "total": len(matches)})

        @app.get("/api/v2/tickets/<int:id_>")
        def ticket(id_: int) -> Any:
            found = self.stored_ticket(id_)
            if found is None:
                return Response(status=404)
            return jsonify({"ticket": self._shaped_ticket(found, includes() or set())})

        @app.put("/api/v2/tickets/<int:id_>")
        def update_ticket(id_: int) -> Any:
            found = self.stored_ticket(id_)
            if found is None or found.get("deleted"):
                return Response(status=404)
            body = json_body()
            if body is None:
                return _validation("body", "It should be a JSON object", "invalid_value")
            if "status" in body and body["status"] not in self.statuses:
                return _validation("status", "It should be one of these values: "
                                   f"{','.join(map(str, sorted(self.statuses)))}",
                                   "invalid_value")
            with self.lock:
                self.writes.append(("PUT", f"/tickets/{id_}", body))
                found.update(body)
                found["updated_at"] = stamp(datetime.now(UTC))
            return jsonify({"ticket": self._shaped_ticket(found, set())})

        @app.post("/api/v2/tickets/<int:id_>/notes")
        def add_note(id_: int) -> Any:
            found = self.stored_ticket(id_)
            if found is None or found.get("deleted"):
                return Response(status=404)
            body = json_body()
            if body is None or not isinstance(body.get("body"), str) or not body["body"]:
                return _validation("body", "It should not be blank", "missing_field")
            with self.lock:
                self.writes.append(("POST", f"/tickets/{id_}/notes", body))
                note = self.conversation(next(self._ids), API_AGENT_ID, body["body"],
                                         private=bool(body.get("private", True)), source=2)
                note["created_at"] = note["updated_at"] = stamp(datetime.now(UTC))
                self.conversations.setdefault(id_, []).append(note)
                found["updated_at"] = note["created_at"]
            return jsonify({"conversation": note}), 201

        @app.get("/api/v2/tickets/<int:id_>/conversations")
        def conversations(id_: int) -> Any:
            if self.stored_ticket(id_) is None:
                return Response(status=404)
            return paged("conversations", self.conversations.get(id_, []))

        @app.get("/api/v2/tickets/<int:id_>/time_entries")
        def time_entries(id_: int) -> Any:
            if self.stored_ticket(id_) is None:
                return Response(status=404)
            return paged("time_entries", self.time_entries.get(id_, []))

        return app

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve the account; yields the account's URL (as an MSP would configure it)."""
        with serve_wsgi(self.wsgi()) as url:
            yield url
