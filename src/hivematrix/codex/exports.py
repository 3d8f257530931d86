"""Companies, contacts and assets as CSV or JSON, in the columns the import takes.

An export imported again plans every row "unchanged". CSV is UTF-8 with a byte-order mark (so
spreadsheets read it as UTF-8), one header row, lists joined by "; ", yes/no as true/false,
dates as YYYY-MM-DD; a cell a spreadsheet would run as a formula gets a leading quote (the
import takes it off again). Contacts take one row per role. Retired assets are left out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from hivematrix.codex.imports import (
    COLUMNS,
    KINDS,
    asset_values,
    company_values,
    contact_rows,
    guard,
    jsonable,
)
from hivematrix.codex.models import Asset, Company, Contact, ContactRole

FORMATS = ("csv", "json")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


def records(session: Session, kind: str, *,
            account_number: str | None = None) -> list[dict[str, Any]]:
    """Every row of ``kind`` in import columns; with ``account_number``, only that company's
    (its own record, its contacts with their roles there, its assets)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    return _READERS[kind](session, account_number)


def _companies(session: Session, account: str | None) -> list[dict[str, Any]]:
    numbers = {row.id: row.account_number for row in session.execute(
        select(Company.id, Company.account_number))}
    query = select(Company).order_by(Company.account_number)
    if account is not None:
        query = query.where(Company.account_number == account)
    rows = [company_values(company, numbers) for company in session.scalars(query)]
    columns = COLUMNS["companies"]
    return [{name: row[name] for name in columns} for row in rows]


def _company_id(session: Session, account: str) -> int:
    # An account number no company has confines the export to nothing.
    return session.scalar(select(Company.id).where(Company.account_number == account)) or -1


def _contacts(session: Session, account: str | None) -> list[dict[str, Any]]:
    query = select(Contact).options(
        selectinload(Contact.roles).selectinload(ContactRole.company)).order_by(Contact.name,
                                                                                Contact.id)
    company_id = None
    if account is not None:
        company_id = _company_id(session, account)
        query = query.where(Contact.roles.any(ContactRole.company_id == company_id))
    return [row for contact in session.scalars(query)
            for row in contact_rows(contact, company_id)]


def _assets(session: Session, account: str | None) -> list[dict[str, Any]]:
    query = (select(Asset).join(Asset.company).where(Asset.retired_at.is_(None))
             .options(selectinload(Asset.company))
             .order_by(Company.account_number, Asset.hostname, Asset.id))
    if account is not None:
        query = query.where(Company.account_number == account)
    return [asset_values(asset) for asset in session.scalars(query)]


_READERS = {"companies": _companies, "contacts": _contacts, "assets": _assets}


def cell(value: Any) -> str:
    """One value as CSV text, before :func:`imports.guard`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return "; ".join(cell(item) for item in value)
    return str(value)


def to_csv(kind: str, rows: Iterable[Mapping[str, Any]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    columns = COLUMNS[kind]
    writer.writerow(columns)
    for row in rows:
        writer.writerow([guard(cell(row.get(name))) for name in columns])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_json(rows: Iterable[Mapping[str, Any]]) -> bytes:
    return orjson.dumps([jsonable(dict(row)) for row in rows])


def export(session: Session, kind: str, fmt: str, *, account_number: str | None = None) -> bytes:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    rows = records(session, kind, account_number=account_number)
    return to_csv(kind, rows) if fmt == "csv" else to_json(rows)


def filename(kind: str, fmt: str, today: date) -> str:
    return f"codex-{kind}-{today.isoformat()}.{fmt}"
