"""Fixtures for Codex: its database on SQLite and PostgreSQL, the app, and tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.codex import SERVICE, create_app
from hivematrix.common.db import Database
from hivematrix.common.testing import TokenFactory, database_url_fixture

codex_db_url = database_url_fixture("codex_db_url", SERVICE.migrations, "codex")


@pytest.fixture
def codex_db(codex_db_url: str) -> Iterator[Database]:
    database = Database(codex_db_url)
    yield database
    database.dispose()


@pytest.fixture
def codex_app(service_settings: dict[str, Any], codex_db_url: str) -> Iterator[Flask]:
    app = create_app({**service_settings, "DATABASE_URL": codex_db_url,
                      "CODEX_OUTBOUND_ALLOWLIST": "127.0.0.1,localhost"})
    yield app
    app.extensions["hivematrix.db"].dispose()


@pytest.fixture
def codex_client(codex_app: Flask) -> FlaskClient:
    return codex_app.test_client()



@pytest.fixture
def as_service(tokens: TokenFactory) -> Callable[[str], dict[str, str]]:
    def headers(caller: str) -> dict[str, str]:
        return tokens.headers(tokens.service(caller, "codex"))

    return headers
