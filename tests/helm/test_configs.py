"""master_config.json and the per-service files generated from it: formats, validation,
kept versions, and that the services really read what is written."""

from __future__ import annotations

import configparser
import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from dotenv import dotenv_values
from sqlalchemy.engine import make_url

from hivematrix.cli import main
from hivematrix.common.config import load_settings
from hivematrix.helm import configs


def run_cli(home: Path, *args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(main, list(args), env={"HIVEMATRIX_HOME": str(home)})
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code != 0, result.output
    return result.output


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def home(hm_home: Path) -> Path:
    run_cli(hm_home, "init")
    return hm_home


def test_set_and_get_are_validated_and_keep_five_versions(home: Path) -> None:
    master = home / "configs" / "master_config.json"
    for level in ("DEBUG", "WARNING", "ERROR", "INFO", "DEBUG", "WARNING", "ERROR"):
        run_cli(home, "config", "set", "system.log_level", level, "--no-sync")
    assert run_cli(home, "config", "get", "system.log_level").strip() == "ERROR"
    assert len(list((home / "configs" / "history").glob("master_config.json.*"))) == 5
    assert mode(master) == 0o600
    before = master.read_bytes()
    for key, value, says in [
        ("system.log_level", "LOUD", "system.log_level must be one of"),
        ("system.environment", "staging", "system.environment"),
        ("system.hostname", "not a host!", "system.hostname"),
        ("databases.postgresql.port", "99999", "databases.postgresql.port"),
        ("apps.template.database", "mysql", "apps.template.database"),
        ("apps.template.db_password", "password", "not the literal 'password'"),
        ("apps.template.db_name", "x; drop", "not a PostgreSQL name"),
    ]:
        assert says in run_cli(home, "config", "set", key, value, ok=False)
    assert master.read_bytes() == before  # nothing half-written
    assert "no setting" in run_cli(home, "config", "get", "system.nothing", ok=False)


def test_sync_writes_the_log_level_and_keeps_each_services_secrets(home: Path) -> None:
    flaskenv = home / "template" / ".flaskenv"
    secrets_before = {(name, key): dotenv_values(home / name / ".flaskenv")[key]
                      for name in ("template", "core") for key in ("SECRET_KEY", "SERVICE_SECRET")}
    run_cli(home, "config", "set", "system.log_level", "warning")
    values = dotenv_values(flaskenv)
    assert values["LOG_LEVEL"] == "WARNING" and values["ENVIRONMENT"] == "development"
    after = {(name, key): dotenv_values(home / name / ".flaskenv")[key]
             for name in ("template", "core") for key in ("SECRET_KEY", "SERVICE_SECRET")}
    assert after == secrets_before
    # Secrets differ per service: a session forged for one is nothing to another.
    assert dotenv_values(home / "template" / ".flaskenv")["SECRET_KEY"] != \
        dotenv_values(home / "core" / ".flaskenv")["SECRET_KEY"]
    assert mode(flaskenv) == 0o600
    # The service really runs at that level.
    assert load_settings("template", environ={"HIVEMATRIX_HOME": str(home)})["LOG_LEVEL"] \
        == "WARNING"
    # The version before is kept next to it.
    assert list((home / "template" / "instance" / "backups").glob(".flaskenv.*"))


def test_switching_a_service_to_postgresql_is_one_setting(home: Path) -> None:
    run_cli(home, "config", "set", "databases.postgresql",
            '{"host": "db.internal", "port": 6432, "admin_user": "postgres"}', "--no-sync")
    run_cli(home, "config", "set", "apps.template.database", "postgresql")
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(home / "template" / "instance" / "template.conf")
    url = make_url(conf["database"]["connection_string"])
    assert (url.drivername, url.host, url.port, url.database, url.username) == (
        "postgresql+psycopg", "db.internal", 6432, "hivematrix_template", "hivematrix_template")
    assert url.password and url.password != "password" and len(url.password) >= 24
    master = json.loads((home / "configs" / "master_config.json").read_text())
    assert master["apps"]["template"]["db_password"] == url.password  # generated once, kept
    assert mode(home / "template" / "instance" / "template.conf") == 0o600
    settings = load_settings("template", environ={"HIVEMATRIX_HOME": str(home)})
    assert make_url(settings["DATABASE_URL"]) == url
    run_cli(home, "config", "sync-all")
    conf.read(home / "template" / "instance" / "template.conf")
    assert make_url(conf["database"]["connection_string"]).password == url.password
    # And back: the embedded default again.
    run_cli(home, "config", "set", "apps.template.database", "sqlite")
    settings = load_settings("template", environ={"HIVEMATRIX_HOME": str(home)})
    assert settings["DATABASE_URL"] == f"sqlite:///{home / 'template' / 'template.db'}"


def test_other_sections_of_a_conf_file_are_kept(home: Path) -> None:
    path = home / "template" / "instance" / "template.conf"
    path.write_text(path.read_text() + "\n[notes]\nmax_length = 280\n")
    run_cli(home, "config", "write-conf", "template")
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(path)
    assert conf["notes"]["max_length"] == "280"
    assert conf["database"]["connection_string"].startswith("sqlite:///")


def test_a_broken_master_config_stops_start_before_anything_runs(home: Path) -> None:
    master = home / "configs" / "master_config.json"
    data = json.loads(master.read_text())
    data["system"]["log_level"] = "CHATTY"
    master.write_text(json.dumps(data))
    output = run_cli(home, "start", "template", ok=False)
    assert "system.log_level" in output
    assert not list((home / "run").glob("*.pid"))


def test_validation_is_a_plain_function() -> None:
    configs.validate(configs.DEFAULT)
    with pytest.raises(configs.ConfigError, match=r"apps\.x must be an object"):
        configs.validate({"apps": {"x": 3}})


def test_db_create_makes_the_role_and_database_and_migrations_run(home: Path) -> None:
    import uuid

    import psycopg

    from hivematrix.common import db
    from hivematrix.common.testing import unavailable

    base = os.environ.get("HIVEMATRIX_TEST_PG_URL")
    if not base:
        unavailable("PostgreSQL (HIVEMATRIX_TEST_PG_URL)")
    server = make_url(base)
    name = f"hm_create_{uuid.uuid4().hex[:10]}"
    run_cli(home, "config", "set", "databases.postgresql", json.dumps(
        {"host": server.host or "127.0.0.1", "port": server.port or 5432,
         "admin_user": server.username or "postgres"}), "--no-sync")
    run_cli(home, "config", "set", "apps.template",
            json.dumps({"database": "postgresql", "db_name": name, "db_user": name}))
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        assert f"database {name} ready" in run_cli(home, "db", "create", "template")
        assert f"database {name} ready" in run_cli(home, "db", "create", "template")  # again
        with psycopg.connect(admin, autocommit=True) as connection:
            owner = connection.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                [name]).fetchone()
        assert owner == (name,)
        run_cli(home, "db", "upgrade", "template")
        url = load_settings("template", environ={"HIVEMATRIX_HOME": str(home)})["DATABASE_URL"]
        assert db.current_revision("hivematrix.template", url) is not None
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'DROP ROLE IF EXISTS "{name}"')


def test_db_create_refuses_a_service_on_sqlite(home: Path) -> None:
    assert "is not 'postgresql'" in run_cli(home, "db", "create", "template", ok=False)
