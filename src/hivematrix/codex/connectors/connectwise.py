"""ConnectWise Manage (PSA) over its REST API 3.0.

Companies, contacts, members (→ PSA agents) and service tickets with their time entries and
notes, read page by page (``orderBy=id asc``, following the ``Link`` header's ``rel="next"``)
and filtered with ConnectWise's ``conditions`` language; tickets incrementally with
``lastUpdated > [timestamp]``.

Two things ConnectWise does differently from Freshservice shape this module:

* Statuses and priorities are defined per tenant (statuses per board), so there are no fixed
  ids. Both are mapped by **name** (or by id, when an operator configures ids), over defaults
  that cover ConnectWise's stock names; a status no map knows keeps its own name as a slug,
  or becomes ``closed`` when ConnectWise flags the ticket closed.
* The account number lives in a company custom field found by its caption
  (``CONNECTWISE_ACCOUNT_NUMBER_FIELD``); writing it back replaces the ``customFields`` array
  through a JSON Patch, since ConnectWise matches custom fields by id within that array.

The base URL is either the API root (``https://host/v4_6_release/apis/3.0``) or just the host,
in which case the codebase is looked up once at ``/login/companyinfo/{companyId}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from hivematrix.codex.connectors.http import (
    BlockedAddress,
    ConnectorError,
    VendorHTTP,
    check_url,
)
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

SOURCE = "connectwise"
API_SUFFIX = "/apis/3.0"
MAX_PAGE_SIZE = 1000

#: Stock ConnectWise board status names (compared without a leading ">", case and spacing).
DEFAULT_STATUS_MAP: dict[str, str] = {
    "new": "open", "new (email connector)": "open", "new (email)": "open",
    "new (portal)": "open", "new (phone)": "open", "assigned": "open", "re-opened": "open",
    "reopened": "open",
    "acknowledged": "pending", "in progress": "pending", "work in progress": "pending",
    "scheduled": "scheduled", "update needed": "update_needed",
    "waiting customer": "waiting_customer", "waiting on customer": "waiting_customer",
    "waiting client": "waiting_customer",
    "waiting vendor": "waiting_third_party", "waiting on vendor": "waiting_third_party",
    "waiting third party": "waiting_third_party", "waiting parts": "waiting_third_party",
    "customer updated": "customer_replied", "customer responded": "customer_replied",
    "on hold": "on_hold",
    "completed": "resolved", "resolved": "resolved",
    "closed": "closed", "cancelled": "closed", "canceled": "closed",
}

#: Stock ConnectWise priority names; others are guessed from their words (see _guess_priority).
DEFAULT_PRIORITY_MAP: dict[str, str] = {
    "priority 1 - emergency response": "urgent", "priority 2 - quick response": "high",
    "priority 3 - normal response": "medium", "priority 4 - schedule maintenance": "low",
    "priority 5 - next time": "low", "critical": "urgent", "emergency": "urgent",
    "urgent": "urgent", "high": "high", "medium": "medium", "normal": "medium", "low": "low",
}
FALLBACK_PRIORITY = "medium"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CLOSED_STATES = frozenset({"closed", "resolved"})

#: Longest normalised values the ticket table holds.
STATUS_LENGTH = 40
PRIORITY_LENGTH = 20

#: What a payload the mapping cannot read raises (missing keys, wrong types, bad dates...).
UNREADABLE = (KeyError, TypeError, ValueError, AttributeError, ArithmeticError)


def _key(name: str) -> str:
    """A name as the maps compare it: ">Closed " and "closed" are the same status."""
    return re.sub(r"\s+", " ", name.strip().lstrip(">").strip().lower())


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", _key(name)).strip("_")[:STATUS_LENGTH] or "unknown"


@dataclass(frozen=True)
class NameMap:
    """A tenant-defined code table mapped to Codex's words: by id first, then by name."""

    by_id: Mapping[str, str]
    by_name: Mapping[str, str]

    @classmethod
    def build(cls, setting: str, configured: Mapping[str, Any], defaults: Mapping[str, str],
              max_length: int) -> NameMap:
        by_id: dict[str, str] = {}
        by_name = {_key(name): value for name, value in defaults.items()}
        for raw_key, value in configured.items():
            target = value.strip().lower() if isinstance(value, str) else ""
            if not target or len(target) > max_length:
                raise BadSetting(f"{setting}: {raw_key!r} must map to a name of 1 to "
                                 f"{max_length} characters")
            key = str(raw_key).strip()
            if key.isdigit():
                by_id[key] = target
            else:
                by_name[_key(key)] = target
        return cls(by_id, by_name)

    def lookup(self, ref: Mapping[str, Any]) -> str | None:
        ref_id = ref.get("id")
        if ref_id is not None and str(ref_id) in self.by_id:
            return self.by_id[str(ref_id)]
        name = ref.get("name")
        return self.by_name.get(_key(name)) if isinstance(name, str) else None


def _guess_priority(name: str) -> str:
    """ConnectWise's "Priority N - ..." naming, or the words a tenant's own priorities use."""
    key = _key(name)
    numbered = re.match(r"priority\s*(\d+)", key)
    if numbered:
        return {1: "urgent", 2: "high", 3: "medium"}.get(int(numbered.group(1)), "low")
    for words, priority in ((("emergency", "critical", "urgent"), "urgent"),
                            (("high", "quick"), "high"), (("medium", "normal"), "medium"),
                            (("low", "schedule", "next time"), "low")):
        if any(word in key for word in words):
            return priority
    return FALLBACK_PRIORITY


# -- payload helpers -------------------------------------------------------------------------


def _ref(payload: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A reference object (``{"id", "name", "_info"}``), or an empty one when absent/null."""
    value = payload.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} is not a reference object")
    return value


def _ref_id(payload: Mapping[str, Any], name: str) -> str | None:
    ref_id = _ref(payload, name).get("id")
    return None if ref_id is None else str(ref_id)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value.strip()


def _moment(value: Any) -> datetime | None:
    """ConnectWise's ``2024-05-02T15:31:02Z`` as an aware UTC datetime (naive ones are UTC)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected a timestamp, got {type(value).__name__}")
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _day(value: Any) -> date | None:
    """A Date custom field: ``2024-03-01`` or ``2024-03-01T00:00:00Z``."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected a date, got {type(value).__name__}")
    return date.fromisoformat(value[:10])


def _hours(value: Any) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise TypeError(f"actualHours is {value!r}")
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def _field_text(value: Any) -> str | None:
    """A custom field's value as text: numbers without a trailing ``.0``; empty is None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal | int | float):
        number = Decimal(str(value))
        return str(int(number)) if number == number.to_integral_value() else str(number)
    text = str(value).strip()
    return text or None


def _custom_fields(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Custom field values by caption (as :func:`_key` compares them)."""
    fields = payload.get("customFields") or []
    if not isinstance(fields, list):
        raise TypeError("customFields is not a list")
    return {_key(str(item.get("caption", ""))): item.get("value")
            for item in fields if isinstance(item, Mapping)}


def _domain(website: str) -> tuple[str, ...]:
    text = website.strip().lower()
    if not text:
        return ()
    host = (urlsplit(text if "//" in text else f"//{text}").hostname or "").removeprefix("www.")
    return (host,) if "." in host else ()


def _address(payload: Mapping[str, Any]) -> str:
    region = " ".join(part for part in (_text(payload.get("state")), _text(payload.get("zip")))
                      if part)
    locality = ", ".join(part for part in (_text(payload.get("city")), region) if part)
    country = _text(_ref(payload, "country").get("name"))
    return "\n".join(part for part in (_text(payload.get("addressLine1")),
                                       _text(payload.get("addressLine2")), locality, country)
                     if part)


def _failure(kind: str, payload: Any, exc: BaseException) -> RecordFailure:
    external_id = payload.get("id") if isinstance(payload, Mapping) else None
    reason = f"unreadable payload ({type(exc).__name__}: {exc})"
    return RecordFailure(kind, "?" if external_id is None else str(external_id), reason,
                         payload)


def _json_default(value: Any) -> Any:
    """Decimals read from ConnectWise go back as JSON numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# -- the connector ---------------------------------------------------------------------------


class ConnectWise:
    """The PSA connector for ConnectWise Manage (see the module docstring)."""

    source = SOURCE

    def __init__(self, url: str, *, company_id: str, public_key: str, private_key: str,
                 client_id: str, status_map: NameMap, priority_map: NameMap,
                 account_number_field: str = "AccountNumber",
                 company_field_captions: Mapping[str, str] | None = None,
                 company_conditions: str = "", ticket_conditions: str = "",
                 page_size: int = MAX_PAGE_SIZE, timeout: float = 30.0, retries: int = 5,
                 allowed_hosts: Iterable[str] = ()) -> None:
        hosts = tuple(allowed_hosts)
        parts = urlsplit(check_url(url.strip(), hosts))
        path = parts.path.rstrip("/")
        self.company_id = company_id
        self.statuses = status_map
        self.priorities = priority_map
        self.account_number_field = account_number_field
        self.company_field_captions = dict(company_field_captions or {})
        self.company_conditions = company_conditions.strip()
        self.ticket_conditions = ticket_conditions.strip()
        self.page_size = page_size
        # One client for the whole host: the codebase lookup sits outside the API root.
        self.http = VendorHTTP(
            "ConnectWise", f"{parts.scheme}://{parts.netloc}",
            auth=httpx.BasicAuth(f"{company_id}+{public_key}", private_key),
            headers={"clientId": client_id, "Accept": "application/json"},
            timeout=timeout, retries=retries, allowlist=hosts)
        self._prefix = path
        self._api: str | None = path if path.lower().endswith(API_SUFFIX) else None

    def close(self) -> None:
        self.http.close()

    # -- HTTP ------------------------------------------------------------------------------

    @property
    def api(self) -> str:
        """The API root's path, looking the tenant's codebase up on first use."""
        if self._api is None:
            info = self._decode("GET", f"/login/companyinfo/{self.company_id}", self.http.request(
                "GET", f"{self._prefix}/login/companyinfo/{self.company_id}"))
            codebase = info.get("Codebase") if isinstance(info, Mapping) else None
            if not isinstance(codebase, str) or not codebase.strip("/"):
                raise ConnectorError(f"ConnectWise: no codebase for company {self.company_id!r}"
                                     " (check CONNECTWISE_COMPANY_ID and CONNECTWISE_URL)")
            self._api = f"{self._prefix}/{codebase.strip('/')}{API_SUFFIX}"
        return self._api

    def _decode(self, method: str, path: str, response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            # Decimals, not floats: hours and number fields keep their exact value.
            return json.loads(response.content, parse_float=Decimal)
        except ValueError as exc:
            raise ConnectorError(f"ConnectWise {method} {path}: answer is not JSON") from exc

    def _call(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
              body: Any = None) -> tuple[Any, httpx.Response]:
        kwargs: dict[str, Any] = {"params": params}
        if body is not None:
            kwargs["content"] = json.dumps(body, default=_json_default)
            kwargs["headers"] = {"Content-Type": "application/json"}
        try:
            response = self.http.request(method, self.api + path, **kwargs)
        except ConnectorError as exc:
            if " HTTP 401 " in str(exc):
                raise ConnectorError(
                    f"{exc} (check CONNECTWISE_COMPANY_ID, CONNECTWISE_PUBLIC_KEY, "
                    "CONNECTWISE_PRIVATE_KEY and CONNECTWISE_CLIENT_ID)") from exc
            raise
        return self._decode(method, path, response), response

    def _pages(self, path: str, *, conditions: str = "",
               order_by: str = "id asc") -> Iterator[Any]:
        """Every item of a listing, page by page.

        The next page is the one ``rel="next"`` names; only its query is taken from the link,
        so a link can never send the connector to another host. Without a ``Link`` header at
        all, a full page means there may be another.
        """
        params = {"page": "1", "pageSize": str(self.page_size), "orderBy": order_by}
        if conditions:
            params["conditions"] = conditions
        asked: set[tuple[tuple[str, str], ...]] = set()
        while True:
            asked.add(tuple(sorted(params.items())))
            body, response = self._call("GET", path, params=params)
            if not isinstance(body, list):
                raise ConnectorError(f"ConnectWise GET {path}: expected a list, got "
                                     f"{type(body).__name__}")
            yield from body
            following = self._next_params(response, params, len(body))
            if following is None:
                return
            if tuple(sorted(following.items())) in asked:
                raise ConnectorError(f"ConnectWise GET {path}: the next page link repeats "
                                     f"page {following.get('page')}")
            params = following

    def _next_params(self, response: httpx.Response, params: Mapping[str, str],
                     count: int) -> dict[str, str] | None:
        if "link" in response.headers:
            following = response.links.get("next")
            if not following or not following.get("url"):
                return None
            return dict(parse_qsl(urlsplit(following["url"]).query, keep_blank_values=True))
        if count < self.page_size:
            return None
        return {**params, "page": str(int(params["page"]) + 1)}

    def _listing(self, kind: str, path: str, read: Callable[[Mapping[str, Any]], Any], *,
                 conditions: str = "") -> Iterator[Any]:
        for payload in self._pages(path, conditions=conditions):
            try:
                yield read(payload)
            except UNREADABLE as exc:
                yield _failure(kind, payload, exc)

    # -- companies -------------------------------------------------------------------------

    def companies(self) -> Iterator[CompanyRecord | RecordFailure]:
        return self._listing("companies", "/company/companies", self._company,
                             conditions=self.company_conditions)

    def _company(self, payload: Mapping[str, Any]) -> CompanyRecord:
        name = _text(payload["name"])
        if not name:
            raise ValueError("no name")
        fields = _custom_fields(payload)

        def field(setting_key: str) -> Any:
            caption = self.company_field_captions.get(setting_key, "")
            return fields.get(_key(caption)) if caption.strip() else None

        status = _text(_ref(payload, "status").get("name"))
        return CompanyRecord(
            source=SOURCE, external_id=str(int(payload["id"])), name=name,
            account_number=_field_text(fields.get(_key(self.account_number_field))),
            domains=_domain(_text(payload.get("website"))),
            main_phone=_text(payload.get("phoneNumber")), address=_address(payload),
            billing_plan=_field_text(field("billing_plan")),
            contract_term_length=_field_text(field("contract_term_length")),
            contract_start_date=_day(field("contract_start_date")),
            support_level=_field_text(field("support_level")),
            active=not payload.get("deletedFlag") and not _key(status).startswith("inactive"))

    def set_company_account_number(self, external_id: str, account_number: str) -> None:
        """Write the number into the company's custom field captioned
        ``CONNECTWISE_ACCOUNT_NUMBER_FIELD`` (the whole ``customFields`` array is sent back,
        with only that value changed)."""
        path = f"/company/companies/{int(external_id)}"
        company, _ = self._call("GET", path)
        fields = company.get("customFields") if isinstance(company, Mapping) else None
        wanted = _key(self.account_number_field)
        matches = [item for item in fields or [] if isinstance(item, Mapping)
                   and _key(str(item.get("caption", ""))) == wanted]
        if not matches:
            raise ConnectorError(
                f"ConnectWise company {external_id} has no custom field captioned "
                f"{self.account_number_field!r} (CONNECTWISE_ACCOUNT_NUMBER_FIELD); add it to "
                "companies in ConnectWise's setup tables")
        target = matches[0]
        value: Any = account_number
        if target.get("type") == "Number" and account_number.isdigit():
            value = int(account_number)
        updated = [{**item, "value": value} if item is target else item for item in fields or []]
        self._call("PATCH", path, body=[{"op": "replace", "path": "customFields",
                                         "value": updated}])

    # -- contacts and members --------------------------------------------------------------

    def contacts(self) -> Iterator[ContactRecord | RecordFailure]:
        return self._listing("contacts", "/company/contacts", self._contact)

    def _contact(self, payload: Mapping[str, Any]) -> ContactRecord:
        items = payload.get("communicationItems") or []
        if not isinstance(items, list):
            raise TypeError("communicationItems is not a list")
        # Default items first, so the default address is the primary one.
        ordered = sorted((item for item in items if _text(item.get("value"))),
                         key=lambda item: not item.get("defaultFlag"))
        emails = [_text(item["value"]) for item in ordered
                  if item.get("communicationType") == "Email"]
        phones = [(_key(str(_ref(item, "type").get("name", ""))), _text(item["value"]))
                  for item in ordered if item.get("communicationType") == "Phone"]
        mobile = next((number for kind, number in phones
                       if "cell" in kind or "mobile" in kind), "")
        work = next((number for kind, number in phones
                     if "cell" not in kind and "mobile" not in kind),
                    _text(payload.get("defaultPhoneNbr")))
        first, last = _text(payload.get("firstName")), _text(payload.get("lastName"))
        name = f"{first} {last}".strip() or (emails[0] if emails else "")
        if not name:
            raise ValueError("no name and no email address")
        company = _ref_id(payload, "company")
        return ContactRecord(
            source=SOURCE, external_id=str(int(payload["id"])), name=name,
            email=emails[0] if emails else None, secondary_emails=tuple(emails[1:]),
            first_name=first, last_name=last, title=_text(payload.get("title")),
            work_phone=work, mobile_phone=mobile, active=not payload.get("inactiveFlag"),
            companies=tuple((company, role) for role in _roles(payload)) if company else ())

    def agents(self) -> Iterator[AgentRecord | RecordFailure]:
        return self._listing("agents", "/system/members", self._member)

    def _member(self, payload: Mapping[str, Any]) -> AgentRecord:
        first, last = _text(payload.get("firstName")), _text(payload.get("lastName"))
        name = f"{first} {last}".strip() or _text(payload.get("identifier"))
        if not name:
            raise ValueError("no name and no identifier")
        chosen = {"Office": "officeEmail", "Mobile": "mobileEmail", "Home": "homeEmail"}.get(
            str(payload.get("defaultEmail")), "officeEmail")
        email = next((_text(payload.get(key)) for key in (chosen, "officeEmail", "primaryEmail")
                      if _text(payload.get(key))), "")
        return AgentRecord(source=SOURCE, external_id=str(int(payload["id"])), name=name,
                           email=email, active=not payload.get("inactiveFlag"),
                           job_title=_text(payload.get("title")))

    # -- tickets ---------------------------------------------------------------------------

    def tickets(self, *, updated_since: datetime | None,
                details: bool) -> Iterator[TicketRecord | RecordFailure]:
        """Service tickets, oldest id first; with ``details``, each one's time entries and
        notes (two more listings per ticket). The first "Discussion" note is the
        description; the other notes are the conversation."""
        parts = [self.ticket_conditions] if self.ticket_conditions else []
        if updated_since is not None:
            stamp = updated_since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            parts.append(f"lastUpdated > [{stamp}]")
        conditions = " and ".join(f"({part})" for part in parts) if len(parts) > 1 else (
            parts[0] if parts else "")
        for payload in self._pages("/service/tickets", conditions=conditions):
            yield self._ticket_item(payload, details)

    def _ticket_item(self, payload: Any, details: bool) -> TicketRecord | RecordFailure:
        try:
            record = self._ticket(payload)
        except UNREADABLE as exc:
            return _failure("tickets", payload, exc)
        if not details:
            return record
        try:
            entries = list(self._pages(
                "/time/entries", conditions=f'chargeToType="ServiceTicket" and chargeToId='
                                            f"{int(record.external_id)}"))
            notes = list(self._pages(f"/service/tickets/{record.external_id}/notes"))
        except ConnectorError as exc:  # e.g. deleted meanwhile: this ticket only
            return RecordFailure("tickets", record.external_id, f"details not read: {exc}")
        try:
            return _with_details(record, entries, notes)
        except UNREADABLE as exc:
            return _failure("tickets", payload, exc)

    def _ticket(self, payload: Mapping[str, Any]) -> TicketRecord:
        status_ref, priority_ref = _ref(payload, "status"), _ref(payload, "priority")
        status_name = _text(status_ref.get("name"))
        if not status_name and status_ref.get("id") is None:
            raise ValueError("no status")
        closed = bool(payload.get("closedFlag"))
        status = self.statuses.lookup(status_ref)
        if status is None:  # a board's own status: its name, unless ConnectWise closed it
            status = "closed" if closed else _slug(status_name)
        priority_name = _text(priority_ref.get("name"))
        priority = self.priorities.lookup(priority_ref) or _guess_priority(priority_name)
        info = _ref(payload, "_info")
        type_name = _key(_text(_ref(payload, "type").get("name")))
        contact = _ref(payload, "contact")
        priority_id = priority_ref.get("id")
        return TicketRecord(
            source=SOURCE, external_id=str(int(payload["id"])), number=str(int(payload["id"])),
            subject=_text(payload.get("summary")), status=status,
            status_raw=status_name[:STATUS_LENGTH], priority=priority,
            priority_raw=None if priority_id is None else int(priority_id),
            ticket_type="Service Request" if "request" in type_name else "Incident",
            company_external_id=_ref_id(payload, "company"),
            requester_external_id=_ref_id(payload, "contact"),
            requester_name=_text(payload.get("contactName")) or _text(contact.get("name")),
            requester_email=_text(payload.get("contactEmailAddress")),
            responder_external_id=_ref_id(payload, "owner"),
            group_id=_ref_id(payload, "board"),
            created_at=_moment(payload.get("dateEntered") or info.get("dateEntered")),
            updated_at=_moment(info.get("lastUpdated")),
            closed_at=_moment(payload.get("closedDate")) if closed else None,
            due_by=_moment(payload.get("requiredDate")),
            first_responded_at=_moment(payload.get("dateResponded")),
            agent_responded_at=_moment(payload.get("dateResponded")))

    def update_ticket(self, external_id: str, *, status: str | None = None,
                      note: str | None = None, author: str = "") -> None:
        """Set a status (the ticket's board status that maps to ``status``) and/or add an
        internal note (ConnectWise names the API member as its author, so ``author`` is
        signed under the text)."""
        ticket_id = int(external_id)
        path = f"/service/tickets/{ticket_id}"
        if status is not None:
            ticket, _ = self._call("GET", path)
            board = _ref(ticket, "board") if isinstance(ticket, Mapping) else {}
            if board.get("id") is None:
                raise ConnectorError(f"ConnectWise ticket {ticket_id} has no board")
            statuses = list(self._pages(f"/service/boards/{int(board['id'])}/statuses",
                                        order_by="sortOrder asc"))
            status_id = self._board_status(statuses, status.strip().lower())
            if status_id is None:
                raise ConnectorError(
                    f"ConnectWise board {board.get('name') or board['id']!s} has no status that "
                    f"maps to {status!r} (see CONNECTWISE_STATUS_MAP)")
            self._call("PATCH", path, body=[{"op": "replace", "path": "status",
                                             "value": {"id": status_id}}])
        if note:
            text = f"{note}\n\n— {author}" if author else note
            self._call("POST", f"{path}/notes", body={
                "text": text, "internalAnalysisFlag": True, "detailDescriptionFlag": False,
                "resolutionFlag": False})

    def _board_status(self, statuses: list[Any], wanted: str) -> int | None:
        """The board status for a normalised one: configured ids first, then a status named
        like it ("Waiting Customer" for waiting_customer), then any name mapped to it; among
        equals one whose closed flag fits, then the board's order."""
        ranked = []
        for entry in statuses:
            if not isinstance(entry, Mapping) or entry.get("inactive") or entry.get("id") is None:
                continue
            name = str(entry.get("name") or "")
            if self.statuses.by_id.get(str(entry["id"])) == wanted:
                rank = 0
            elif _key(name) == wanted.replace("_", " "):
                rank = 1
            elif self.statuses.by_name.get(_key(name)) == wanted:
                rank = 2
            elif _slug(name) == wanted:
                rank = 3
            else:
                continue
            closed_mismatch = bool(entry.get("closedStatus")) != (wanted in CLOSED_STATES)
            ranked.append((rank, closed_mismatch, entry.get("sortOrder") or 0, int(entry["id"])))
        return min(ranked)[3] if ranked else None


def _roles(payload: Mapping[str, Any]) -> list[str]:
    """A contact's roles at its company: the company's default contact is its primary one;
    contact types named Billing or Technical add those roles."""
    roles = ["primary"] if payload.get("defaultFlag") else []
    types = payload.get("types") or []
    names = " ".join(_key(str(item.get("name", ""))) for item in types
                     if isinstance(item, Mapping))
    if "billing" in names:
        roles.append("billing")
    if "technical" in names:
        roles.append("technical")
    return roles or ["general"]


def _with_details(record: TicketRecord, entries: list[Any],
                  notes: list[Any]) -> TicketRecord:
    time_entries = tuple(TimeEntryRecord(
        external_id=str(int(entry["id"])), hours=_hours(entry.get("actualHours")),
        agent_external_id=_ref_id(entry, "member"),
        billable=entry.get("billableOption") == "Billable", note=_text(entry.get("notes")),
        executed_at=_moment(entry.get("timeStart"))) for entry in entries)
    ordered = sorted(notes, key=lambda note: (_moment(note.get("dateCreated")) or EPOCH,
                                              int(note["id"])))
    description = next((note for note in ordered if note.get("detailDescriptionFlag")), None)
    conversations = []
    answered: list[datetime] = []
    for note in ordered:
        if note is description:
            continue
        entry = _conversation(note)
        conversations.append(entry)
        if (not entry.private and _ref(note, "member") and not entry.incoming
                and entry.created_at is not None):
            answered.append(entry.created_at)
    return replace(
        record, time_entries=time_entries, conversations=tuple(conversations),
        description_text=_text(description.get("text")) if description else "",
        # The last public reply by a member; without one, when ConnectWise says it responded.
        agent_responded_at=max(answered) if answered else record.agent_responded_at)


def _conversation(note: Mapping[str, Any]) -> ConversationRecord:
    member, contact = _ref(note, "member"), _ref(note, "contact")
    shown = note.get("detailDescriptionFlag") or note.get("resolutionFlag")
    return ConversationRecord(
        external_id=str(int(note["id"])), private=bool(note.get("internalAnalysisFlag"))
        and not shown, body_text=_text(note.get("text")),
        author=_text(member.get("name")) or _text(contact.get("name"))
        or _text(note.get("createdBy")),
        incoming=bool(contact) and not member, created_at=_moment(note.get("dateCreated")))


def _setting(config: Mapping[str, Any], key: str) -> Any:
    return config.get(key, DEFAULTS.get(key, ""))


def _number(config: Mapping[str, Any], key: str, kind: type[int] | type[float]) -> Any:
    try:
        value = kind(_setting(config, key))
    except (TypeError, ValueError):
        raise BadSetting(f"{key}: not a number") from None
    if value <= 0:
        raise BadSetting(f"{key}: must be positive")
    return value


def from_settings(config: Mapping[str, Any]) -> ConnectWise:
    """The connector from Codex's settings; a missing or unusable setting is named."""
    require(config, "CONNECTWISE_URL", "CONNECTWISE_COMPANY_ID", "CONNECTWISE_PUBLIC_KEY",
            "CONNECTWISE_PRIVATE_KEY", "CONNECTWISE_CLIENT_ID")
    page_size = _number(config, "CONNECTWISE_PAGE_SIZE", int)
    if page_size > MAX_PAGE_SIZE:
        raise BadSetting(f"CONNECTWISE_PAGE_SIZE: at most {MAX_PAGE_SIZE}")
    status_map = NameMap.build("CONNECTWISE_STATUS_MAP",
                               json_mapping(config, "CONNECTWISE_STATUS_MAP"),
                               DEFAULT_STATUS_MAP, STATUS_LENGTH)
    priority_map = NameMap.build("CONNECTWISE_PRIORITY_MAP",
                                 json_mapping(config, "CONNECTWISE_PRIORITY_MAP"),
                                 DEFAULT_PRIORITY_MAP, PRIORITY_LENGTH)
    try:
        return ConnectWise(
            str(config["CONNECTWISE_URL"]).strip(),
            company_id=str(config["CONNECTWISE_COMPANY_ID"]).strip(),
            public_key=str(config["CONNECTWISE_PUBLIC_KEY"]).strip(),
            private_key=str(config["CONNECTWISE_PRIVATE_KEY"]).strip(),
            client_id=str(config["CONNECTWISE_CLIENT_ID"]).strip(),
            status_map=status_map, priority_map=priority_map,
            account_number_field=str(
                _setting(config, "CONNECTWISE_ACCOUNT_NUMBER_FIELD")).strip() or "AccountNumber",
            company_field_captions={
                name: str(_setting(config, key) or "")
                for name, key in (("billing_plan", "CONNECTWISE_PLAN_FIELD"),
                                  ("contract_term_length", "CONNECTWISE_CONTRACT_TERM_FIELD"),
                                  ("contract_start_date", "CONNECTWISE_CONTRACT_START_FIELD"),
                                  ("support_level", "CONNECTWISE_SUPPORT_LEVEL_FIELD"))},
            company_conditions=str(_setting(config, "CONNECTWISE_COMPANY_CONDITIONS") or ""),
            ticket_conditions=str(_setting(config, "CONNECTWISE_TICKET_CONDITIONS") or ""),
            page_size=page_size,
            timeout=_number(config, "CODEX_HTTP_TIMEOUT_SECONDS", float),
            retries=_number(config, "CODEX_HTTP_RETRIES", int),
            allowed_hosts=allowlist(config))
    except BlockedAddress as exc:
        raise BadSetting(f"CONNECTWISE_URL: {exc}") from exc
