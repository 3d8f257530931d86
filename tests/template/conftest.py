from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.common.testing import migrated_database
from hivematrix.template import SERVICE, create_app


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """Every template test runs against SQLite and a real PostgreSQL."""
    url = (f"sqlite:///{tmp_path}/template.db" if request.param == "sqlite"
           else request.getfixturevalue("pg_url"))
    with migrated_database(SERVICE.migrations, url):
        yield url


@pytest.fixture
def app(service_settings: dict[str, Any], database_url: str) -> Iterator[Flask]:
    app = create_app({**service_settings, "DATABASE_URL": database_url})
    yield app
    app.extensions["hivematrix.db"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()

