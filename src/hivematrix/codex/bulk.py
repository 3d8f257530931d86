"""The big reads: everything Ledger needs for all companies, and the ticket wall's feed.

Both are read with column queries (no ORM objects: tens of thousands of rows) grouped in
Python by company; each is one query per table, never one per company. On PostgreSQL the
database builds the bulk document itself, in slices on several connections that share one
snapshot, and the answer is streamed company by company as the slices finish.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select, text
from sqlalchemy.orm import Session

from hivematrix.codex import feed
from hivematrix.codex.billing_types import effective
from hivematrix.codex.models import (
    Asset,
    Company,
    Contact,
    ContactRole,
    Location,
    PSAAgent,
    SyncJob,
    Ticket,
    TimeEntry,
)
from hivematrix.codex.serialise import iso

COMPANY_COLUMNS = (Company.id, Company.account_number, Company.name, Company.description,
                   Company.parent_id, Company.compliance_level, Company.billing_plan,
                   Company.contract_term_length, Company.contract_start_date,
                   Company.contract_end_date, Company.support_level, Company.domains,
                   Company.main_phone, Company.address, Company.active, Company.archived_at)


def _company(row: Any, numbers: dict[int, str]) -> dict[str, Any]:
    return {
        "account_number": row.account_number, "name": row.name,
        "description": row.description,
        "parent_account_number": numbers.get(row.parent_id) if row.parent_id else None,
        "compliance_level": row.compliance_level, "billing_plan": row.billing_plan,
        "contract_term_length": row.contract_term_length,
        "contract_start_date": iso(row.contract_start_date),
        "contract_end_date": iso(row.contract_end_date), "support_level": row.support_level,
        "domains": row.domains or [], "main_phone": row.main_phone, "address": row.address,
        "active": row.active, "archived_at": iso(row.archived_at),
    }


def companies_bulk(session: Session, *, include_tickets: bool, year: int | None,
                   account_numbers: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One item per company: ``company``, ``assets`` (not retired), ``contacts``,
    ``locations`` and, when asked, ``tickets`` (with ``time_entries``) created in ``year``."""
    query = select(*COMPANY_COLUMNS).where(Company.archived_at.is_(None)).order_by(
        Company.account_number)
    if account_numbers is not None:
        query = query.where(Company.account_number.in_(list(account_numbers)))
    rows = session.execute(query).all()
    numbers = {row[0]: row[1]
               for row in session.execute(select(Company.id, Company.account_number))}
    wanted = {row.id for row in rows}
    items: dict[int, dict[str, Any]] = {
        row.id: {"company": _company(row, numbers), "assets": [], "contacts": [],
                 "locations": [], **({"tickets": []} if include_tickets else {})}
        for row in rows}

    for asset in session.execute(select(
            Asset.id, Asset.company_id, Asset.hostname, Asset.device_category,
            Asset.billing_type, Asset.billing_type_override, Asset.billing_type_unmapped,
            Asset.operating_system, Asset.backup_bytes, Asset.online, Asset.last_seen,
            Asset.source).where(Asset.retired_at.is_(None)).order_by(Asset.id)):
        if asset.company_id in wanted:
            items[asset.company_id]["assets"].append({
                "id": asset.id, "hostname": asset.hostname,
                "device_category": asset.device_category,
                "billing_type": effective(asset.billing_type, asset.billing_type_override),
                "billing_type_unmapped": asset.billing_type_unmapped,
                "operating_system": asset.operating_system,
                "backup_bytes": asset.backup_bytes, "online": asset.online,
                "last_seen": iso(asset.last_seen), "source": asset.source})

    for contact in session.execute(select(
            ContactRole.company_id, ContactRole.role, Contact.id, Contact.name, Contact.email,
            Contact.title, Contact.active, Contact.vip).join(
            Contact, Contact.id == ContactRole.contact_id).order_by(
            Contact.name, Contact.id, ContactRole.role)):
        if contact.company_id in wanted:
            items[contact.company_id]["contacts"].append({
                "id": contact.id, "name": contact.name, "email": contact.email,
                "title": contact.title, "active": contact.active, "vip": contact.vip,
                "role": contact.role})

    for location in session.execute(select(Location.company_id, Location.id, Location.name,
                                           Location.address, Location.phone)
                                    .order_by(Location.id)):
        if location.company_id in wanted:
            items[location.company_id]["locations"].append({
                "id": location.id, "name": location.name, "address": location.address,
                "phone": location.phone})

    if include_tickets:
        _add_tickets(session, items, wanted, year)
    return list(items.values())


#: PostgreSQL builds the same document itself (in C), several times faster than building
#: hundreds of thousands of dicts in Python. Each kind of child is aggregated once per company
#: by a hash aggregate (not one subquery per company or per ticket). The shape must stay
#: identical to :func:`companies_bulk`; a test compares the two on the same data.
_PG_BULK = """
WITH
assets AS (
  SELECT a.company_id, json_agg(json_build_object(
    'id', a.id, 'hostname', a.hostname, 'device_category', a.device_category,
    'billing_type', COALESCE(NULLIF(a.billing_type_override, ''), a.billing_type),
    'billing_type_unmapped', a.billing_type_unmapped, 'operating_system', a.operating_system,
    'backup_bytes', a.backup_bytes, 'online', a.online, 'last_seen', a.last_seen,
    'source', a.source) ORDER BY a.id) AS items
  FROM codex_assets a WHERE a.retired_at IS NULL AND a.company_id = ANY(%(ids)s)
  GROUP BY a.company_id),
contacts AS (
  SELECT r.company_id, json_agg(json_build_object(
    'id', k.id, 'name', k.name, 'email', k.email, 'title', k.title, 'active', k.active,
    'vip', k.vip, 'role', r.role) ORDER BY k.name, k.id, r.role) AS items
  FROM codex_contact_roles r JOIN codex_contacts k ON k.id = r.contact_id
  WHERE r.company_id = ANY(%(ids)s) GROUP BY r.company_id),
locations AS (
  SELECT l.company_id, json_agg(json_build_object(
    'id', l.id, 'name', l.name, 'address', l.address, 'phone', l.phone) ORDER BY l.id) AS items
  FROM codex_locations l WHERE l.company_id = ANY(%(ids)s) GROUP BY l.company_id)
{ticket_ctes}
SELECT json_build_object(
  'company', json_build_object(
    'account_number', c.account_number, 'name', c.name, 'description', c.description,
    'parent_account_number', p.account_number, 'compliance_level', c.compliance_level,
    'billing_plan', c.billing_plan, 'contract_term_length', c.contract_term_length,
    'contract_start_date', c.contract_start_date, 'contract_end_date', c.contract_end_date,
    'support_level', c.support_level, 'domains', COALESCE(c.domains, '[]'::json),
    'main_phone', c.main_phone, 'address', c.address, 'active', c.active,
    'archived_at', c.archived_at),
  'assets', COALESCE(a.items, '[]'::json),
  'contacts', COALESCE(k.items, '[]'::json),
  'locations', COALESCE(l.items, '[]'::json)
  {ticket_field}
)::text
FROM codex_companies c LEFT JOIN codex_companies p ON p.id = c.parent_id
LEFT JOIN assets a ON a.company_id = c.id
LEFT JOIN contacts k ON k.company_id = c.id
LEFT JOIN locations l ON l.company_id = c.id
{ticket_join}
WHERE c.id = ANY(%(ids)s)
ORDER BY c.account_number
"""
#: ``view=billing``: only what a bill is calculated from (about a third smaller, so quicker to
#: build, send and read); one contact per person, however many roles. Same shape as
#: :func:`billing_view` of the full items; a test compares the two.
_PG_BILLING = """
WITH
assets AS (
  SELECT a.company_id, json_agg(json_build_object(
    'id', a.id, 'hostname', a.hostname, 'device_category', a.device_category,
    'billing_type', COALESCE(NULLIF(a.billing_type_override, ''), a.billing_type),
    'backup_bytes', a.backup_bytes) ORDER BY a.id) AS items
  FROM codex_assets a WHERE a.retired_at IS NULL AND a.company_id = ANY(%(ids)s)
  GROUP BY a.company_id),
contacts AS (
  SELECT d.company_id, json_agg(json_build_object(
    'id', d.id, 'name', d.name, 'email', d.email, 'active', d.active)
    ORDER BY d.name, d.id) AS items
  FROM (SELECT DISTINCT r.company_id, k.id, k.name, k.email, k.active
        FROM codex_contact_roles r JOIN codex_contacts k ON k.id = r.contact_id
        WHERE r.company_id = ANY(%(ids)s)) d
  GROUP BY d.company_id)
{ticket_ctes}
SELECT json_build_object(
  'company', json_build_object(
    'account_number', c.account_number, 'name', c.name,
    'billing_plan', c.billing_plan, 'contract_term_length', c.contract_term_length,
    'contract_start_date', c.contract_start_date, 'contract_end_date', c.contract_end_date,
    'support_level', c.support_level),
  'assets', COALESCE(a.items, '[]'::json),
  'contacts', COALESCE(k.items, '[]'::json)
  {ticket_field}
)::text
FROM codex_companies c
LEFT JOIN assets a ON a.company_id = c.id
LEFT JOIN contacts k ON k.company_id = c.id
{ticket_join}
WHERE c.id = ANY(%(ids)s)
ORDER BY c.account_number
"""
_PG_BILLING_TICKETS = """,
selected AS (
  SELECT t.id, t.company_id, t.number, t.subject, t.created_at, t.updated_at, t.closed_at,
         t.total_hours
  FROM codex_tickets t WHERE t.company_id = ANY(%(ids)s) {period}),
entries AS (
  SELECT e.ticket_id, json_agg(json_build_object(
    'id', e.external_id, 'hours', e.hours::text, 'billable', e.billable,
    'executed_at', e.executed_at) ORDER BY e.id) AS items
  FROM codex_time_entries e WHERE e.ticket_id IN (SELECT id FROM selected)
  GROUP BY e.ticket_id),
tickets AS (
  SELECT t.company_id, json_agg(json_build_object(
    'id', t.id, 'number', t.number, 'subject', t.subject,
    'created_at', t.created_at, 'updated_at', t.updated_at, 'closed_at', t.closed_at,
    'total_hours', t.total_hours::text, 'time_entries', COALESCE(en.items, '[]'::json))
    ORDER BY t.created_at, t.id) AS items
  FROM selected t LEFT JOIN entries en ON en.ticket_id = t.id GROUP BY t.company_id)"""
VIEWS = ("full", "billing")
_COMPANY_BILLING_KEYS = ("account_number", "name", "billing_plan", "contract_term_length",
                         "contract_start_date", "contract_end_date", "support_level")
_ASSET_BILLING_KEYS = ("id", "hostname", "device_category", "billing_type", "backup_bytes")
_CONTACT_BILLING_KEYS = ("id", "name", "email", "active")
_TICKET_BILLING_KEYS = ("id", "number", "subject", "created_at", "updated_at", "closed_at",
                        "total_hours", "time_entries")


def billing_view(item: dict[str, Any]) -> dict[str, Any]:
    """One full bulk item cut down to ``view=billing`` (the SQLite path; PostgreSQL builds it
    directly)."""
    people: dict[Any, dict[str, Any]] = {}
    for contact in item["contacts"]:
        people.setdefault(contact["id"], {key: contact[key] for key in _CONTACT_BILLING_KEYS})
    view = {"company": {key: item["company"][key] for key in _COMPANY_BILLING_KEYS},
            "assets": [{key: asset[key] for key in _ASSET_BILLING_KEYS}
                       for asset in item["assets"]],
            "contacts": list(people.values())}
    if "tickets" in item:
        view["tickets"] = [{key: ticket[key] for key in _TICKET_BILLING_KEYS}
                           for ticket in item["tickets"]]
    return view


_PG_TICKET_CTES = """,
selected AS (
  SELECT t.id, t.company_id, t.external_id, t.number, t.subject, t.status, t.priority,
         t.ticket_type, t.created_at, t.updated_at, t.closed_at, t.total_hours
  FROM codex_tickets t WHERE t.company_id = ANY(%(ids)s) {period}),
entries AS (
  SELECT e.ticket_id, json_agg(json_build_object(
    'id', e.external_id, 'hours', e.hours::text, 'billable', e.billable,
    'executed_at', e.executed_at) ORDER BY e.id) AS items
  FROM codex_time_entries e WHERE e.ticket_id IN (SELECT id FROM selected)
  GROUP BY e.ticket_id),
tickets AS (
  SELECT t.company_id, json_agg(json_build_object(
    'id', t.id, 'external_id', t.external_id, 'number', t.number, 'subject', t.subject,
    'status', t.status, 'priority', t.priority, 'ticket_type', t.ticket_type,
    'created_at', t.created_at, 'updated_at', t.updated_at, 'closed_at', t.closed_at,
    'total_hours', t.total_hours::text, 'time_entries', COALESCE(en.items, '[]'::json))
    ORDER BY t.created_at, t.id) AS items
  FROM selected t LEFT JOIN entries en ON en.ticket_id = t.id GROUP BY t.company_id)"""
#: The year rule of :func:`_touches_year`, in SQL. Every part reads only the slice's own
#: tickets and entries (by index), so a slice costs its share of the work, not a full scan.
_PG_PERIOD = """AND ((t.created_at >= %(start)s AND t.created_at < %(end)s)
    OR (t.updated_at >= %(start)s AND t.updated_at < %(end)s)
    OR (t.closed_at >= %(start)s AND t.closed_at < %(end)s)
    OR EXISTS (SELECT 1 FROM codex_time_entries e WHERE e.ticket_id = t.id
               AND e.executed_at >= %(start)s AND e.executed_at < %(end)s))"""


def companies_bulk_json(session: Session, *, include_tickets: bool, year: int | None,
                        account_numbers: Iterable[str] | None = None) -> bytes:
    """:func:`companies_bulk` as one encoded JSON array (see :func:`companies_bulk_lines`)."""
    return b"[" + b",".join(companies_bulk_lines(
        session, include_tickets=include_tickets, year=year,
        account_numbers=account_numbers)) + b"]"


def companies_bulk_lines(session: Session, *, include_tickets: bool, year: int | None,
                         account_numbers: Iterable[str] | None = None,
                         workers: int = 1, min_slice: int | None = None,
                         view: str = "full") -> Iterator[bytes]:
    """Each company's item of :func:`companies_bulk` as one line of JSON (no newline inside),
    in account-number order, produced as it is built so the caller can send it at once.

    On PostgreSQL the database builds the items, in slices of consecutive companies on
    ``workers`` connections at once, all reading the snapshot of ``session`` (exported and
    imported, as ``pg_dump --jobs`` does), so the slices agree with each other.
    """
    if session.get_bind().dialect.name != "postgresql":
        import orjson

        for item in companies_bulk(session, include_tickets=include_tickets, year=year,
                                   account_numbers=account_numbers):
            yield orjson.dumps(billing_view(item) if view == "billing" else item)
        return
    query = select(Company.id).where(Company.archived_at.is_(None)).order_by(
        Company.account_number)
    if account_numbers is not None:
        query = query.where(Company.account_number.in_(list(account_numbers)))
    ids = list(session.scalars(query))
    if not ids:
        return
    sql, params = _pg_bulk_query(include_tickets, year, view)
    slices = _slices(ids, workers, MIN_SLICE if min_slice is None else min_slice)
    if len(slices) == 1:
        connection: Any = session.connection().connection.driver_connection
        _tune(connection)
        for (row,) in connection.execute(sql, {**params, "ids": ids}):
            yield _one_line(row)
        return
    snapshot = session.execute(text("SELECT pg_export_snapshot()")).scalar_one()
    engine = session.get_bind()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="codex-bulk") as pool:
        futures = [pool.submit(_build_slice, engine, snapshot, sql, {**params, "ids": part})
                   for part in slices]
        try:
            for future in futures:  # in order: the slices are consecutive account numbers
                for row in future.result():
                    yield _one_line(row)
        finally:
            for future in futures:
                future.cancel()


#: Companies per slice at least: below that, a connection costs more than it saves.
MIN_SLICE = 50


def _slices(ids: list[int], workers: int, min_slice: int) -> list[list[int]]:
    """Consecutive slices, a few per worker so the first ones are sent while later ones build.

    Slices also keep each query small enough for the plan that suits a slice (the tickets of
    a hundred companies found by index); one query over a thousand companies is slower even
    on a single connection, so a large read is sliced whatever ``workers`` says."""
    count = max(1, min(max(1, workers) * 4, len(ids) // max(1, min_slice)))
    size = -(-len(ids) // count)
    return [ids[index:index + size] for index in range(0, len(ids), size)]


def _one_line(row: str) -> bytes:
    # A raw newline in JSON text can only be whitespace between tokens (inside strings it is
    # escaped), and json_agg puts some there: dropping them keeps one company per line.
    return row.replace("\n", "").encode()


def _pg_bulk_query(include_tickets: bool, year: int | None,
                   view: str = "full") -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {}
    period = ""
    if year is not None:
        period = _PG_PERIOD
        params |= {"start": datetime(year, 1, 1, tzinfo=UTC),
                   "end": datetime(year + 1, 1, 1, tzinfo=UTC)}
    template, tickets = ((_PG_BILLING, _PG_BILLING_TICKETS) if view == "billing"
                         else (_PG_BULK, _PG_TICKET_CTES))
    sql = template.format(
        ticket_ctes=tickets.format(period=period) if include_tickets else "",
        ticket_field=",\n  'tickets', COALESCE(t.items, '[]'::json)" if include_tickets else "",
        ticket_join="LEFT JOIN tickets t ON t.company_id = c.id" if include_tickets else "")
    return sql, params


def _tune(connection: Any) -> None:
    """Settings for this transaction only: timestamps in UTC (as everywhere in the API), no
    JIT (compiling this query costs more than it saves) and enough memory for its sorts."""
    for statement in ("SET LOCAL TIME ZONE 'UTC'", "SET LOCAL jit = off",
                      "SET LOCAL work_mem = '64MB'"):
        connection.execute(statement)


def _build_slice(engine: Any, snapshot: str, sql: str, params: dict[str, Any]) -> list[str]:
    """One slice's rows on a pooled connection of its own, in ``snapshot``."""
    if not _SNAPSHOT_ID.fullmatch(snapshot):  # SET TRANSACTION SNAPSHOT takes no parameter
        raise ValueError(f"unexpected snapshot id {snapshot!r}")
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        connection.rollback()
        connection.autocommit = True
        try:
            connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            connection.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            _tune(connection)
            rows = [row[0] for row in connection.execute(sql, params)]
            connection.execute("ROLLBACK")
        finally:
            connection.autocommit = False
        return rows
    finally:
        raw.close()


_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")


def _touches_year(year: int) -> Any:
    """Tickets that matter to a year's bills: created, updated or closed in it, or with time
    logged in it (a ticket opened in December can carry January's hours)."""
    start, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    logged = select(TimeEntry.ticket_id).where(TimeEntry.executed_at >= start,
                                               TimeEntry.executed_at < end)
    return or_(and_(Ticket.created_at >= start, Ticket.created_at < end),
               and_(Ticket.updated_at >= start, Ticket.updated_at < end),
               and_(Ticket.closed_at >= start, Ticket.closed_at < end),
               Ticket.id.in_(logged))


def _add_tickets(session: Session, items: dict[int, dict[str, Any]], wanted: set[int],
                 year: int | None) -> None:
    query = select(Ticket.id, Ticket.company_id, Ticket.external_id, Ticket.number,
                   Ticket.subject, Ticket.status, Ticket.priority, Ticket.ticket_type,
                   Ticket.created_at, Ticket.updated_at, Ticket.closed_at,
                   Ticket.total_hours).where(
        Ticket.company_id.isnot(None))
    entries = select(TimeEntry.ticket_id, TimeEntry.external_id, TimeEntry.hours,
                     TimeEntry.billable, TimeEntry.executed_at).join(
        Ticket, Ticket.id == TimeEntry.ticket_id).where(Ticket.company_id.isnot(None))
    if year is not None:
        condition = _touches_year(year)
        query = query.where(condition)
        entries = entries.where(condition)
    by_ticket: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for entry in session.execute(entries.order_by(TimeEntry.id)):
        by_ticket[entry.ticket_id].append({
            "id": entry.external_id, "hours": str(entry.hours), "billable": entry.billable,
            "executed_at": iso(entry.executed_at)})
    for ticket in session.execute(query.order_by(Ticket.created_at, Ticket.id)):
        if ticket.company_id in wanted:
            items[ticket.company_id]["tickets"].append({
                "id": ticket.id, "external_id": ticket.external_id, "number": ticket.number,
                "subject": ticket.subject, "status": ticket.status,
                "priority": ticket.priority, "ticket_type": ticket.ticket_type,
                "created_at": iso(ticket.created_at), "updated_at": iso(ticket.updated_at),
                "closed_at": iso(ticket.closed_at),
                "total_hours": str(ticket.total_hours),
                "time_entries": by_ticket.get(ticket.id, [])})


def last_ticket_sync(session: Session) -> datetime | None:
    return session.scalar(select(SyncJob.finished_at).where(
        SyncJob.kind == "tickets", SyncJob.status.in_(("succeeded", "partial")))
        .order_by(SyncJob.finished_at.desc()).limit(1))


def active_feed(session: Session, now: datetime, *, group_ids: Iterable[str] | None = None,
                responder_id: str | None = None) -> dict[str, Any]:
    """The wall's feed for active tickets (optionally of some groups or one agent)."""
    query = select(
        Ticket.source, Ticket.external_id, Ticket.number, Ticket.subject,
        Ticket.description_text, Ticket.status, Ticket.status_raw, Ticket.priority,
        Ticket.priority_raw, Ticket.ticket_type, Ticket.requester_external_id,
        Ticket.requester_name, Ticket.requester_email, Ticket.responder_external_id,
        Ticket.group_id, Ticket.created_at, Ticket.updated_at, Ticket.fr_due_by, Ticket.due_by,
        Ticket.first_responded_at, Ticket.agent_responded_at, Ticket.total_hours,
        Company.account_number, Company.name.label("company_name"),
        PSAAgent.name.label("agent_name"),
    ).outerjoin(Company, Company.id == Ticket.company_id).outerjoin(
        PSAAgent, (PSAAgent.source == Ticket.source)
        & (PSAAgent.external_id == Ticket.responder_external_id)).where(
        Ticket.status.notin_(sorted(feed.EXCLUDED)))
    groups = [group for group in (group_ids or []) if group]
    if groups:
        query = query.where(Ticket.group_id.in_(groups))
    if responder_id:
        query = query.where(Ticket.responder_external_id == responder_id)
    tickets = [row._asdict() for row in session.execute(query)]
    return feed.build(tickets, now, last_ticket_sync(session))
