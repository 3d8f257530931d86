"""A contract fake of ConnectWise Manage's REST API 3.0, served over real HTTP.

What it implements (vendor-apis.md section 2): ``/login/companyinfo/{company}`` outside the API
root; Basic auth as ``company+publicKey:privateKey`` plus the ``clientId`` header on every API
call (401 otherwise); list endpoints with ``conditions`` (comparisons, ``in``, ``like``,
``contains``, ``not``, ``and``/``or``, parentheses, ``"strings"``, ``[datetimes]``, numbers,
booleans, ``null``, slash paths, ``lastUpdated`` as ``_info/lastUpdated``), ``orderBy``,
``page``/``pageSize`` (default 25, clamped to 1000), ``pageId``, the ``Link`` header with
first/prev/next/last, and ``/count``; JSON Patch on companies and tickets; ticket notes;
400 ``InvalidObject`` and 404 ``NotFound`` bodies; a 429 with ``Retry-After`` every Nth call.

Everything written is recorded in :attr:`FakeConnectWise.writes`; every API request in
:attr:`FakeConnectWise.requests`.
"""

from __future__ import annotations

import base64
import copy
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, request

from hivematrix.common.testing import serve_wsgi

COMPANY_ID = "hivetest"
PUBLIC_KEY = "pub4J2kLmN8q"
PRIVATE_KEY = "priv7Hx9Qw3Ez5Rt"
CLIENT_ID = "5f0c9a2e-3b1d-4c7e-9a6f-2d8b1e4c7a90"
CODEBASE = "v4_6_release/"
API = f"/{CODEBASE}apis/3.0"
API_MEMBER = {"id": 190, "identifier": "HiveMatrixAPI", "name": "HiveMatrix API"}


def _error(status: int, code: str, message: str,
           errors: list[dict[str, str]] | None = None) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if errors is not None:
        body["errors"] = errors
    response = _json(body)
    response.status_code = status
    return response


def _json(body: Any) -> Response:
    import json

    def default(value: Any) -> Any:
        if isinstance(value, Decimal):
            return float(value)
        raise TypeError(type(value).__name__)

    return Response(json.dumps(body, default=default), mimetype="application/json")


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ref(kind: str, item_id: int, name: str, **extra: Any) -> dict[str, Any]:
    return {"id": item_id, "name": name, **extra,
            "_info": {f"{kind}_href": f"https://api-na.myconnectwise.net{API}/{kind}s/{item_id}"}}


# -- conditions -------------------------------------------------------------------------------


class BadConditions(ValueError):
    """The ``conditions`` text does not parse."""


TOKEN = re.compile(r"""\s*(?:
    (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<datetime>\[[^\]]*\])
  | (?P<op><=|>=|!=|=|<|>)
  | (?P<paren>[(),])
  | (?P<number>-?\d+(?:\.\d+)?(?![\w/]))
  | (?P<word>[A-Za-z_][\w/]*)
)""", re.VERBOSE)

Predicate = Callable[[dict[str, Any]], bool]


def _tokens(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise BadConditions(f"unexpected text at position {position}: {text[position:]!r}")
        position = match.end()
        kind = match.lastgroup
        raw = match.group(kind or "")
        if kind == "string":
            tokens.append(("value", re.sub(r"\\(.)", r"\1", raw[1:-1])))
        elif kind == "datetime":
            try:
                tokens.append(("value", datetime.fromisoformat(raw[1:-1].strip())))
            except ValueError:
                raise BadConditions(f"not a datetime: {raw}") from None
        elif kind == "number":
            tokens.append(("value", Decimal(raw)))
        elif kind == "word" and raw.lower() in ("true", "false"):
            tokens.append(("value", raw.lower() == "true"))
        elif kind == "word" and raw.lower() == "null":
            tokens.append(("value", None))
        elif kind == "word" and raw.lower() in ("and", "or", "not", "in", "like", "contains"):
            tokens.append((raw.lower(), raw))
        else:
            tokens.append((kind or "", raw))
    return tokens


def resolve(record: Any, path: str) -> Any:
    """A slash path on a payload; a top-level name missing there is looked up in ``_info``."""
    value = record
    for number, part in enumerate(path.split("/")):
        if not isinstance(value, dict):
            return None
        if number == 0 and part not in value and isinstance(value.get("_info"), dict):
            value = value["_info"].get(part)
        else:
            value = value.get(part)
    return value


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    """Both sides in one type: datetimes, numbers, or case-insensitive strings."""
    if isinstance(right, datetime):
        moment = datetime.fromisoformat(left) if isinstance(left, str) else left
        return moment, right
    if isinstance(right, Decimal) and not isinstance(left, bool):
        return Decimal(str(left)), right
    if isinstance(right, str):
        return str(left).lower(), right.lower()
    return left, right


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at][0] if self.at < len(self.tokens) else None

    def take(self, *kinds: str) -> tuple[str, Any]:
        if self.peek() not in kinds:
            found = self.tokens[self.at][1] if self.at < len(self.tokens) else "the end"
            raise BadConditions(f"expected {' or '.join(kinds)}, found {found!r}")
        token = self.tokens[self.at]
        self.at += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.expression()
        if self.peek() is not None:
            raise BadConditions(f"unexpected {self.tokens[self.at][1]!r}")
        return predicate

    def expression(self) -> Predicate:
        terms = [self.term()]
        while self.peek() == "or":
            self.take("or")
            terms.append(self.term())
        return lambda record: any(term(record) for term in terms)

    def term(self) -> Predicate:
        factors = [self.factor()]
        while self.peek() == "and":
            self.take("and")
            factors.append(self.factor())
        return lambda record: all(factor(record) for factor in factors)

    def factor(self) -> Predicate:
        if self.peek() == "not":
            self.take("not")
            inner = self.factor()
            return lambda record: not inner(record)
        if self.peek() == "paren" and self.tokens[self.at][1] == "(":
            self.take("paren")
            inner = self.expression()
            if self.take("paren")[1] != ")":
                raise BadConditions("expected )")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        path = self.take("word")[1]
        negate = False
        if self.peek() == "not":
            self.take("not")
            negate = True
        kind, raw = self.take("op", "in", "like", "contains")
        test: Predicate
        if kind == "in":
            values = self.values()
            test = lambda record: any(_equal(resolve(record, path), v) for v in values)  # noqa: E731
        elif kind in ("like", "contains"):
            pattern = self.take("value")[1]
            if not isinstance(pattern, str):
                raise BadConditions(f"{kind} needs a string")
            regex = (re.compile("^" + ".*".join(map(re.escape, pattern.split("%"))) + "$", re.I)
                     if kind == "like" else re.compile(re.escape(pattern), re.I))
            test = lambda record: isinstance(resolve(record, path), str) and bool(  # noqa: E731
                regex.search(resolve(record, path)))
        else:
            value = self.take("value")[1]
            if negate:
                raise BadConditions("not before a comparison operator")
            compare = OPERATORS[raw]
            test = lambda record: _compare(resolve(record, path), raw, value, compare)  # noqa: E731
        return (lambda record: not test(record)) if negate else test

    def values(self) -> list[Any]:
        if self.take("paren")[1] != "(":
            raise BadConditions("in needs a list in parentheses")
        values = [self.take("value")[1]]
        while self.peek() == "paren" and self.tokens[self.at][1] == ",":
            self.take("paren")
            values.append(self.take("value")[1])
        if self.take("paren")[1] != ")":
            raise BadConditions("expected ) after the list")
        return values


def _equal(left: Any, right: Any) -> bool:
    if left is None or right is None:
        return left is right
    left, right = _comparable(left, right)
    return bool(left == right)


def _compare(left: Any, op: str, right: Any, compare: Callable[[Any, Any], bool]) -> bool:
    if right is None or left is None:
        return (left is right) if op == "=" else (left is not right) if op == "!=" else False
    try:
        left, right = _comparable(left, right)
        return compare(left, right)
    except (TypeError, ValueError, ArithmeticError):
        return False


def conditions(text: str) -> Predicate:
    return _Parser(text).parse() if text.strip() else (lambda record: True)


# -- seed data --------------------------------------------------------------------------------

T0 = datetime(2025, 10, 1, 8, 0, tzinfo=UTC)


def _custom(account_number: str | None, plan: str | None = None, term: str | None = None,
            start: str | None = None) -> list[dict[str, Any]]:
    return [
        {"id": 3, "caption": "AccountNumber", "type": "Text", "entryMethod": "EntryField",
         "numberOfDecimals": 0, "value": account_number},
        {"id": 7, "caption": "Billing Plan", "type": "Text", "entryMethod": "List",
         "numberOfDecimals": 0, "value": plan},
        {"id": 8, "caption": "Contract Term", "type": "Text", "entryMethod": "List",
         "numberOfDecimals": 0, "value": term},
        {"id": 9, "caption": "Contract Start Date", "type": "Date", "entryMethod": "Date",
         "numberOfDecimals": 0, "value": start},
    ]


def _company(item_id: int, identifier: str, name: str, *, status: str = "Active",
             website: str = "", custom: list[dict[str, Any]] | None = None,
             updated: datetime = T0, **extra: Any) -> dict[str, Any]:
    return {
        "id": item_id, "identifier": identifier, "name": name,
        "status": _ref("status", 1 if status == "Active" else 2, status),
        "types": [_ref("type", 1, "Client")], "phoneNumber": "5555550100",
        "faxNumber": "", "website": website, "addressLine1": "100 Main St",
        "addressLine2": "Suite 4", "city": "Springfield", "state": "IL", "zip": "62701",
        "country": _ref("country", 1, "United States"), "deletedFlag": False,
        "leadFlag": False, "isVendorFlag": False, "dateAcquired": "2019-04-01T00:00:00Z",
        "customFields": custom if custom is not None else _custom(None),
        "_info": {"lastUpdated": _stamp(updated), "updatedBy": "jsmith",
                  "dateEntered": "2019-04-01T15:00:00Z", "enteredBy": "jsmith",
                  "contacts_href": f"https://api-na.myconnectwise.net{API}/company/contacts"
                                   f"?conditions=company/id={item_id}"},
        **extra,
    }


def _email(item_id: int, value: str, *, default: bool = True) -> dict[str, Any]:
    return {"id": item_id, "type": {"id": 1, "name": "Email"}, "value": value,
            "defaultFlag": default, "communicationType": "Email"}


def _phone(item_id: int, kind: str, value: str, *, default: bool = False) -> dict[str, Any]:
    return {"id": item_id, "type": {"id": 2 if kind == "Direct" else 4, "name": kind},
            "value": value, "extension": "", "defaultFlag": default,
            "communicationType": "Phone"}


def _contact(item_id: int, first: str, last: str, company: dict[str, Any], *,
             items: list[dict[str, Any]], default: bool = False, types: tuple[str, ...] = (),
             inactive: bool = False, title: str = "") -> dict[str, Any]:
    return {
        "id": item_id, "firstName": first, "lastName": last, "title": title,
        "company": {"id": company["id"], "identifier": company["identifier"],
                    "name": company["name"],
                    "_info": {"company_href": f"{API}/company/companies/{company['id']}"}},
        "site": _ref("site", 1, "Main"), "inactiveFlag": inactive, "defaultFlag": default,
        "communicationItems": items,
        "types": [_ref("contactType", number, name) for number, name in enumerate(types, 1)],
        "customFields": [],
        "_info": {"lastUpdated": _stamp(T0), "updatedBy": "jsmith"},
    }


def _member(item_id: int, identifier: str, first: str, last: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": item_id, "identifier": identifier, "firstName": first, "lastName": last,
        "title": "Service Technician", "officeEmail": f"{identifier}@msp.example",
        "primaryEmail": f"{identifier}@msp.example", "defaultEmail": "Office",
        "officePhone": "5555550111", "inactiveFlag": False, "adminFlag": False,
        "licenseClass": "F", "timeZone": _ref("timeZone", 1, "US Central"),
        "_info": {"lastUpdated": _stamp(T0), "updatedBy": "admin"}, **extra,
    }


BOARD_STATUSES = [
    # (id, name, sortOrder, closedStatus)
    (1, "New", 0, False), (2, "In Progress", 1, False), (3, "Waiting Customer", 2, False),
    (4, "Customer Updated", 3, False), (5, "Waiting Parts", 4, False),
    (6, "Cancelled", 5, True), (7, ">Closed", 6, True),
]
PRIORITIES = [(8, "Priority 1 - Emergency Response", 1), (15, "Priority 2 - Quick Response", 2),
              (4, "Priority 3 - Normal Response", 3), (6, "Priority 4 - Schedule Maintenance", 4)]


@dataclass
class FakeConnectWise:
    """One ConnectWise tenant: data, credentials, and what was asked of it."""

    company_id: str = COMPANY_ID
    public_key: str = PUBLIC_KEY
    private_key: str = PRIVATE_KEY
    client_id: str = CLIENT_ID
    #: Every Nth API call answers 429 with ``Retry-After: 1`` (0: never).
    rate_limit_every: int = 0
    companies: dict[int, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    members: dict[int, dict[str, Any]] = field(default_factory=dict)
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    notes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    time_entries: dict[int, dict[str, Any]] = field(default_factory=dict)
    boards: dict[int, dict[str, Any]] = field(default_factory=dict)
    statuses: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    priorities: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    writes: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    calls: int = 0
    next_id: int = 5000

    # -- data --------------------------------------------------------------------------------

    def seed(self) -> FakeConnectWise:
        """A small MSP: three client companies, their people, two technicians and a board."""
        acme = _company(250, "AcmeDental", "Acme Dental", website="www.acme-dental.example",
                        custom=_custom("620547", "Gold", "2 years", "2024-03-01T00:00:00Z"))
        beta = _company(251, "BetaLaw", "Beta Law LLP", website="https://betalaw.example/")
        gone = _company(252, "GammaRetail", "Gamma Retail", status="Inactive",
                        custom=_custom("620550"))
        for company in (acme, beta, gone):
            self.companies[company["id"]] = company
        self.contacts[1001] = _contact(
            1001, "Dana", "Reyes", acme, default=True, types=("Billing",), title="Office Manager",
            items=[_email(1, "Dana.Reyes@acme-dental.example"),
                   _email(2, "dana@reyes-home.example", default=False),
                   _phone(3, "Direct", "5555550123", default=True),
                   _phone(4, "Cell", "5555550199")])
        self.contacts[1002] = _contact(
            1002, "Lee", "Park", acme, types=("Technical Contact",),
            items=[_email(5, "lee.park@acme-dental.example")])
        self.contacts[1003] = _contact(1003, "Morgan", "Blake", beta, inactive=True,
                                       items=[_email(6, "morgan@betalaw.example")])
        self.members[176] = _member(176, "jsmith", "Jane", "Smith")
        self.members[177] = _member(177, "rpatel", "Ravi", "Patel", inactiveFlag=True,
                                    defaultEmail="Mobile", mobileEmail="ravi.m@msp.example")
        self.boards[1] = {"id": 1, "name": "Help Desk", "inactiveFlag": False,
                          "department": _ref("department", 10, "Service"),
                          "location": _ref("location", 2, "Main")}
        self.statuses[1] = [
            {"id": status_id, "name": name, "board": _ref("board", 1, "Help Desk"),
             "sortOrder": order, "closedStatus": closed, "defaultFlag": status_id == 1,
             "inactive": False, "displayOnBoard": True, "customerPortalFlag": False,
             "escalationStatus": "Resolved" if closed else "NotResponded"}
            for status_id, name, order, closed in BOARD_STATUSES]
        for priority_id, name, order in PRIORITIES:
            self.priorities[priority_id] = {"id": priority_id, "name": name, "color": "Red",
                                            "sortOrder": order, "defaultFlag": order == 3}
        self.add_ticket(12345, "Printer offline", acme, status_id=1, priority_id=15,
                        contact=self.contacts[1001], updated=T0)
        self.add_ticket(12346, "New laptop for reception", acme, status_id=3, priority_id=4,
                        updated=datetime(2025, 10, 2, 9, 30, tzinfo=UTC),
                        type_name="Service Request")
        self.add_ticket(12347, "VPN drops", beta, status_id=7, priority_id=8, closed=True,
                        updated=datetime(2025, 10, 3, 17, 5, tzinfo=UTC))
        self.add_note(12345, "Printer shows error E-13 and will not print.", discussion=True,
                      contact=self.contacts[1001], at=datetime(2025, 10, 1, 7, 55, tzinfo=UTC))
        self.add_note(12345, "Checked the driver; queued a firmware update.", internal=True,
                      member=self.members[176], at=datetime(2025, 10, 1, 8, 20, tzinfo=UTC))
        self.add_note(12345, "We are on it and will call you shortly.", discussion=True,
                      member=self.members[176],
                      at=datetime(2025, 10, 1, 8, 25, tzinfo=UTC))
        self.add_time_entry(9001, 12345, Decimal("1.5"), billable="Billable")
        self.add_time_entry(9002, 12345, Decimal("0.1"), billable="DoNotBill")
        self.add_time_entry(9003, 12347, Decimal("0.25"), billable="Billable")
        return self

    def add_ticket(self, ticket_id: int, summary: str, company: dict[str, Any], *,
                   status_id: int, priority_id: int, updated: datetime,
                   contact: dict[str, Any] | None = None, closed: bool = False,
                   type_name: str = "Incident") -> dict[str, Any]:
        status = next(s for s in self.statuses[1] if s["id"] == status_id)
        priority = self.priorities[priority_id]
        ticket = {
            "id": ticket_id, "summary": summary, "recordType": "ServiceTicket",
            "board": _ref("board", 1, "Help Desk"),
            "status": _ref("status", status["id"], status["name"], sort=status["sortOrder"]),
            "priority": _ref("priority", priority["id"], priority["name"],
                             sort=priority["sortOrder"]),
            "severity": "Medium", "impact": "Medium",
            "type": _ref("type", 21 if type_name == "Incident" else 22, type_name),
            "company": {"id": company["id"], "identifier": company["identifier"],
                        "name": company["name"]},
            "contact": ({"id": contact["id"], "name": f"{contact['firstName']} "
                         f"{contact['lastName']}"} if contact else None),
            "contactName": (f"{contact['firstName']} {contact['lastName']}" if contact
                            else ""),
            "contactEmailAddress": (contact["communicationItems"][0]["value"] if contact
                                    else ""),
            "owner": {"id": 176, "identifier": "jsmith", "name": "Jane Smith"},
            "team": _ref("team", 25, "Tier 1"), "source": _ref("source", 2, "Email"),
            "closedFlag": closed, "closedDate": _stamp(updated) if closed else None,
            "closedBy": "jsmith" if closed else None,
            "dateEntered": "2025-09-30T14:02:00Z", "enteredBy": "Email Connector",
            "dateResponded": "2025-09-30T14:40:00Z", "requiredDate": "2025-10-07T22:00:00Z",
            "budgetHours": 2.0, "actualHours": 1.6, "billTime": "Billable",
            "isInSla": True, "hasChildTicket": False, "customFields": [],
            "_info": {"lastUpdated": _stamp(updated), "updatedBy": "jsmith",
                      "dateEntered": "2025-09-30T14:02:00Z", "enteredBy": "Email Connector",
                      "notes_href": f"{API}/service/tickets/{ticket_id}/notes",
                      "timeentries_href": f"{API}/service/tickets/{ticket_id}/timeentries"},
        }
        self.tickets[ticket_id] = ticket
        self.notes.setdefault(ticket_id, [])
        return ticket

    def add_note(self, ticket_id: int, text: str, *, discussion: bool = False,
                 internal: bool = False, resolution: bool = False,
                 member: dict[str, Any] | None = None, contact: dict[str, Any] | None = None,
                 at: datetime = T0) -> dict[str, Any]:
        self.next_id += 1
        note = {
            "id": self.next_id, "ticketId": ticket_id, "text": text,
            "detailDescriptionFlag": discussion, "internalAnalysisFlag": internal,
            "resolutionFlag": resolution,
            "member": ({"id": member["id"], "identifier": member["identifier"],
                        "name": f"{member['firstName']} {member['lastName']}"}
                       if member else None),
            "contact": ({"id": contact["id"], "name": f"{contact['firstName']} "
                         f"{contact['lastName']}"} if contact else None),
            "customerUpdatedFlag": contact is not None, "processNotifications": False,
            "dateCreated": _stamp(at), "createdBy": member["identifier"] if member else "",
            "internalFlag": internal, "externalFlag": not internal,
            "_info": {"lastUpdated": _stamp(at), "updatedBy": "jsmith"},
        }
        self.notes.setdefault(ticket_id, []).append(note)
        return note

    def add_time_entry(self, entry_id: int, ticket_id: int, hours: Decimal, *,
                       billable: str = "Billable") -> dict[str, Any]:
        ticket = self.tickets[ticket_id]
        entry = {
            "id": entry_id, "chargeToId": ticket_id, "chargeToType": "ServiceTicket",
            "company": ticket["company"],
            "member": {"id": 176, "identifier": "jsmith", "name": "Jane Smith"},
            "timeStart": "2025-10-01T14:00:00Z", "timeEnd": "2025-10-01T15:30:00Z",
            "actualHours": hours, "hoursDeduct": Decimal("0.0"), "billableOption": billable,
            "notes": "Replaced toner", "workType": _ref("workType", 3, "Remote"),
            "status": "Open", "ticket": {"id": ticket_id, "summary": ticket["summary"]},
            "_info": {"lastUpdated": "2025-10-01T15:31:02Z", "updatedBy": "jsmith"},
        }
        self.time_entries[entry_id] = entry
        return entry

    # -- the app -----------------------------------------------------------------------------

    def _authorised(self) -> Response | None:
        header = request.headers.get("Authorization", "")
        expected = base64.b64encode(
            f"{self.company_id}+{self.public_key}:{self.private_key}".encode()).decode()
        if header != f"Basic {expected}":
            return _error(401, "Unauthorized", "The provided credentials are not valid.")
        if request.headers.get("clientId") != self.client_id:
            return _error(401, "Unauthorized", "A valid clientId header is required.")
        return None

    def _listing(self, items: list[dict[str, Any]]) -> Response:
        try:
            predicate = conditions(request.args.get("conditions", ""))
        except BadConditions as exc:
            return _error(400, "InvalidObject", f"conditions is invalid: {exc}")
        chosen = [item for item in items if predicate(item)]
        if request.args.get("pageId"):
            after = int(request.args["pageId"])
            chosen = [item for item in chosen if item["id"] > after]
        order = request.args.get("orderBy", "id asc").split()
        descending = len(order) > 1 and order[1].lower() == "desc"
        chosen.sort(key=lambda item: (resolve(item, order[0]) is not None,
                                      resolve(item, order[0]) or 0), reverse=descending)
        try:
            page = max(int(request.args.get("page", 1)), 1)
            size = min(max(int(request.args.get("pageSize", 25)), 1), 1000)
        except ValueError:
            return _error(400, "InvalidObject", "page and pageSize must be numbers")
        last = max(math.ceil(len(chosen) / size), 1)
        response = _json(chosen[(page - 1) * size:page * size])
        response.headers["Link"] = self._links(page, last)
        return response

    def _links(self, page: int, last: int) -> str:
        base = request.base_url

        def link(number: int, rel: str) -> str:
            args = {**request.args.to_dict(), "page": str(number)}
            return f'<{base}?{urlencode(args)}>; rel="{rel}"'

        links = []
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        if page < last:
            links.append(link(page + 1, "next"))
        links.append(link(last, "last"))
        return ", ".join(links)

    def _count(self, items: list[dict[str, Any]]) -> Response:
        try:
            predicate = conditions(request.args.get("conditions", ""))
        except BadConditions as exc:
            return _error(400, "InvalidObject", f"conditions is invalid: {exc}")
        return _json({"count": sum(1 for item in items if predicate(item))})

    def wsgi(self) -> Flask:  # noqa: C901 - one small handler per documented endpoint
        app = Flask("fake-connectwise")

        @app.before_request
        def guard() -> Response | None:
            if not request.path.startswith(API + "/"):
                return None
            self.calls += 1
            self.requests.append({"method": request.method, "path": request.path[len(API):],
                                  "args": request.args.to_dict()})
            if self.rate_limit_every and self.calls % self.rate_limit_every == 0:
                response = _error(429, "TooManyRequests", "Rate limit exceeded.")
                response.headers["Retry-After"] = "1"
                return response
            return self._authorised()

        @app.get("/login/companyinfo/<company>")
        def company_info(company: str) -> Response:
            if company.lower() != self.company_id.lower():
                return _error(404, "NotFound", f"Company {company} was not found.")
            return _json({"CompanyName": "Hive Test MSP", "Codebase": CODEBASE,
                          "VersionCode": "v2025.1", "CompanyID": self.company_id,
                          "IsCloud": True})

        collections: dict[str, Callable[[], list[dict[str, Any]]]] = {
            "company/companies": lambda: list(self.companies.values()),
            "company/contacts": lambda: list(self.contacts.values()),
            "system/members": lambda: list(self.members.values()),
            "service/tickets": lambda: list(self.tickets.values()),
            "time/entries": lambda: list(self.time_entries.values()),
            "service/priorities": lambda: list(self.priorities.values()),
            "service/boards": lambda: list(self.boards.values()),
        }
        for path, items in collections.items():
            app.add_url_rule(f"{API}/{path}", f"list {path}",
                             lambda items=items: self._listing(items()))
            app.add_url_rule(f"{API}/{path}/count", f"count {path}",
                             lambda items=items: self._count(items()))

        @app.get(f"{API}/company/companies/<int:company_id>")
        def company(company_id: int) -> Response:
            if company_id not in self.companies:
                return _error(404, "NotFound", f"Company ID {company_id} was not found.")
            return _json(self.companies[company_id])

        @app.patch(f"{API}/company/companies/<int:company_id>")
        def patch_company(company_id: int) -> Response:
            if company_id not in self.companies:
                return _error(404, "NotFound", f"Company ID {company_id} was not found.")
            return self._patch("company", self.companies[company_id], self._company_op)

        @app.get(f"{API}/service/tickets/<int:ticket_id>")
        def ticket(ticket_id: int) -> Response:
            if ticket_id not in self.tickets:
                return _error(404, "NotFound", f"Ticket ID {ticket_id} was not found.")
            return _json(self.tickets[ticket_id])

        @app.patch(f"{API}/service/tickets/<int:ticket_id>")
        def patch_ticket(ticket_id: int) -> Response:
            if ticket_id not in self.tickets:
                return _error(404, "NotFound", f"Ticket ID {ticket_id} was not found.")
            return self._patch("ticket", self.tickets[ticket_id], self._ticket_op)

        @app.get(f"{API}/service/tickets/<int:ticket_id>/notes")
        def notes(ticket_id: int) -> Response:
            if ticket_id not in self.tickets:
                return _error(404, "NotFound", f"Ticket ID {ticket_id} was not found.")
            return self._listing(self.notes.get(ticket_id, []))

        @app.post(f"{API}/service/tickets/<int:ticket_id>/notes")
        def add_note(ticket_id: int) -> Response:
            return self._post_note(ticket_id)

        @app.get(f"{API}/service/boards/<int:board_id>/statuses")
        def board_statuses(board_id: int) -> Response:
            if board_id not in self.boards:
                return _error(404, "NotFound", f"Board ID {board_id} was not found.")
            return self._listing(self.statuses.get(board_id, []))

        return app

    # -- writes ------------------------------------------------------------------------------

    def _patch(self, resource: str, target: dict[str, Any],
               apply: Callable[[dict[str, Any], dict[str, Any]], str | None]) -> Response:
        operations = request.get_json(silent=True)
        if not isinstance(operations, list) or not operations:
            return _error(400, "InvalidObject", f"{resource} object is invalid",
                          [{"code": "InvalidObject", "message": "A JSON Patch array is "
                            "required.", "resource": resource}])
        updated = copy.deepcopy(target)
        for operation in operations:
            if not isinstance(operation, dict) or operation.get("op") not in (
                    "replace", "add", "remove") or not isinstance(operation.get("path"), str):
                return _error(400, "InvalidObject", f"{resource} object is invalid",
                              [{"code": "InvalidObject", "message": "Each operation needs op "
                                "and path.", "resource": resource}])
            problem = apply(updated, operation)
            if problem is not None:
                return _error(400, "InvalidObject", f"{resource} object is invalid",
                              [{"code": "InvalidObject", "message": problem,
                                "resource": resource, "field": operation["path"]}])
        updated["_info"]["lastUpdated"] = _stamp(datetime.now(UTC))
        updated["_info"]["updatedBy"] = API_MEMBER["identifier"]
        target.clear()
        target.update(updated)
        self.writes.append({"method": "PATCH", "resource": resource, "id": target["id"],
                            "body": operations})
        return _json(target)

    def _company_op(self, company: dict[str, Any], operation: dict[str, Any]) -> str | None:
        path = operation["path"].strip("/")
        if path == "customFields":
            given = operation.get("value")
            if not isinstance(given, list):
                return "customFields must be an array."
            fields = {item["id"]: item for item in company["customFields"]}
            for item in given:
                if not isinstance(item, dict) or item.get("id") not in fields:
                    return f"Custom field {item.get('id') if isinstance(item, dict) else item} "\
                           "does not exist."
                fields[item["id"]]["value"] = item.get("value")
            return None
        if path in ("name", "phoneNumber", "website", "identifier"):
            company[path] = operation.get("value")
            return None
        return f"{path} cannot be patched."

    def _ticket_op(self, ticket: dict[str, Any], operation: dict[str, Any]) -> str | None:
        path = operation["path"].strip("/")
        value = operation.get("value")
        if path == "summary":
            ticket["summary"] = value
            return None
        if path != "status":
            return f"{path} cannot be patched."
        if not isinstance(value, dict):
            return "status must be a reference."
        board = self.statuses.get(ticket["board"]["id"], [])
        status = next((entry for entry in board if entry["id"] == value.get("id")
                       or (value.get("id") is None and entry["name"] == value.get("name"))),
                      None)
        if status is None:
            return "The status is not valid for this ticket's board."
        ticket["status"] = _ref("status", status["id"], status["name"], sort=status["sortOrder"])
        ticket["closedFlag"] = status["closedStatus"]
        ticket["closedDate"] = _stamp(datetime.now(UTC)) if status["closedStatus"] else None
        return None

    def _post_note(self, ticket_id: int) -> Response:
        if ticket_id not in self.tickets:
            return _error(404, "NotFound", f"Ticket ID {ticket_id} was not found.")
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not str(body.get("text") or "").strip():
            return _error(400, "InvalidObject", "note object is invalid",
                          [{"code": "NullObject", "message": "text may not be empty",
                            "resource": "ticketNote", "field": "text"}])
        if not any(body.get(flag) for flag in ("detailDescriptionFlag", "internalAnalysisFlag",
                                               "resolutionFlag")):
            return _error(400, "InvalidObject", "note object is invalid",
                          [{"code": "InvalidObject", "message": "One of Discussion, Internal "
                            "or Resolution must be chosen.", "resource": "ticketNote"}])
        member = {"id": API_MEMBER["id"], "identifier": API_MEMBER["identifier"],
                  "firstName": "HiveMatrix", "lastName": "API"}
        note = self.add_note(ticket_id, body["text"],
                             discussion=bool(body.get("detailDescriptionFlag")),
                             internal=bool(body.get("internalAnalysisFlag")),
                             resolution=bool(body.get("resolutionFlag")), member=member,
                             at=datetime.now(UTC))
        self.writes.append({"method": "POST", "resource": "ticketNote", "id": ticket_id,
                            "body": body})
        response = _json(note)
        response.status_code = 201
        return response


@contextmanager
def running(fake: FakeConnectWise) -> Iterator[FakeConnectWise]:
    """Serve ``fake`` on a free port and set its ``url`` (the host root)."""
    with serve_wsgi(fake.wsgi()) as url:
        fake.url = url
        yield fake
