"""Helpers for Codex's API tests: companies through the API, other rows straight into the
database (as a sync would write them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from hivematrix.codex.models import Company
from hivematrix.common.db import get_session

Headers = Callable[..., dict[str, str]]
T = TypeVar("T")


def company(client: FlaskClient, headers: dict[str, str], account_number: str, name: str,
            **fields: Any) -> Any:
    response = client.post("/api/companies", headers=headers,
                           json={"account_number": account_number, "name": name, **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@contextmanager
def database(app: Flask) -> Iterator[Session]:
    """The app's session, committed on leaving."""
    with app.app_context():
        session = get_session()
        yield session
        session.commit()


def company_id(session: Session, account_number: str) -> int:
    found = session.scalar(select(Company.id).where(Company.account_number == account_number))
    assert found is not None
    return found


def add(app: Flask, row: T) -> int:
    """Insert one row; returns its id."""
    with database(app) as session:
        session.add(row)
        session.flush()
        return int(row.id)  # type: ignore[attr-defined]


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.get_json())
    return response.get_json()


def field_errors(response: Any, status: int = 422) -> dict[str, Any]:
    """The JSON body's invalid fields of a refused request."""
    assert response.status_code == status, (response.status_code, response.get_json())
    body = response.get_json()
    return dict(body.get("errors", {}).get("json", {}))
