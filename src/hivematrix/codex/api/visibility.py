"""Hiding other companies' objects from client users.

A client asking for an object of another company gets the same 404 as for an id that does not
exist, worded after the object (not its company), so ids reveal no account numbers.
"""

from __future__ import annotations

from werkzeug.exceptions import NotFound

from hivematrix.codex import access
from hivematrix.codex.models import Company


def own_company_only(company: Company | None, missing: str) -> None:
    """:raises NotFound: (with ``missing`` as detail) for a client outside ``company``."""
    account = access.client_account()
    if account is not None and (company is None or company.account_number != account):
        raise NotFound(missing)
