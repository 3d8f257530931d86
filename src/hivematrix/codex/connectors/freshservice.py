"""Freshservice (API v2) as Codex's PSA.

What is read, and from where:

- departments → companies. The account number, billing plan, contract term and start date,
  main phone and address are department custom fields whose internal names are settings
  (``FRESHSERVICE_*_FIELD``). A department without an account number is still a company: the
  store gives it one and the runner writes it back (upstream skipped such departments).
- requesters → contacts, linked to each of their departments; a department's head or prime
  user is its "primary" contact.
- agents → PSA agents (their group memberships kept).
- tickets, listed with ``updated_since`` (without it Freshservice lists only the last 30 days,
  so a full sync asks from 2000 on) and with their stats, which give ``closed_at`` and the
  response times as Freshservice recorded them. The normal listing hides spam and deleted
  tickets, so those are listed too and reported with that status: the store keeps them,
  marked, and the ticket feed leaves them out. With ``details`` each ticket also brings its
  time entries and conversations (two more paged calls per ticket).

Statuses and priorities are normalised through maps merged over :data:`DEFAULT_STATUSES` and
:data:`DEFAULT_PRIORITIES` (``FRESHSERVICE_STATUS_MAP`` / ``FRESHSERVICE_PRIORITY_MAP``, JSON
objects of Freshservice id to name; an empty name drops a default).

Writes: an account number into the department's custom field, a ticket's status (mapped back
to the Freshservice id) and private notes.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from typing import Any, TypeVar

import httpx

from hivematrix.codex.connectors.http import BlockedAddress, ConnectorError, VendorHTTP
from hivematrix.codex.settings import DEFAULTS, BadSetting, allowlist, json_mapping, require
from hivematrix.codex.sync.records import (
    AgentRecord,
    CompanyRecord,
    ContactRecord,
    ConversationRecord,
    RecordFailure,
    TicketRecord,
    TimeEntryRecord,
)

SOURCE = "freshservice"
#: Freshservice's largest page for list endpoints.
MAX_PAGE_SIZE = 100
#: Longest filter expression the ticket filter endpoint takes.
MAX_QUERY_LENGTH = 512
#: A full ticket sync lists everything updated since this moment (Freshservice has no "all").
FULL_HISTORY_SINCE = datetime(2000, 1, 1, tzinfo=UTC)

#: 2-5 are Freshservice's own statuses; the others are ids one MSP's instance defined and are
#: only defaults here, overridden or dropped through FRESHSERVICE_STATUS_MAP.
DEFAULT_STATUSES: dict[int, str] = {
    2: "open", 3: "pending", 4: "resolved", 5: "closed", 6: "spam", 7: "deleted",
    8: "scheduled", 9: "waiting_customer", 10: "waiting_third_party",
    13: "under_investigation", 15: "job_complete_bill", 16: "billing_complete",
    19: "update_needed", 23: "on_hold", 26: "customer_replied", 27: "pending_hubspot",
}
DEFAULT_PRIORITIES: dict[int, str] = {1: "low", 2: "medium", 3: "high", 4: "urgent"}
#: Normalised statuses of a finished ticket: only these take a closing time from the stats
#: (a reopened ticket may still carry the stats of its earlier resolution).
FINISHED_STATUSES = frozenset({"resolved", "closed", "job_complete_bill", "billing_complete"})

# Column widths of the normalised names (codex_tickets.status / .priority).
_STATUS_LIMIT = 40
_PRIORITY_LIMIT = 20

T = TypeVar("T")


class Unreadable(ValueError):
    """A payload field has no usable value; the message names the field."""


@dataclass(frozen=True)
class DepartmentFields:
    """Internal names of the department custom fields Codex reads ("" when not kept)."""

    account_number: str = "account_number"
    plan: str = "plan_selected"
    contract_term: str = "contract_term"
    contract_start: str = "contract_start_date"
    main_phone: str = "company_main_number"
    address: str = "address"


_FIELD_SETTINGS = {
    "account_number": "FRESHSERVICE_ACCOUNT_NUMBER_FIELD",
    "plan": "FRESHSERVICE_PLAN_FIELD",
    "contract_term": "FRESHSERVICE_CONTRACT_TERM_FIELD",
    "contract_start": "FRESHSERVICE_CONTRACT_START_FIELD",
    "main_phone": "FRESHSERVICE_MAIN_PHONE_FIELD",
    "address": "FRESHSERVICE_ADDRESS_FIELD",
}


# -- reading payload fields ---------------------------------------------------------------


def _id(payload: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = payload.get(key)
    if value is None or value == "":
        if required:
            raise Unreadable(f"{key} is missing")
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    raise Unreadable(f"{key} {value!r} is not an id")


def _ids(payload: Mapping[str, Any], key: str) -> tuple[str, ...]:
    values = payload.get(key)
    if values is None:
        return ()
    if not isinstance(values, list):
        raise Unreadable(f"{key} is not a list")
    ids = []
    for index, value in enumerate(values):
        item = _id({f"{key}[{index}]": value}, f"{key}[{index}]", required=True)
        assert item is not None
        ids.append(item)
    return tuple(ids)


def _code(payload: Mapping[str, Any], key: str) -> int:
    value = payload.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise Unreadable(f"{key} {value!r} is not a Freshservice code")


def _text(payload: Mapping[str, Any], key: str, label: str = "") -> str:
    value = payload.get(key)
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    raise Unreadable(f"{label or key} is not text")


def _strings(payload: Mapping[str, Any], key: str) -> tuple[str, ...]:
    values = payload.get(key)
    if values is None:
        return ()
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise Unreadable(f"{key} is not a list of text")
    return tuple(value.strip() for value in values if value.strip())


def _flag(payload: Mapping[str, Any], key: str, default: bool) -> bool:
    value = payload.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    raise Unreadable(f"{key} {value!r} is not true or false")


def _when(payload: Mapping[str, Any], key: str) -> datetime | None:
    value = payload.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Unreadable(f"{key} {value!r} is not a timestamp")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Unreadable(f"{key} {value!r} is not a timestamp") from None
    if moment.tzinfo is None:  # Freshservice speaks UTC; a bare time is UTC too
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _day(payload: Mapping[str, Any], key: str, label: str) -> date | None:
    value = payload.get(key)
    if value is None or value == "":
        return None
    # Date custom fields come as "2024-03-01" (some accounts add a time: the date is kept).
    if isinstance(value, str) and len(value.strip()) >= 10:
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise Unreadable(f"{label} {value!r} is not a date")


def _object(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = payload.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Unreadable(f"{key} is not an object")
    return value


_SPENT = re.compile(r"(\d+):([0-5]\d)(?::([0-5]\d))?")


def hours_spent(value: Any) -> Decimal:
    """Freshservice's ``time_spent`` ("hh:mm", or "hh:mm:ss") as hours to the hundredth."""
    match = _SPENT.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise Unreadable(f"time_spent {value!r} is not hh:mm")
    hours, minutes, seconds = int(match[1]), int(match[2]), int(match[3] or 0)
    total = Decimal(hours) + Decimal(minutes) / 60 + Decimal(seconds) / 3600
    return total.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


# -- HTML to text -------------------------------------------------------------------------

_BLOCKS = frozenset({"p", "div", "ul", "ol", "tr", "table", "blockquote", "pre", "hr",
                     "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "header",
                     "footer"})
_INVISIBLE = frozenset({"script", "style", "head", "title", "template"})


class _TextOf(HTMLParser):
    """Collects the visible text of an HTML fragment, with line breaks where blocks end."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0
        self.preformatted = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE:
            self.hidden += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in _BLOCKS:
            self.parts.append("\n")
            if tag == "pre":
                self.preformatted += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCKS:  # not "li": list items follow each other line by line
            self.parts.append("\n")
            if tag == "pre":
                self.preformatted = max(0, self.preformatted - 1)

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        # Outside <pre>, source line breaks are just spaces, as a browser shows them.
        self.parts.append(data if self.preformatted else re.sub(r"\s+", " ", data))


def html_to_text(fragment: str) -> str:
    """The readable text of an HTML message: tags and scripts gone, paragraphs kept apart."""
    parser = _TextOf()
    parser.feed(fragment)
    parser.close()
    lines: list[str] = []
    for line in "".join(parser.parts).split("\n"):
        line = " ".join(line.split())
        if line or (lines and lines[-1]):
            lines.append(line)
    return "\n".join(lines).strip()


def note_html(note: str, author: str = "") -> str:
    """A note typed as plain text, escaped into the HTML body Freshservice stores."""
    body = "<br>".join(html.escape(line) for line in note.strip().splitlines())
    signature = f"<div>&mdash; {html.escape(author)} (HiveMatrix)</div>" if author else ""
    return f"<div>{body}</div>{signature}"


# -- settings -----------------------------------------------------------------------------


def code_map(config: Mapping[str, Any], key: str, defaults: Mapping[int, str], *,
             limit: int) -> dict[int, str]:
    """A map of Freshservice ids to normalised names: the setting merged over the defaults."""
    merged = dict(defaults)
    for raw_code, name in json_mapping(config, key).items():
        if not str(raw_code).strip().isdigit():
            raise BadSetting(f"{key}: {raw_code!r} is not a Freshservice id (a whole number)")
        code = int(raw_code)
        if name is None or name == "":
            merged.pop(code, None)
            continue
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > limit:
            raise BadSetting(f"{key}: the name for {raw_code} must be text of 1 to {limit} "
                             "characters")
        merged[code] = name.strip()
    return merged


def api_base(url: str) -> str:
    """``https://acme.freshservice.com`` (or with ``/api/v2`` already) → the API's base."""
    base = url.strip().rstrip("/")
    if "://" not in base:
        base = f"https://{base}"
    return base if base.endswith("/api/v2") else f"{base}/api/v2"


def _number(config: Mapping[str, Any], key: str, kind: Callable[[Any], T]) -> T:
    try:
        return kind(config.get(key, DEFAULTS[key]))
    except (TypeError, ValueError):
        raise BadSetting(f"{key}: not a number") from None


def from_settings(config: Mapping[str, Any], *,
                  page_size: int = MAX_PAGE_SIZE) -> FreshserviceConnector:
    """The connector Codex's settings describe; :class:`BadSetting` names what is wrong."""
    require(config, "FRESHSERVICE_URL", "FRESHSERVICE_API_KEY")
    statuses = code_map(config, "FRESHSERVICE_STATUS_MAP", DEFAULT_STATUSES,
                        limit=_STATUS_LIMIT)
    priorities = code_map(config, "FRESHSERVICE_PRIORITY_MAP", DEFAULT_PRIORITIES,
                          limit=_PRIORITY_LIMIT)
    fields = DepartmentFields(**{
        name: str(config.get(key, DEFAULTS[key]) or "").strip()
        for name, key in _FIELD_SETTINGS.items()})
    timeout = _number(config, "CODEX_HTTP_TIMEOUT_SECONDS", float)
    retries = _number(config, "CODEX_HTTP_RETRIES", int)
    if timeout <= 0 or retries < 1:
        raise BadSetting("CODEX_HTTP_TIMEOUT_SECONDS and CODEX_HTTP_RETRIES must be positive")
    try:
        http = VendorHTTP(
            SOURCE, api_base(str(config["FRESHSERVICE_URL"])),
            # Freshservice's Basic auth: the API key as user name, "X" as password.
            auth=httpx.BasicAuth(str(config["FRESHSERVICE_API_KEY"]).strip(), "X"),
            headers={"Accept": "application/json"}, timeout=timeout, retries=retries,
            allowlist=allowlist(config))
    except BlockedAddress as exc:
        raise BadSetting(f"FRESHSERVICE_URL: {exc}") from exc
    return FreshserviceConnector(http, statuses=statuses, priorities=priorities, fields=fields,
                                 page_size=page_size)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _path_id(external_id: str) -> str:
    """An id put into a URL path: digits only, so nothing else can be addressed."""
    if not str(external_id).isdigit():
        raise ValueError(f"{external_id!r} is not a Freshservice id")
    return str(external_id)


def _payload_id(payload: Any) -> str:
    if isinstance(payload, dict) and payload.get("id") is not None:
        return str(payload["id"])[:64]
    return "?"


def _answer(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ConnectorError(f"{SOURCE} {what}: answer is not JSON") from None


# -- the connector ------------------------------------------------------------------------


class FreshserviceConnector:
    """:class:`~hivematrix.codex.connectors.base.PSAConnector` over Freshservice's API v2."""

    source = SOURCE

    def __init__(self, http: VendorHTTP, *, statuses: Mapping[int, str] | None = None,
                 priorities: Mapping[int, str] | None = None,
                 fields: DepartmentFields | None = None,
                 page_size: int = MAX_PAGE_SIZE) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1 to {MAX_PAGE_SIZE}")
        self.http = http
        self.statuses = dict(DEFAULT_STATUSES if statuses is None else statuses)
        self.priorities = dict(DEFAULT_PRIORITIES if priorities is None else priorities)
        self.fields = fields or DepartmentFields()
        self.page_size = page_size
        # Heads and prime users per department, from the companies listing that usually comes
        # right before the contacts one (so contacts need not list departments again).
        self._leads: dict[str, frozenset[str]] | None = None

    def close(self) -> None:
        self.http.close()

    # -- paging ---------------------------------------------------------------------------

    def _pages(self, path: str, key: str,
               params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Every item of a listing; another page exists while the answer has a next link."""
        page = 1
        while True:
            response = self.http.request("GET", path, params={
                **(params or {}), "page": page, "per_page": self.page_size})
            body = _answer(response, f"GET {path}")
            items = body.get(key) if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise ConnectorError(f"{SOURCE} GET {path}: the answer has no {key!r} list")
            yield from items
            if not items or "next" not in response.links:
                return
            page += 1

    def _read(self, kind: str, payload: Any, read: Callable[[Mapping[str, Any]], T]
              ) -> T | RecordFailure:
        """One payload as a record, or a failure naming what could not be read."""
        try:
            if not isinstance(payload, dict):
                raise Unreadable("not a JSON object")
            return read(payload)
        except (ValueError, TypeError) as exc:  # Unreadable, and any odd value's own error
            return RecordFailure(kind, _payload_id(payload), str(exc), payload)

    # -- companies, contacts, agents --------------------------------------------------------

    def companies(self) -> Iterator[CompanyRecord | RecordFailure]:
        leads: dict[str, frozenset[str]] = {}
        for payload in self._pages("/departments", "departments"):
            item = self._read("companies", payload, self._company)
            if isinstance(item, CompanyRecord):
                leads[item.external_id] = _department_leads(payload)
            yield item
        self._leads = leads

    def _company(self, payload: Mapping[str, Any]) -> CompanyRecord:
        external_id = _id(payload, "id", required=True)
        assert external_id is not None
        name = _text(payload, "name")
        if not name:
            raise Unreadable("name is missing")
        custom = _object(payload, "custom_fields")

        def field(attribute: str) -> str:
            key = getattr(self.fields, attribute)
            return _text(custom, key, f"custom field {key}") if key else ""

        start_key = self.fields.contract_start
        return CompanyRecord(
            source=SOURCE, external_id=external_id, name=name,
            account_number=field("account_number") or None,
            description=_text(payload, "description"), domains=_strings(payload, "domains"),
            main_phone=field("main_phone"), address=field("address"),
            billing_plan=field("plan") or None,
            contract_term_length=field("contract_term") or None,
            contract_start_date=(_day(custom, start_key, f"custom field {start_key}")
                                 if start_key else None))

    def _leads_by_department(self) -> dict[str, frozenset[str]]:
        if self._leads is not None:
            leads, self._leads = self._leads, None
            return leads
        return {str(payload["id"]): _department_leads(payload)
                for payload in self._pages("/departments", "departments")
                if isinstance(payload, dict) and payload.get("id") is not None}

    def contacts(self) -> Iterator[ContactRecord | RecordFailure]:
        leads = self._leads_by_department()
        for payload in self._pages("/requesters", "requesters"):
            yield self._read("contacts", payload,
                             lambda payload: self._contact(payload, leads))

    def _contact(self, payload: Mapping[str, Any],
                 leads: Mapping[str, frozenset[str]]) -> ContactRecord:
        external_id = _id(payload, "id", required=True)
        assert external_id is not None
        first, last = _text(payload, "first_name"), _text(payload, "last_name")
        email = _text(payload, "primary_email") or None
        name = " ".join(part for part in (first, last) if part) or email or ""
        if not name:
            raise Unreadable("neither a name nor a primary_email")
        led = {department for department, people in leads.items() if external_id in people}
        departments = dict.fromkeys((*_ids(payload, "department_ids"), *sorted(led)))
        return ContactRecord(
            source=SOURCE, external_id=external_id, name=name, email=email,
            secondary_emails=_strings(payload, "secondary_emails"), first_name=first,
            last_name=last, title=_text(payload, "job_title"),
            work_phone=_text(payload, "work_phone_number"),
            mobile_phone=_text(payload, "mobile_phone_number"),
            active=_flag(payload, "active", True), vip=_flag(payload, "vip_user", False),
            companies=tuple((department, "primary" if department in led else "general")
                            for department in departments))

    def agents(self) -> Iterator[AgentRecord | RecordFailure]:
        for payload in self._pages("/agents", "agents"):
            yield self._read("agents", payload, self._agent)

    def _agent(self, payload: Mapping[str, Any]) -> AgentRecord:
        external_id = _id(payload, "id", required=True)
        assert external_id is not None
        email = _text(payload, "email")
        name = " ".join(part for part in (_text(payload, "first_name"),
                                          _text(payload, "last_name")) if part) or email
        if not name:
            raise Unreadable("neither a name nor an email")
        return AgentRecord(source=SOURCE, external_id=external_id, name=name, email=email,
                           active=_flag(payload, "active", True),
                           job_title=_text(payload, "job_title"),
                           group_ids=_ids(payload, "member_of"))

    # -- tickets ----------------------------------------------------------------------------

    def tickets(self, *, updated_since: datetime | None,
                details: bool) -> Iterator[TicketRecord | RecordFailure]:
        params = {"updated_since": _stamp(updated_since or FULL_HISTORY_SINCE),
                  "include": "requester,stats",
                  # Oldest first: a ticket created while listing lands on the last page
                  # instead of shifting every later page by one.
                  "order_type": "asc"}
        authors = self._agent_names() if details else {}
        # Spam and deleted tickets only show when asked for by name.
        for view in (None, "spam", "deleted"):
            listing = params if view is None else {**params, "filter": view}
            for payload in self._pages("/tickets", "tickets", listing):
                item = self._read("tickets", payload, self._ticket)
                if (details and isinstance(item, TicketRecord) and view is None
                        and item.status not in ("spam", "deleted")):
                    item = self._with_details(item, authors)
                yield item

    def filter_tickets(self, query: str) -> Iterator[TicketRecord | RecordFailure]:
        """Tickets matching a filter expression, e.g. ``(status:2 OR status:3) AND
        priority:>3`` (without details; the filter endpoint pages by 30 and gives a total)."""
        if len(query) > MAX_QUERY_LENGTH:
            raise ValueError(f"a Freshservice filter is at most {MAX_QUERY_LENGTH} characters")
        page, listed = 1, 0
        while True:
            response = self.http.request("GET", "/tickets/filter",
                                         params={"query": f'"{query}"', "page": page})
            body = _answer(response, "GET /tickets/filter")
            items = body.get("tickets") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise ConnectorError(f"{SOURCE} GET /tickets/filter: the answer has no "
                                     "'tickets' list")
            for payload in items:
                yield self._read("tickets", payload, self._ticket)
            listed += len(items)
            total = body.get("total")
            more = "next" in response.links or (isinstance(total, int) and listed < total)
            if not items or not more:
                return
            page += 1

    def _ticket(self, payload: Mapping[str, Any]) -> TicketRecord:
        external_id = _id(payload, "id", required=True)
        assert external_id is not None
        status_code, priority_code = _code(payload, "status"), _code(payload, "priority")
        if _flag(payload, "deleted", False):
            status = "deleted"
        elif _flag(payload, "spam", False):
            status = "spam"
        else:
            status = self.statuses.get(status_code, f"status_{status_code}")
        stats = _object(payload, "stats")
        requester = _object(payload, "requester")
        closed_at = None
        if status in FINISHED_STATUSES:
            closed_at = _when(stats, "closed_at") or _when(stats, "resolved_at")
        description_html = _text(payload, "description")
        return TicketRecord(
            source=SOURCE, external_id=external_id, number=external_id,
            subject=_text(payload, "subject"), status=status, status_raw=str(status_code),
            priority=self.priorities.get(priority_code, f"priority_{priority_code}"),
            priority_raw=priority_code, company_external_id=_id(payload, "department_id"),
            description_html=description_html,
            description_text=(html_to_text(description_html) if description_html
                              else _text(payload, "description_text")),
            ticket_type=_text(payload, "type") or "Incident",
            requester_external_id=_id(payload, "requester_id"),
            requester_name=_text(requester, "name"), requester_email=_text(requester, "email"),
            responder_external_id=_id(payload, "responder_id"),
            group_id=_id(payload, "group_id"), created_at=_when(payload, "created_at"),
            updated_at=_when(payload, "updated_at"), closed_at=closed_at,
            fr_due_by=_when(payload, "fr_due_by"), due_by=_when(payload, "due_by"),
            first_responded_at=_when(stats, "first_responded_at"),
            agent_responded_at=_when(stats, "agent_responded_at"))

    def _agent_names(self) -> dict[str, str]:
        """Agent id → name, to name the authors of notes (which carry only a user id)."""
        names = {}
        for item in self.agents():
            if isinstance(item, AgentRecord):
                names[item.external_id] = item.name
        return names

    def _with_details(self, ticket: TicketRecord,
                      authors: Mapping[str, str]) -> TicketRecord | RecordFailure:
        try:
            entries = tuple(self._time_entries(ticket.external_id))
            conversations = tuple(self._conversations(ticket, authors))
        except (ConnectorError, ValueError) as exc:
            return RecordFailure("tickets", ticket.external_id, f"details: {exc}")
        return replace(ticket, time_entries=entries, conversations=conversations)

    def _time_entries(self, ticket_id: str) -> Iterator[TimeEntryRecord]:
        for payload in self._pages(f"/tickets/{_path_id(ticket_id)}/time_entries",
                                   "time_entries"):
            if not isinstance(payload, dict):
                raise Unreadable("a time entry is not a JSON object")
            entry_id = _id(payload, "id", required=True)
            assert entry_id is not None
            try:
                yield TimeEntryRecord(
                    external_id=entry_id, hours=hours_spent(payload.get("time_spent")),
                    agent_external_id=_id(payload, "agent_id"),
                    billable=_flag(payload, "billable", True), note=_text(payload, "note"),
                    executed_at=_when(payload, "executed_at"))
            except Unreadable as exc:
                raise Unreadable(f"time entry {entry_id}: {exc}") from None

    def _conversations(self, ticket: TicketRecord,
                       authors: Mapping[str, str]) -> Iterator[ConversationRecord]:
        for payload in self._pages(f"/tickets/{_path_id(ticket.external_id)}/conversations",
                                   "conversations"):
            if not isinstance(payload, dict):
                raise Unreadable("a conversation is not a JSON object")
            entry_id = _id(payload, "id", required=True)
            assert entry_id is not None
            try:
                body_html = _text(payload, "body")
                user = _id(payload, "user_id")
                author = (authors.get(user or "") or _text(payload, "from_email")
                          or (ticket.requester_name if user and user ==
                              ticket.requester_external_id else "") or (user or ""))
                yield ConversationRecord(
                    external_id=entry_id, private=_flag(payload, "private", False),
                    body_text=(html_to_text(body_html) if body_html
                               else _text(payload, "body_text")),
                    body_html=body_html, author=author[:255],
                    incoming=_flag(payload, "incoming", False),
                    created_at=_when(payload, "created_at"))
            except Unreadable as exc:
                raise Unreadable(f"conversation {entry_id}: {exc}") from None

    # -- writes -----------------------------------------------------------------------------

    def set_company_account_number(self, external_id: str, account_number: str) -> None:
        """Put the account number into the department's custom field.

        The PUT carries every custom field the department has, the number changed: whether
        Freshservice keeps custom fields a PUT leaves out is not documented, and losing an
        MSP's contract fields to find out is not an option.
        """
        key = self.fields.account_number
        if not key:
            raise ConnectorError("FRESHSERVICE_ACCOUNT_NUMBER_FIELD is empty: no department "
                                 "field to write the account number to")
        path = f"/departments/{_path_id(external_id)}"
        body = self.http.json("GET", path)
        department = body.get("department") if isinstance(body, dict) else None
        if not isinstance(department, dict):
            raise ConnectorError(f"{SOURCE} GET {path}: the answer has no department")
        custom = department.get("custom_fields") or {}
        if not isinstance(custom, dict) or key not in custom:
            raise ConnectorError(f"{SOURCE} department {external_id} has no custom field "
                                 f"{key!r} (named by FRESHSERVICE_ACCOUNT_NUMBER_FIELD)")
        self.http.request("PUT", path, json={"custom_fields": {**custom, key: account_number}})

    def status_code(self, status: str) -> int:
        """The Freshservice id of a normalised status (the lowest, if several map to it)."""
        codes = sorted(code for code, name in self.statuses.items() if name == status)
        if not codes:
            raise ValueError(f"no Freshservice status id is mapped to {status!r} "
                             "(see FRESHSERVICE_STATUS_MAP)")
        return codes[0]

    def update_ticket(self, external_id: str, *, status: str | None = None,
                      note: str | None = None, author: str = "") -> None:
        """Set a ticket's status and/or add a private note (status checked before any call)."""
        path = f"/tickets/{_path_id(external_id)}"
        code = self.status_code(status) if status is not None else None
        if code is not None:
            self.http.request("PUT", path, json={"status": code})
        if note is not None and note.strip():
            self.http.request("POST", f"{path}/notes",
                              json={"body": note_html(note, author), "private": True})


def _department_leads(payload: Mapping[str, Any]) -> frozenset[str]:
    """The department's head and prime user, the people a company's "primary" role goes to."""
    leads = set()
    for key in ("head_user_id", "prime_user_id"):
        try:
            lead = _id(payload, key)
        except Unreadable:
            lead = None
        if lead is not None:
            leads.add(lead)
    return frozenset(leads)
