"""Who sees which company's data.

Staff (admin, technician, billing) see every company. A client user sees only the company of
the ``account_number`` in their token, read-only; anything else answers 404, so a client cannot
even learn which account numbers exist. Services see what the route admits them to.
"""

from __future__ import annotations

from typing import Any

from flask import g
from sqlalchemy import Select
from werkzeug.exceptions import NotFound

from hivematrix.codex.models import Company

#: Levels that may change master data.
WRITERS = ("admin", "technician")
#: Services that read master data (Ledger bills it, Beacon shows tickets, the assistant and
#: the knowledge base look things up, Helm checks health).
READER_SERVICES = ("ledger", "beacon", "brainhair", "knowledgetree", "helm")


def client_account() -> str | None:
    """The account number a client user is confined to; None for staff and services."""
    if getattr(g, "is_service_call", False):
        return None
    user: dict[str, Any] = getattr(g, "user", None) or {}
    if user.get("permission_level") == "client":
        return str(user.get("account_number") or "")  # no company claim: sees nothing
    return None


def scope(query: Select[Any], company_column: Any) -> Select[Any]:
    """Confine a query to the client's company (a join on Company is added when needed)."""
    account = client_account()
    if account is None:
        return query
    if company_column is Company.id:
        return query.where(Company.account_number == account)
    return query.where(company_column.in_(
        Company.__table__.select().with_only_columns(Company.id)
        .where(Company.account_number == account).scalar_subquery()))


def check_company(company: Company) -> Company:
    account = client_account()
    if account is not None and company.account_number != account:
        raise NotFound(f"There is no company with account number '{company.account_number}'.")
    return company
