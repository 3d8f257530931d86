from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hivematrix.common.testing import database_url_fixture
from hivematrix.template import SERVICE, create_app

database_url = database_url_fixture("database_url", SERVICE.migrations, "template")


@pytest.fixture
def app(service_settings: dict[str, Any], database_url: str) -> Iterator[Flask]:
    app = create_app({**service_settings, "DATABASE_URL": database_url})
    yield app
    app.extensions["hivematrix.db"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()

