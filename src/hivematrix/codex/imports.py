"""Importing companies, contacts and assets from CSV or JSON, with a dry run first.

:func:`read_csv` and :func:`read_json` turn a file into rows; :func:`plan` checks every row
against the database, changing nothing, and says what each row would do; :func:`apply`
carries out a plan in one transaction, all or nothing. :mod:`hivematrix.codex.exports` writes
the same columns, so an export imported again changes nothing.

Files. CSV is UTF-8 (with or without a byte-order mark), its first row naming the columns,
cells separated by commas (or by semicolons, as spreadsheets set to a decimal comma write
them); JSON is a list of objects with the same keys. Column names are case-insensitive, and a
column not listed below is refused. A column left out leaves that field alone; an empty cell
clears it, except ``active``, ``vip`` and ``compliance_level``, which an empty cell leaves as
they are. Lists (``domains``, ``secondary_emails``) are separated by ``;``, dates are
``YYYY-MM-DD``, yes/no fields take true/false (also yes/no, 1/0). Text is trimmed. A cell
starting with a quote followed by ``= + - @``, a tab or a carriage return loses that quote
(the export adds it so a spreadsheet shows the text instead of running it as a formula). Rows
are numbered as a spreadsheet shows them (the header is row 1); JSON items from 1.

``companies`` are found by ``account_number``. ``parent_account_number`` puts a company under
another one (in Codex, or created by the same file); a hierarchy with a cycle is refused.
``contract_term_length`` is "Month to Month", "1 Year", "2 Year" or "3 Year" (also "12 months"
and the like); ``contract_end_date`` follows from it and the start date. Changing what a PSA
sync writes is allowed, as in the API, with a warning that the next sync may undo it.

``contacts`` are found by ``email``, and where several contacts share it (or none has it), by
``external_source`` + ``external_id`` (which an import fills in only where a contact has
none). ``account_number`` + ``role`` give one role at one company (primary, billing, technical
or general; empty means general). A contact with several roles takes several rows, whose other
cells must agree. For each company a contact's rows name, its roles there become exactly those
listed; roles at other companies are kept. A PSA contact's fields, and its roles at that PSA's
companies, are the PSA's: changing them is an error, as in the API.

``assets`` are found by ``account_number`` + ``hostname`` (case-insensitive), else by
``serial_number``; retired assets are never matched. New assets get source "import" and a
billing type derived from ``device_category`` by the configured map;
``billing_type_override`` is one of the billing types, or empty for none. What an RMM writes
on its assets (company, hostname, category, OS, addresses, domain, description) cannot be
changed by import, as in the API.

Limits: a file of at most 10 MB and 50,000 rows; cells of at most 10,000 characters.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from hivematrix.codex import assets, contacts
from hivematrix.codex.billing_types import BILLING_TYPES, BillingTypeMap
from hivematrix.codex.models import (
    COMPLIANCE_LEVELS,
    CONTACT_ROLES,
    CONTRACT_TERMS,
    Asset,
    Company,
    Contact,
    ContactRole,
)
from hivematrix.codex.schemas import ACCOUNT_NUMBER
from hivematrix.codex.sync.store import contract_end, normalise_term

MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 50_000
MAX_CELL = 10_000
KINDS = ("companies", "contacts", "assets")

Action = Literal["create", "update", "unchanged", "error"]


class ImportRefused(ValueError):
    """The import cannot go ahead at all; ``field`` names the part at fault."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


class StalePlan(ImportRefused):
    """The data changed between planning and applying; nothing was written."""

    def __init__(self, message: str, row: int | None = None) -> None:
        where = f"Row {row}: " if row is not None else ""
        super().__init__("plan", f"{where}{message} Nothing was changed; plan the import "
                                 "again.", 409)


# --- cells ---------------------------------------------------------------------------------

#: First characters that make a spreadsheet run a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_GUARDED = re.compile(r"'+[=+\-@\t\r]")


def guard(cell: str) -> str:
    """A cell a spreadsheet shows as text: a quote goes before anything read as a formula
    (and before quotes already leading up to one, so :func:`unguard` is exact)."""
    return f"'{cell}" if cell.lstrip("'")[:1] in FORMULA_STARTS else cell


def unguard(cell: str) -> str:
    """Undo :func:`guard`."""
    return cell[1:] if _GUARDED.match(cell) else cell


def jsonable(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    return value


# --- reading files -------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One row of a file: where it is, its values by column, and why it is unreadable."""

    number: int
    values: Mapping[str, Any]
    problem: str | None = None


@dataclass(frozen=True)
class Source:
    columns: tuple[str, ...]
    rows: tuple[Row, ...]

    @classmethod
    def from_records(cls, records: Sequence[Any]) -> Source:
        """Rows from a list of objects (a JSON import, or Python callers)."""
        if len(records) > MAX_ROWS:
            raise _too_many_rows()
        columns: dict[str, None] = {}
        rows = []
        for number, record in enumerate(records, start=1):
            if not isinstance(record, Mapping):
                rows.append(Row(number, {}, "is not an object with column names as keys."))
                continue
            values = {str(key).strip().lower(): value for key, value in record.items()}
            columns.update(dict.fromkeys(values))
            rows.append(Row(number, values))
        return cls(tuple(columns), tuple(rows))


def _too_many_rows() -> ImportRefused:
    return ImportRefused("file", f"The file has more than {MAX_ROWS:,} rows, the limit for one "
                                 "import; split it.", 413)


def _decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise ImportRefused("file", f"The file is larger than the {MAX_BYTES // 2**20} MB limit "
                                    "for one import; split it.", 413)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRefused("file", f"The file is not UTF-8 text (byte {exc.start} cannot be "
                                    "read); save it as CSV UTF-8.") from None


def _header(cells: Sequence[str]) -> tuple[str, ...]:
    names = tuple(unguard(cell).strip().lower() for cell in cells)
    if not any(names):
        raise ImportRefused("file", "The file is empty; its first row must name the columns.")
    if not all(names):
        raise ImportRefused("columns", "Every column needs a name in the first row.")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ImportRefused("columns", f"Columns named twice: {', '.join(twice)}.")
    return names


def _csv_row(number: int, columns: tuple[str, ...], cells: list[str]) -> Row:
    # Spreadsheets sometimes add empty cells past the last column; they carry nothing.
    while len(cells) > len(columns) and not cells[-1].strip():
        cells = cells[:-1]
    if len(cells) != len(columns):
        return Row(number, {}, f"has {len(cells)} cells, but the header names "
                               f"{len(columns)} columns.")
    return Row(number, {name: unguard(cell) for name, cell in zip(columns, cells, strict=True)})


def read_csv(data: bytes) -> Source:
    content = _decode(data)
    # Spreadsheets set to a decimal comma separate cells by semicolons.
    header = content.split("\n", 1)[0]
    delimiter = ";" if ";" in header and "," not in header else ","
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    rows: list[Row] = []
    try:
        columns = _header(next(reader, []))
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) == MAX_ROWS:
                raise _too_many_rows()
            rows.append(_csv_row(number, columns, cells))
    except csv.Error as exc:
        raise ImportRefused("file", f"Line {reader.line_num} cannot be read as CSV ({exc}); "
                                    f"cells are limited to {MAX_CELL:,} characters.") from None
    return Source(columns, tuple(rows))


def read_json(data: bytes) -> Source:
    try:
        parsed = json.loads(_decode(data))
    except json.JSONDecodeError as exc:
        raise ImportRefused("file", f"The file is not valid JSON: {exc.msg} at line "
                                    f"{exc.lineno}, column {exc.colno}.") from None
    if not isinstance(parsed, list):
        raise ImportRefused("file", "A JSON import is a list of objects, one per row.")
    return Source.from_records(parsed)


# --- values --------------------------------------------------------------------------------

class Invalid(ValueError):
    """A value that cannot be used; the message says why (the caller names the column)."""


Parser = Callable[[Any], Any]


def _empty(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def _string(raw: Any) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise Invalid("must be text")
    value = str(raw)
    if "\x00" in value:
        raise Invalid("must not contain NUL characters")
    return value


def text(limit: int, *, nullable: bool = False, strip: bool = False) -> Parser:
    def parse(raw: Any) -> str | None:
        if _empty(raw):
            return None if nullable else ""
        value = _string(raw).strip() if strip else _string(raw)
        if len(value) > limit:
            raise Invalid(f"must be at most {limit:,} characters")
        return value

    return parse


def choice(options: Sequence[str], *, nullable: bool = False) -> Parser:
    by_lower = {option.lower(): option for option in options}

    def parse(raw: Any) -> str | None:
        found = None if _empty(raw) else by_lower.get(_string(raw).strip().lower())
        if found is None and not (nullable and _empty(raw)):
            raise Invalid(f"must be one of {', '.join(options)}")
        return found

    return parse


_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


def boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    word = _string(raw).strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise Invalid("must be true or false")


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def day(raw: Any) -> date | None:
    if _empty(raw):
        return None
    value = _string(raw).strip()
    if _DAY.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise Invalid("must be a date as YYYY-MM-DD")


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def _address(value: str) -> str:
    if not _EMAIL.fullmatch(value) or len(value) > 255:
        raise Invalid(f"'{value[:60]}' is not an email address")
    return value


def email(raw: Any) -> str | None:
    return None if _empty(raw) else _address(_string(raw).strip().lower())


def words(limit: int, most: int, check: Callable[[str], str] | None = None) -> Parser:
    """A set of lower-cased words: a JSON list, or text separated by ; , or spaces."""

    def parse(raw: Any) -> list[str]:
        if _empty(raw):
            return []
        items = ([_string(item) for item in raw] if isinstance(raw, list)
                 else re.split(r"[;,\s]+", _string(raw)))
        found = sorted({item.strip().lower() for item in items if item.strip()})
        for item in found:
            if len(item) > limit:
                raise Invalid(f"'{item[:60]}…' is longer than {limit} characters")
            if check is not None:
                check(item)
        if len(found) > most:
            raise Invalid(f"must have at most {most} entries")
        return found

    return parse


def term(raw: Any) -> str | None:
    """Normalised; whether it is one of the terms is checked with the current value known."""
    if _empty(raw):
        return None
    value = normalise_term(_string(raw))
    if value is not None and len(value) > 20:
        raise Invalid(f"must be one of {', '.join(CONTRACT_TERMS)}")
    return value


@dataclass(frozen=True)
class Column:
    name: str
    parse: Parser
    #: An empty cell leaves the value as it is (fields that cannot be empty).
    keep_when_empty: bool = False


def _columns(*columns: Column) -> dict[str, Column]:
    return {column.name: column for column in columns}


COMPANY_COLUMNS = _columns(
    Column("account_number", text(50, strip=True)),
    Column("name", text(255, strip=True)),
    Column("description", text(10_000)),
    Column("parent_account_number", text(50, nullable=True, strip=True)),
    Column("compliance_level", choice(COMPLIANCE_LEVELS), keep_when_empty=True),
    Column("billing_plan", text(100, nullable=True, strip=True)),
    Column("contract_term_length", term),
    Column("contract_start_date", day),
    Column("support_level", text(50, nullable=True, strip=True)),
    Column("domains", words(253, 100)),
    Column("main_phone", text(50, strip=True)),
    Column("address", text(2000)),
    Column("active", boolean, keep_when_empty=True),
)
CONTACT_COLUMNS = _columns(
    Column("email", email),
    Column("external_source", text(20, nullable=True, strip=True)),
    Column("external_id", text(64, nullable=True, strip=True)),
    Column("name", text(255, strip=True)),
    Column("first_name", text(120, strip=True)),
    Column("last_name", text(120, strip=True)),
    Column("title", text(150, strip=True)),
    Column("work_phone", text(50, strip=True)),
    Column("mobile_phone", text(50, strip=True)),
    Column("secondary_emails", words(255, 50, _address)),
    Column("active", boolean, keep_when_empty=True),
    Column("vip", boolean, keep_when_empty=True),
    Column("account_number", text(50, nullable=True, strip=True)),
    Column("role", choice(CONTACT_ROLES, nullable=True)),
)
ASSET_COLUMNS = _columns(
    # Both only find the asset (and place a new one): an empty cell cannot clear them.
    Column("account_number", text(50, strip=True), keep_when_empty=True),
    Column("hostname", text(255, strip=True), keep_when_empty=True),
    Column("serial_number", text(100, strip=True)),
    Column("device_category", text(100, strip=True)),
    Column("billing_type_override", choice(BILLING_TYPES, nullable=True)),
    Column("operating_system", text(255, strip=True)),
    Column("manufacturer", text(150, strip=True)),
    Column("model", text(150, strip=True)),
    Column("purchase_date", day),
    Column("warranty_expiry", day),
    Column("internal_ip", text(100, strip=True)),
    Column("external_ip", text(100, strip=True)),
    Column("domain", text(255, strip=True)),
    Column("description", text(10_000)),
)
SPECS: dict[str, dict[str, Column]] = {"companies": COMPANY_COLUMNS,
                                       "contacts": CONTACT_COLUMNS, "assets": ASSET_COLUMNS}
#: The columns of each kind, in the order an export writes them.
COLUMNS: dict[str, tuple[str, ...]] = {kind: tuple(spec) for kind, spec in SPECS.items()}
#: A file must have one of these columns to find its rows.
KEY_COLUMNS = {"companies": ("account_number",), "contacts": ("email", "external_id"),
               "assets": ("hostname", "serial_number")}

#: What a PSA sync writes on a company again: staff may still change it (as in the API), with
#: a warning that the next sync may undo it.
PSA_COMPANY_FIELDS = ("name", "description", "domains", "main_phone", "address", "active")
#: What a sync owns on a contact from a PSA and on an asset from an RMM: refused, as the
#: contact and asset rules refuse them, since every sync would silently undo the change.
PSA_CONTACT_FIELDS = contacts.SYNCED_FIELDS
RMM_ASSET_FIELDS = assets.RMM_FIELDS
#: Shown in a plan but following from other fields, so not compared when applying.
DERIVED = ("contract_end_date", "billing_type")


# --- plans ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    field: str | None
    message: str
    row: int


@dataclass
class PlannedRow:
    """What one row (for contacts: the rows of one contact) would do."""

    row: int
    key: str = ""
    rows: list[int] = field(default_factory=list)
    #: The existing row it changes; None for a new one.
    target_id: int | None = None
    values: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Contacts: the (account number, role) pairs the rows give; None without that column.
    roles: set[tuple[str, str]] | None = None

    def __post_init__(self) -> None:
        self.rows = self.rows or [self.row]

    @property
    def action(self) -> Action:
        if self.errors:
            return "error"
        if self.target_id is None:
            return "create"
        return "update" if self.changes else "unchanged"

    def fail(self, column: str | None, message: str, row: int | None = None) -> None:
        self.errors.append(Problem(column, message, self.row if row is None else row))

    def warn_synced(self, source: str | None, owned: Iterable[str]) -> None:
        overwritten = [name for name in owned if name in self.changes]
        if source and overwritten:
            self.warnings.append(f"Kept in step with {source}: its next sync may change "
                                 f"{', '.join(overwritten)} back.")

    def refuse_synced(self, source: str | None, owned: Iterable[str]) -> None:
        for name in owned:
            if source and name in self.changes:
                self.fail(name, f"comes from {source}, which rewrites it at every sync; "
                                "change it there")

    def to_dict(self) -> dict[str, Any]:
        action = self.action
        changes = {name: {"old": jsonable(old), "new": jsonable(new)}
                   for name, (old, new) in self.changes.items()}
        return {"row": self.row, "rows": list(self.rows), "key": self.key, "action": action,
                "changes": changes if action in ("create", "update") else {},
                "errors": [{"row": problem.row, "field": problem.field,
                            "message": problem.message} for problem in self.errors],
                "warnings": list(self.warnings)}


@dataclass
class Plan:
    kind: str
    rows: list[PlannedRow]
    billing: BillingTypeMap

    def counts(self) -> dict[str, int]:
        found = dict.fromkeys(("create", "update", "unchanged", "error"), 0)
        for entry in self.rows:
            found[entry.action] += 1
        return found

    @property
    def has_errors(self) -> bool:
        return any(entry.errors for entry in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "counts": self.counts(), "can_apply": not self.has_errors,
                "rows": [entry.to_dict() for entry in self.rows]}


def _parse(columns: Mapping[str, Column], row: Row, entry: PlannedRow) -> dict[str, Any] | None:
    """A row's values by column, each parsed; problems go to ``entry``. None: unreadable."""
    if row.problem:
        entry.fail(None, f"Row {row.number} {row.problem}", row.number)
        return None
    values: dict[str, Any] = {}
    for name, raw in row.values.items():
        column = columns[name]
        if isinstance(raw, str) and len(raw) > MAX_CELL:
            entry.fail(name, f"is longer than the {MAX_CELL:,}-character limit for a cell",
                       row.number)
        elif not (column.keep_when_empty and _empty(raw)):
            try:
                values[name] = column.parse(raw)
            except Invalid as exc:
                entry.fail(name, str(exc), row.number)
    return values


def _same(old: Any, new: Any) -> bool:
    # Imported text is trimmed; a stored value differing only by surrounding spaces (as a
    # vendor sent it) is no change.
    return old == new or (isinstance(old, str) and isinstance(new, str) and old.strip() == new)


def _diff(current: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {name: (current.get(name), new) for name, new in values.items()
            if not _same(current.get(name), new)}


def _created(values: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {name: (None, value) for name, value in values.items()
            if value is not None and value != "" and value != []}


def _claim(entry: PlannedRow, column: str, key: str, seen: dict[str, int]) -> bool:
    """Record a row's key; refuse a missing one or one an earlier row has."""
    if not key:
        entry.fail(column, "is required")
        return False
    if key in seen:
        entry.fail(column, f"'{key}' is also on row {seen[key]}")
        return False
    seen[key] = entry.row
    return True


def _still(entry: PlannedRow, current: Mapping[str, Any]) -> None:
    """Refuse to apply a change to a row someone else changed since the plan was made."""
    for name, (old, _new) in entry.changes.items():
        if name not in DERIVED and current.get(name) != old:
            raise StalePlan(f"{name} of {entry.key} was changed meanwhile.", entry.row)


def plan(session: Session, kind: str, rows: Source | Sequence[Mapping[str, Any]], *,
         billing: BillingTypeMap | None = None) -> Plan:
    """What importing ``rows`` would do, row by row; reads the database, changes nothing.

    ``billing`` derives new and re-categorised assets' billing types (default: built-in map).
    """
    if kind not in KINDS:
        raise ImportRefused("kind", f"Codex imports {', '.join(KINDS)}, not '{kind}'.", 404)
    source = rows if isinstance(rows, Source) else Source.from_records(rows)
    unknown = [name for name in source.columns if name not in SPECS[kind]]
    if unknown:
        raise ImportRefused("columns", f"Unknown column{'s' if len(unknown) > 1 else ''}: "
                                       f"{', '.join(unknown)}. An import of {kind} takes: "
                                       f"{', '.join(COLUMNS[kind])}.")
    if source.rows and not set(KEY_COLUMNS[kind]) & set(source.columns):
        raise ImportRefused("columns", f"An import of {kind} needs the column "
                                       f"{' or '.join(KEY_COLUMNS[kind])} to find its rows.")
    billing = billing or BillingTypeMap.from_config(None)
    return Plan(kind, _PLANNERS[kind](session, source.rows, billing), billing)


def apply(session: Session, plan: Plan, *, skip_errors: bool = False) -> dict[str, int]:
    """Carry out a plan and commit, in one transaction: every row of it or none.

    A plan with errors is refused unless ``skip_errors`` (then those rows are left out). A row
    someone changed since the plan was made refuses the whole import (:class:`StalePlan`).
    Returns how many rows were created, updated, unchanged and skipped.
    """
    counts = plan.counts()
    if counts["error"] and not skip_errors:
        raise ImportRefused("plan", f"{counts['error']} row{'s' if counts['error'] > 1 else ''}"
                                    " of the plan have errors; fix them, or skip those rows "
                                    "explicitly.")
    entries = [entry for entry in plan.rows if entry.action in ("create", "update")]
    try:
        _APPLIERS[plan.kind](session, entries, plan.billing)
        session.commit()
    except IntegrityError:
        session.rollback()
        raise StalePlan("The database refused a row: a change made meanwhile conflicts with "
                        "it.") from None
    except Exception:
        session.rollback()
        raise
    return {"created": counts["create"], "updated": counts["update"],
            "unchanged": counts["unchanged"], "skipped": counts["error"]}


def _fresh(session: Session, query: Any) -> list[Any]:
    """Rows as the database has them now, not as this session last saw them."""
    return list(session.scalars(query.execution_options(populate_existing=True)))


def _pairs(session: Session, key: Any, value: Any) -> dict[Any, Any]:
    return {row[0]: row[1] for row in session.execute(select(key, value))}


def _account_ids(session: Session) -> dict[str, int]:
    return _pairs(session, Company.account_number, Company.id)


# --- companies -----------------------------------------------------------------------------

def company_values(company: Company, numbers: Mapping[int, str]) -> dict[str, Any]:
    """A company in import columns (what an export writes, what a plan compares with);
    ``numbers`` gives the account number of each company id (for the parent)."""
    return {
        "account_number": company.account_number, "name": company.name,
        "description": company.description,
        "parent_account_number": numbers.get(company.parent_id) if company.parent_id else None,
        "compliance_level": company.compliance_level, "billing_plan": company.billing_plan,
        "contract_term_length": company.contract_term_length,
        "contract_start_date": company.contract_start_date,
        "contract_end_date": company.contract_end_date,
        "support_level": company.support_level, "domains": sorted(company.domains or []),
        "main_phone": company.main_phone, "address": company.address, "active": company.active,
    }


def _plan_companies(session: Session, rows: Sequence[Row],
                    _billing: BillingTypeMap) -> list[PlannedRow]:
    companies = _fresh(session, select(Company))
    by_number = {company.account_number: company for company in companies}
    numbers = {company.id: company.account_number for company in companies}
    seen: dict[str, int] = {}
    planned = []
    for row in rows:
        entry = PlannedRow(row.number)
        planned.append(entry)
        values = _parse(COMPANY_COLUMNS, row, entry)
        if values is None:
            continue
        entry.key = values.get("account_number") or ""
        entry.values = values
        if _claim(entry, "account_number", entry.key, seen):
            company = by_number.get(entry.key)
            entry.target_id = company.id if company is not None else None
            _check_company(entry, company)
    _plan_hierarchy(planned, companies, numbers)
    for entry in planned:
        if not entry.errors:
            _company_changes(entry, by_number.get(entry.key), numbers)
    return planned


_ACCOUNT_NUMBER = cast("re.Pattern[str]", ACCOUNT_NUMBER.regex)


def _check_company(entry: PlannedRow, company: Company | None) -> None:
    values = entry.values
    if company is None and not _ACCOUNT_NUMBER.match(entry.key):
        entry.fail("account_number", str(ACCOUNT_NUMBER.error))
    if company is None and "name" not in values:
        entry.fail("name", "is required for a new company")
    elif "name" in values and not values["name"].strip():
        entry.fail("name", "must not be blank")
    chosen = values.get("contract_term_length")
    if chosen is not None and chosen not in CONTRACT_TERMS and (
            company is None or chosen != company.contract_term_length):
        entry.fail("contract_term_length", f"must be one of {', '.join(CONTRACT_TERMS)}")
    if company is not None and company.archived_at is not None and values.get("active"):
        entry.fail("active", "the company is archived; unarchive it before making it active")


def _plan_hierarchy(planned: list[PlannedRow], companies: list[Company],
                    numbers: Mapping[int, str]) -> None:
    """Refuse parents that do not exist and moves that would make a cycle, judged on the
    hierarchy as the import would leave it. Rows with errors change nothing, so a refusal can
    expose another (a cycle through a company that now stays put): repeat until none is new."""
    refused = True
    while refused:
        parent_of = {company.account_number: numbers.get(company.parent_id)
                     if company.parent_id else None for company in companies}
        valid = [entry for entry in planned if not entry.errors]
        parent_of.update({entry.key: None for entry in valid if entry.target_id is None})
        moving = [entry for entry in valid if "parent_account_number" in entry.values]
        parent_of.update({entry.key: entry.values["parent_account_number"] for entry in moving})
        broken = {entry.key: entry.row for entry in planned
                  if entry.errors and entry.key not in parent_of}
        cycles = _cycles(parent_of)
        refused = False
        for entry in moving:
            message = _hierarchy_problem(entry, parent_of, broken, cycles)
            if message:
                entry.fail("parent_account_number", message)
                refused = True
        _refuse_children(moving)


def _hierarchy_problem(entry: PlannedRow, parent_of: Mapping[str, str | None],
                       broken: Mapping[str, int],
                       cycles: Mapping[str, tuple[list[str], int]]) -> str | None:
    parent = entry.values["parent_account_number"]
    if parent is None:
        return None
    if parent not in parent_of:
        if parent in broken:
            return f"'{parent}' would be created by row {broken[parent]}, which has errors"
        return f"There is no company with account number '{parent}' (in Codex or this file)."
    if entry.key in cycles:
        loop, start = cycles[entry.key]
        path = [loop[(start + step) % len(loop)] for step in range(min(len(loop), 6))]
        # Back to itself, unless the cycle is too long to show whole.
        end = [entry.key] if len(loop) <= len(path) else [f"… ({len(loop)} companies)"]
        return "would put the company below itself: " + " → ".join(path + end)
    return None


def _refuse_children(moving: list[PlannedRow]) -> None:
    """A new company refused is not created, so nor are the companies the file puts below it
    (all the way down, at once rather than one level per round)."""
    children: dict[str, list[PlannedRow]] = defaultdict(list)
    for entry in moving:
        children[entry.values["parent_account_number"]].append(entry)
    waiting = [entry for entry in moving if entry.errors and entry.target_id is None]
    while waiting:
        parent = waiting.pop()
        for child in children[parent.key]:
            if not child.errors:
                child.fail("parent_account_number", f"'{parent.key}' would be created by row "
                                                    f"{parent.row}, which has errors")
                if child.target_id is None:
                    waiting.append(child)


def _cycles(parent_of: Mapping[Any, Any]) -> dict[Any, tuple[list[Any], int]]:
    """Every node on a cycle: the cycle (walked upwards) and the node's place in it; one pass
    over the graph, however deep."""
    done: set[Any] = set()
    found: dict[Any, tuple[list[Any], int]] = {}
    for start in parent_of:
        path: dict[Any, int] = {}
        node = start
        while node is not None and node not in done and node not in path:
            path[node] = len(path)
            node = parent_of.get(node)
        if node is not None and node in path:
            loop = list(path)[path[node]:]
            for index, member in enumerate(loop):
                found[member] = (loop, index)
        done.update(path)
    return found


def _company_changes(entry: PlannedRow, company: Company | None,
                     numbers: Mapping[int, str]) -> None:
    values = entry.values
    if company is None:
        entry.changes = _created(values)
        old_end = None
        start, chosen = values.get("contract_start_date"), values.get("contract_term_length")
    else:
        current = company_values(company, numbers)
        given = dict(values)
        # The PSA keeps domains as it has them; the same ones in lower case are no change.
        if given.get("domains") == sorted(domain.lower() for domain in current["domains"]):
            given.pop("domains")
        entry.changes = _diff(current, given)
        old_end = company.contract_end_date
        start = values.get("contract_start_date", company.contract_start_date)
        chosen = values.get("contract_term_length", company.contract_term_length)
        entry.warn_synced(company.psa_source, PSA_COMPANY_FIELDS)
    end = contract_end(start, chosen)
    if end != old_end:
        entry.changes["contract_end_date"] = (old_end, end)


def _apply_companies(session: Session, entries: list[PlannedRow],
                     _billing: BillingTypeMap) -> None:
    companies = _fresh(session, select(Company))
    by_number: dict[str, Company] = {company.account_number: company for company in companies}
    numbers = {company.id: company.account_number for company in companies}
    for entry in entries:
        company = by_number.get(entry.key)
        if entry.target_id is None:
            if company is not None:
                raise StalePlan(f"company {entry.key} was created meanwhile.", entry.row)
            company = Company(account_number=entry.key, name=entry.values["name"])
            session.add(company)
            by_number[entry.key] = company
        elif company is None or company.id != entry.target_id:
            raise StalePlan(f"company {entry.key} was renumbered or deleted meanwhile.",
                            entry.row)
        else:
            _still(entry, company_values(company, numbers))
        for name, (_old, new) in entry.changes.items():
            if name not in ("account_number", "parent_account_number"):
                setattr(company, name, new)
    session.flush()
    for entry in entries:
        if "parent_account_number" in entry.changes:
            parent = entry.changes["parent_account_number"][1]
            if parent is not None and parent not in by_number:
                raise StalePlan(f"the parent company {parent} was deleted meanwhile.",
                                entry.row)
            by_number[entry.key].parent_id = by_number[parent].id if parent else None
    session.flush()
    _refuse_cycles(session)


def _refuse_cycles(session: Session) -> None:
    """The plan checked the hierarchy as it was then; check it again as it is now."""
    if _cycles(_pairs(session, Company.id, Company.parent_id)):
        raise StalePlan("The company hierarchy changed meanwhile, and the import would now "
                        "make a cycle.")


# --- contacts ------------------------------------------------------------------------------

CONTACT_KEYS = ("email", "external_source", "external_id")


def _role_dicts(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"account_number": account, "role": role} for account, role in sorted(pairs)]


def _role_pairs(contact: Contact, company_id: int | None = None) -> set[tuple[str, str]]:
    return {(role.company.account_number, role.role) for role in contact.roles
            if company_id is None or role.company_id == company_id}


def contact_values(contact: Contact) -> dict[str, Any]:
    """A contact's own fields in import columns, with its ``roles`` (a plan compares them)."""
    return {
        "email": contact.email, "external_source": contact.external_source,
        "external_id": contact.external_id, "name": contact.name,
        "first_name": contact.first_name, "last_name": contact.last_name,
        "title": contact.title, "work_phone": contact.work_phone,
        "mobile_phone": contact.mobile_phone,
        "secondary_emails": sorted(contact.secondary_emails or []), "active": contact.active,
        "vip": contact.vip, "roles": _role_dicts(_role_pairs(contact)),
    }


def contact_rows(contact: Contact, company_id: int | None = None) -> list[dict[str, Any]]:
    """A contact as import rows: one per role (only those at ``company_id`` when given), or
    one without a company when it has none."""
    base = contact_values(contact)
    base.pop("roles")
    pairs: list[tuple[str | None, str | None]] = [*sorted(_role_pairs(contact, company_id))]
    pairs = pairs or [(None, None)]
    return [{**base, "account_number": account, "role": role} for account, role in pairs]


@dataclass
class _Contacts:
    by_email: dict[str, list[Contact]]
    by_external: dict[tuple[str | None, str | None], Contact]

    @classmethod
    def of(cls, contacts: Iterable[Contact]) -> _Contacts:
        index = cls(defaultdict(list), {})
        for contact in contacts:
            if contact.email:
                index.by_email[contact.email].append(contact)
            if contact.external_id:
                index.by_external[(contact.external_source, contact.external_id)] = contact
        return index


def _contact_query() -> Any:
    return select(Contact).options(selectinload(Contact.roles).selectinload(ContactRole.company))


def _plan_contacts(session: Session, rows: Sequence[Row],
                   _billing: BillingTypeMap) -> list[PlannedRow]:
    index = _Contacts.of(_fresh(session, _contact_query()))
    psa_of = _pairs(session, Company.account_number, Company.psa_source)
    groups: dict[tuple[str | None, ...], PlannedRow] = {}
    planned: list[PlannedRow] = []
    for row in rows:
        entry = PlannedRow(row.number)
        values = _parse(CONTACT_COLUMNS, row, entry)
        key = None if values is None else _contact_key(values, entry)
        if values is None or key is None:
            planned.append(entry)
            continue
        pair = _role_pair(values, psa_of, entry)
        group = groups.get(key)
        if group is None:
            entry.key = values.get("email") or f"{key[1]} {key[2]}"
            entry.values = values
            entry.roles = set() if "account_number" in row.values else None
            groups[key] = group = entry
            planned.append(entry)
        else:
            _merge_contact_row(group, entry, values)
        if pair is not None and group.roles is not None:
            group.roles.add(pair)
    targets: dict[int, int] = {}
    for entry in planned:
        if not entry.errors:
            _resolve_contact(entry, index, targets, psa_of)
    return planned


def _contact_key(values: Mapping[str, Any], entry: PlannedRow) -> tuple[str | None, ...] | None:
    address, source, external = (values.get(name) for name in CONTACT_KEYS)
    if bool(source) != bool(external):
        entry.fail("external_id" if source else "external_source",
                   "external_source and external_id go together")
        return None
    if not address and not external:
        entry.fail("email", "is required (or external_source and external_id)")
        return None
    return (address, source, external)


def _role_pair(values: dict[str, Any], known: Mapping[str, Any],
               entry: PlannedRow) -> tuple[str, str] | None:
    account, role = values.pop("account_number", None), values.pop("role", None)
    if account is None:
        if role is not None:
            entry.fail("role", "needs an account_number")
        return None
    if account not in known:
        entry.fail("account_number", f"There is no company with account number '{account}'.")
        return None
    return (account, role or "general")


def _merge_contact_row(group: PlannedRow, entry: PlannedRow, values: Mapping[str, Any]) -> None:
    """Another row of the same contact (one more role): its other cells must agree."""
    group.rows.append(entry.row)
    group.errors.extend(entry.errors)
    for name in sorted(set(values) | set(group.values)):
        if values.get(name) != group.values.get(name):
            group.fail(name, f"differs from row {group.row} of the same contact", entry.row)


def _resolve_contact(entry: PlannedRow, index: _Contacts, targets: dict[int, int],
                     psa_of: Mapping[str, str | None]) -> None:
    contact = _find_contact(entry, index)
    if entry.errors:
        return
    if contact is not None:
        if contact.id in targets:
            entry.fail("email", f"is the same contact as row {targets[contact.id]}")
            return
        targets[contact.id] = entry.row
        entry.target_id = contact.id
    _contact_changes(entry, contact)
    if contact is not None:
        _role_changes(entry, contact, psa_of)


def _find_contact(entry: PlannedRow, index: _Contacts) -> Contact | None:
    address, source, external = (entry.values.get(name) for name in CONTACT_KEYS)
    by_external = index.by_external.get((source, external)) if external else None
    candidates = index.by_email.get(address, []) if address else []
    if len(candidates) > 1:
        if by_external in candidates:
            return by_external
        entry.fail("email", f"{len(candidates)} contacts have this email; add external_source "
                            "and external_id to say which one")
        return None
    if not candidates:
        return by_external
    found = candidates[0]
    if external and found.external_id and (found.external_source,
                                           found.external_id) != (source, external):
        entry.fail("external_id", f"the contact with this email has external id "
                                  f"{found.external_source} {found.external_id}")
    elif by_external is not None and by_external is not found:
        entry.fail("external_id", f"belongs to another contact ({by_external.name}) than the "
                                  "email does")
    return found


def _contact_changes(entry: PlannedRow, contact: Contact | None) -> None:
    values = {name: value for name, value in entry.values.items()
              if name not in ("external_source", "external_id")}
    # External ids find a contact; an import only fills them in where there are none.
    if entry.values.get("external_id") and (contact is None or not contact.external_id):
        values.update({name: entry.values[name] for name in ("external_source", "external_id")})
    if contact is None:
        if not str(values.get("name") or "").strip():
            values["name"] = " ".join(str(values.get(part) or "").strip()
                                      for part in ("first_name", "last_name")).strip()
        if not values["name"]:
            entry.fail("name", "is required for a new contact (or first_name and last_name)")
        entry.changes = _created(values)
        if entry.roles:
            entry.changes["roles"] = ([], _role_dicts(entry.roles))
        return
    if "name" in values and not values["name"].strip():
        entry.fail("name", "must not be blank")
    entry.changes = _diff(contact_values(contact), values)
    entry.refuse_synced(contact.external_source, PSA_CONTACT_FIELDS)


def _role_changes(entry: PlannedRow, contact: Contact, psa_of: Mapping[str, str | None]) -> None:
    """For each company the rows name, the roles listed; roles at other companies stay. A
    PSA contact's roles at that PSA's companies are the PSA's."""
    if entry.roles is None:
        return
    named = {account for account, _role in entry.roles}
    current = _role_pairs(contact)
    wanted = {pair for pair in current if pair[0] not in named} | entry.roles
    if wanted == current:
        return
    entry.changes["roles"] = (_role_dicts(current), _role_dicts(wanted))
    source = contact.external_source
    if source and {pair for pair in current if psa_of.get(pair[0]) == source} != {
            pair for pair in wanted if psa_of.get(pair[0]) == source}:
        entry.fail("roles", f"roles at companies synced from {source} belong to {source}; "
                            "change them there (roles at other companies may change here)")


def _apply_contacts(session: Session, entries: list[PlannedRow],
                    _billing: BillingTypeMap) -> None:
    contacts = {contact.id: contact for contact in _fresh(session, _contact_query())}
    index = _Contacts.of(contacts.values())
    companies = _account_ids(session)
    for entry in entries:
        if entry.target_id is None:
            values = {name: new for name, (_old, new) in entry.changes.items()}
            if values.get("email") in index.by_email or (
                    values.get("external_source"), values.get("external_id")) in index.by_external:
                raise StalePlan(f"a contact {entry.key} was added meanwhile.", entry.row)
            contact = Contact(name=values["name"])
            session.add(contact)
        elif entry.target_id not in contacts:
            raise StalePlan(f"contact {entry.key} was deleted meanwhile.", entry.row)
        else:
            contact = contacts[entry.target_id]
            _still(entry, contact_values(contact))
        for name, (_old, new) in entry.changes.items():
            if name == "roles":
                _set_roles(contact, new, companies, entry.row)
            else:
                setattr(contact, name, new)
    session.flush()


def _set_roles(contact: Contact, wanted: list[dict[str, str]], companies: Mapping[str, int],
               row: int) -> None:
    want = set()
    for pair in wanted:
        if pair["account_number"] not in companies:
            raise StalePlan(f"company {pair['account_number']} was deleted meanwhile.", row)
        want.add((companies[pair["account_number"]], pair["role"]))
    current = {(role.company_id, role.role): role for role in contact.roles}
    for key, role in current.items():
        if key not in want:
            contact.roles.remove(role)
    for company_id, role_name in sorted(want - set(current)):
        contact.roles.append(ContactRole(company_id=company_id, role=role_name))


# --- assets --------------------------------------------------------------------------------

def asset_values(asset: Asset) -> dict[str, Any]:
    """An asset in import columns (what an export writes, what a plan compares with)."""
    return {
        "account_number": asset.company.account_number, "hostname": asset.hostname,
        "serial_number": asset.serial_number, "device_category": asset.device_category,
        "billing_type_override": asset.billing_type_override,
        "operating_system": asset.operating_system, "manufacturer": asset.manufacturer,
        "model": asset.model, "purchase_date": asset.purchase_date,
        "warranty_expiry": asset.warranty_expiry, "internal_ip": asset.internal_ip,
        "external_ip": asset.external_ip, "domain": asset.domain,
        "description": asset.description,
    }


def _asset_query() -> Any:
    return select(Asset).where(Asset.retired_at.is_(None)).options(selectinload(Asset.company))


@dataclass
class _Assets:
    by_host: dict[tuple[int, str], list[Asset]]
    by_serial: dict[str, list[Asset]]

    @classmethod
    def of(cls, assets: Iterable[Asset]) -> _Assets:
        index = cls(defaultdict(list), defaultdict(list))
        for asset in assets:
            index.by_host[(asset.company_id, asset.hostname.lower())].append(asset)
            if asset.serial_number.strip():
                index.by_serial[asset.serial_number.strip().lower()].append(asset)
        return index


def _plan_assets(session: Session, rows: Sequence[Row],
                 billing: BillingTypeMap) -> list[PlannedRow]:
    index = _Assets.of(_fresh(session, _asset_query()))
    companies = _account_ids(session)
    targets: dict[int, int] = {}
    new_keys: dict[str, int] = {}
    planned = []
    for row in rows:
        entry = PlannedRow(row.number)
        planned.append(entry)
        values = _parse(ASSET_COLUMNS, row, entry)
        if values is None:
            continue
        entry.values = values
        account = values.get("account_number")
        if account and account not in companies:
            entry.fail("account_number", f"There is no company with account number '{account}'.")
            continue
        asset = _find_asset(entry, index, companies)
        if entry.errors:
            continue
        if asset is None:
            _new_asset(entry, new_keys, billing)
        elif asset.id in targets:
            entry.fail("hostname", f"is the same asset as row {targets[asset.id]}")
        else:
            targets[asset.id] = entry.row
            entry.target_id = asset.id
            _asset_changes(entry, asset, billing)
    return planned


def _find_asset(entry: PlannedRow, index: _Assets, companies: Mapping[str, int]) -> Asset | None:
    account, host, serial = (entry.values.get(name) for name in
                             ("account_number", "hostname", "serial_number"))
    if account and host:
        matches = index.by_host.get((companies[account], host.lower()), [])
        if len(matches) > 1 and serial:
            matches = [asset for asset in matches if asset.serial_number.lower() == serial.lower()]
        if len(matches) == 1:
            return matches[0]
        if matches:
            entry.fail("hostname", f"{len(matches)} assets of {account} are called {host}; add "
                                   "serial_number to say which one")
            return None
    if serial:
        matches = index.by_serial.get(serial.lower(), [])
        if len(matches) == 1:
            entry.warnings.append(f"Found by its serial number {serial}.")
            return matches[0]
        if matches:
            entry.fail("serial_number", f"{len(matches)} assets have this serial number; give "
                                        "the account_number and hostname of one of them")
    return None


def _new_asset(entry: PlannedRow, new_keys: dict[str, int], billing: BillingTypeMap) -> None:
    account, host = entry.values.get("account_number"), entry.values.get("hostname")
    for name, value in (("account_number", account), ("hostname", host)):
        if not value:
            entry.fail(name, "is required for a new asset")
    if not account or not host:
        return
    entry.key = f"{account}/{host}"
    if _claim(entry, "hostname", entry.key.lower(), new_keys):
        entry.changes = _created(entry.values)
        entry.changes["billing_type"] = (None,
                                         billing.classify(entry.values.get("device_category"))[0])


def _asset_changes(entry: PlannedRow, asset: Asset, billing: BillingTypeMap) -> None:
    entry.key = f"{asset.company.account_number}/{asset.hostname}"
    entry.changes = _diff(asset_values(asset), entry.values)
    if "device_category" in entry.changes:
        derived = billing.classify(entry.changes["device_category"][1])[0]
        if derived != asset.billing_type:
            entry.changes["billing_type"] = (asset.billing_type, derived)
    entry.refuse_synced(asset.rmm_source or "the RMM" if asset.source == "rmm" else None,
                        RMM_ASSET_FIELDS)


def _apply_assets(session: Session, entries: list[PlannedRow], billing: BillingTypeMap) -> None:
    assets = {asset.id: asset for asset in _fresh(session, _asset_query())}
    taken = {(asset.company.account_number, asset.hostname.lower()) for asset in assets.values()}
    companies = _account_ids(session)
    for entry in entries:
        if entry.target_id is None:
            account, host = (entry.changes[name][1] for name in ("account_number", "hostname"))
            if (account, host.lower()) in taken:
                raise StalePlan(f"an asset {entry.key} was added meanwhile.", entry.row)
            asset = Asset(hostname=host, source="import")
            session.add(asset)
        elif entry.target_id not in assets:
            raise StalePlan(f"asset {entry.key} was retired or deleted meanwhile.", entry.row)
        else:
            asset = assets[entry.target_id]
            _still(entry, asset_values(asset))
        for name, (_old, new) in entry.changes.items():
            if name == "account_number":
                if new not in companies:
                    raise StalePlan(f"company {new} was deleted meanwhile.", entry.row)
                asset.company_id = companies[new]
            elif name != "billing_type":
                setattr(asset, name, new)
        if entry.target_id is None or "device_category" in entry.changes:
            asset.billing_type, asset.billing_type_unmapped = billing.classify(
                asset.device_category)
    session.flush()


_PLANNERS: dict[str, Callable[[Session, Sequence[Row], BillingTypeMap], list[PlannedRow]]] = {
    "companies": _plan_companies, "contacts": _plan_contacts, "assets": _plan_assets}
_APPLIERS: dict[str, Callable[[Session, list[PlannedRow], BillingTypeMap], None]] = {
    "companies": _apply_companies, "contacts": _apply_contacts, "assets": _apply_assets}
