"""``hivematrix install`` / ``uninstall`` of a real third-party service package, for real.

The package is built here the way a service copied from the template is: a ServiceSpec under
the ``hivematrix.services`` entry points, an app factory, a model with a migration, a route.
It is pip-installed into a throwaway virtualenv that sees the project's packages (so the
project's own virtualenv is never changed), and the CLI runs from that virtualenv, as it
would from the platform's.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import sysconfig
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hivematrix.common.testing import (
    FakeCore,
    TokenFactory,
    free_port,
    process_group_gone,
    unavailable,
)
from hivematrix.helm import apps, configs, installer

pytestmark = pytest.mark.processes


# --- the throwaway platform virtualenv and packages to install -----------------------------

@pytest.fixture(scope="module")
def platform_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A virtualenv's python that sees everything the project's environment has installed.

    ``--system-site-packages`` would show the base interpreter's packages, not the project
    virtualenv's; a ``.pth`` line adding that site directory (its own ``.pth`` files
    included, so the editable hivematrix) does. pip then installs into the throwaway one.
    """
    folder = tmp_path_factory.mktemp("platform-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    own_site = subprocess.run([str(python), "-c", "import sysconfig; "
                               "print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
    project_site = sysconfig.get_paths()["purelib"]
    (Path(own_site) / "_project_site.pth").write_text(
        f"import site; site.addsitedir({project_site!r})\n")
    return str(python)


def write_package(root: Path, *, distribution: str, module: str, service: str | None,
                  port: int, migration: str = "create") -> Path:
    """A service package as one is built from the template; ``service=None``: without the
    entry point; ``migration="fail"``: its first migration raises."""
    package = root / distribution
    source = package / "src" / module
    (source / "migrations" / "versions").mkdir(parents=True)
    entry_point = (f'[project.entry-points."hivematrix.services"]\n{service} = '
                   f'"{module}:SERVICE"\n' if service else "")
    (package / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{distribution}"
        version = "1.2.0"
        dependencies = ["hivematrix"]

        [tool.setuptools]
        packages = ["{module}"]
        package-dir = {{"" = "src"}}

        [tool.setuptools.package-data]
        {module} = ["migrations/*.py", "migrations/versions/*.py"]

        """) + entry_point)
    (source / "__init__.py").write_text(textwrap.dedent(f"""\
        from hivematrix.common import create_service_app
        from hivematrix.common.registry import ServiceSpec

        SERVICE = ServiceSpec(
            name={service or module!r},
            factory="{module}:create_app",
            port={port},
            title="Acme Memos",
            description="A third-party service for the installer's tests",
            migrations="{module}",
            depends_on=("core",),
        )


        def create_app(settings=None):
            from {module}.views import bp

            return create_service_app(SERVICE.name, settings, import_name="{module}",
                                      title="Acme Memos", blueprints=[bp])
        """))
    (source / "models.py").write_text(textwrap.dedent("""\
        from sqlalchemy import String
        from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


        class Base(DeclarativeBase):
            pass


        class Memo(Base):
            __tablename__ = "acme_memos"

            id: Mapped[int] = mapped_column(primary_key=True)
            text: Mapped[str] = mapped_column(String(200))
        """))
    (source / "views.py").write_text(textwrap.dedent(f"""\
        from apiflask import APIBlueprint
        from flask import g
        from sqlalchemy import func, select

        from hivematrix.common.auth import token_required
        from hivematrix.common.db import get_session
        from {module}.models import Memo

        bp = APIBlueprint("{module}", __name__)


        @bp.get("/api/memos")
        @token_required
        def memos():
            count = get_session().scalar(select(func.count()).select_from(Memo))
            return {{"user": g.user["preferred_username"], "memos": count}}
        """))
    (source / "migrations" / "env.py").write_text(textwrap.dedent(f"""\
        from hivematrix.common.db import run_migrations
        from {module}.models import Base

        run_migrations(Base.metadata)
        """))
    body = ('raise RuntimeError("this migration always fails")' if migration == "fail" else
            'op.create_table("acme_memos", sa.Column("id", sa.Integer(), primary_key=True), '
            'sa.Column("text", sa.String(200), nullable=False))')
    (source / "migrations" / "versions" / "0001_memos.py").write_text(textwrap.dedent(f"""\
        import sqlalchemy as sa
        from alembic import op

        revision = "0001"
        down_revision = None
        branch_labels = None
        depends_on = None


        def upgrade():
            {body}


        def downgrade():
            op.drop_table("acme_memos")
        """))
    return package


def unique(prefix: str) -> tuple[str, str]:
    """A distribution name and a module/service name no other test uses."""
    tag = uuid.uuid4().hex[:8]
    return f"acme-{prefix}-{tag}", f"acme_{prefix}_{tag}"


@pytest.fixture
def env(hm_home: Path, fake_core: FakeCore) -> dict[str, str]:
    return {**os.environ, "HIVEMATRIX_HOME": str(hm_home), "CORE_SERVICE_URL": fake_core.url,
            "COLUMNS": "250"}


def hivematrix(python: str, env: dict[str, str], *args: str,
               stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, "-m", "hivematrix.cli", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=280, check=False)


def pip_has(python: str, distribution: str) -> bool:
    shown = subprocess.run([python, "-m", "pip", "show", distribution],
                           capture_output=True, text=True, check=False)
    return shown.returncode == 0


def files_of(home: Path) -> dict[str, bytes]:
    return {str(path.relative_to(home)): path.read_bytes()
            for path in sorted(home.rglob("*")) if path.is_file()}


def list_rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│┃").split("│")]
        if len(cells) >= 5:
            rows[cells[0]] = cells
    return rows


# --- a whole install / uninstall round -----------------------------------------------------

def test_install_runs_the_service_and_uninstall_keeps_or_purges_its_data(
        platform_python: str, env: dict[str, str], hm_home: Path, tmp_path: Path,
        tokens: TokenFactory) -> None:
    distribution, name = unique("memos")
    port = free_port()
    package = write_package(tmp_path, distribution=distribution, module=name, service=name,
                            port=port)
    assert hivematrix(platform_python, env, "init").returncode == 0

    installed = hivematrix(platform_python, env, "install", str(package))
    try:
        assert installed.returncode == 0, installed.stderr
        assert f"found service {name} (Acme Memos) in {distribution}" in installed.stderr
        assert name in installed.stdout  # the summary table

        # Registered on its own port (free), from where it was installed.
        entry = json.loads((hm_home / "apps_registry.json").read_text())["services"][name]
        assert entry == {"depends_on": ["core"], "enabled": True, "port": port,
                         "source": str(package.resolve())}
        services = json.loads((hm_home / "services.json").read_text())
        assert services[name]["url"] == f"http://127.0.0.1:{port}"
        assert services[name]["title"] == "Acme Memos"
        assert services[name]["run"][0] == platform_python
        master = json.loads((hm_home / "master_services.json").read_text())
        assert master[name] == {"url": f"http://127.0.0.1:{port}", "port": port}

        # Its configuration, its secret known to Core, its migrated database.
        flaskenv = (hm_home / name / ".flaskenv").read_text()
        assert f"SERVICE_NAME={name}" in flaskenv and "SERVICE_SECRET=" in flaskenv
        secrets = json.loads((hm_home / "core" / "service-secrets.json").read_text())
        assert name in secrets
        database = hm_home / name / f"{name}.db"
        conf = (hm_home / name / "instance" / f"{name}.conf").read_text()
        assert f"connection_string = sqlite:///{database}" in conf
        with sqlite3.connect(database) as connection:
            tables = {row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "acme_memos" in tables

        # A real process, healthy, answering its own route.
        supervisor = int((hm_home / "run" / f"{name}.pid").read_text())
        child = int((hm_home / "run" / f"{name}.child.pid").read_text())
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/health").json()["status"] == "healthy"
        answer = httpx.get(f"{url}/api/memos", headers=tokens.headers(
            tokens.user("admin", preferred_username="alice")))
        assert answer.status_code == 200
        assert answer.json() == {"user": "alice", "memos": 0}

        listed = hivematrix(platform_python, env, "list")
        assert listed.returncode == 0, listed.stderr
        row = list_rows(listed.stdout)[name]
        assert row[1:5] == [str(port), "yes", str(package.resolve()), "yes"]
    finally:
        if installed.returncode != 0:
            hivematrix(platform_python, env, "stop", name)

    with sqlite3.connect(database) as connection:
        connection.execute("INSERT INTO acme_memos (text) VALUES ('kept across reinstalls')")

    # Without --yes it asks; "no" changes nothing.
    declined = hivematrix(platform_python, env, "uninstall", name, stdin="n\n")
    assert declined.returncode == 1
    assert "Aborted" in declined.stderr
    assert httpx.get(f"{url}/health").json()["status"] == "healthy"
    assert name in json.loads((hm_home / "apps_registry.json").read_text())["services"]

    removed = hivematrix(platform_python, env, "uninstall", name, "--yes")
    assert removed.returncode == 0, removed.stderr
    assert process_group_gone(supervisor) and process_group_gone(child)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health")
    assert name not in json.loads((hm_home / "apps_registry.json").read_text())["services"]
    assert name not in json.loads((hm_home / "services.json").read_text())
    assert name not in json.loads((hm_home / "master_services.json").read_text())
    assert name not in json.loads((hm_home / "core" / "service-secrets.json").read_text())
    assert not pip_has(platform_python, distribution)
    assert name not in list_rows(hivematrix(platform_python, env, "list").stdout)
    # Its data stays.
    assert database.exists() and (hm_home / name / "instance" / f"{name}.conf").exists()
    assert (hm_home / name / ".flaskenv").read_text() == flaskenv
    assert (hm_home / "logs" / f"{name}.log").exists()

    # Installed again, it finds its data: same port, same rows; --no-start leaves it stopped.
    again = hivematrix(platform_python, env, "install", str(package), "--no-start")
    assert again.returncode == 0, again.stderr
    assert json.loads((hm_home / "apps_registry.json").read_text())["services"][name]["port"] \
        == port
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT text FROM acme_memos").fetchall() == [
            ("kept across reinstalls",)]
    assert not (hm_home / "run" / f"{name}.pid").exists()
    assert name in json.loads((hm_home / "core" / "service-secrets.json").read_text())

    purged = hivematrix(platform_python, env, "uninstall", name, "--purge", "--yes")
    assert purged.returncode == 0, purged.stderr
    assert not (hm_home / name).exists()
    assert not list((hm_home / "logs").glob(f"{name}.log*"))
    assert not pip_has(platform_python, distribution)
    gone = hivematrix(platform_python, env, "uninstall", name, "--yes")
    assert gone.returncode == 1
    assert f"no service named {name!r} is installed or registered" in gone.stderr


def test_purge_drops_the_postgresql_database_helm_created(
        platform_python: str, env: dict[str, str], hm_home: Path, tmp_path: Path) -> None:
    import psycopg
    from psycopg import sql
    from sqlalchemy import make_url

    base = os.environ.get("HIVEMATRIX_TEST_PG_URL")
    if not base:
        unavailable("PostgreSQL (HIVEMATRIX_TEST_PG_URL)")
    server = make_url(base)
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    distribution, name = unique("pg")
    package = write_package(tmp_path, distribution=distribution, module=name, service=name,
                            port=free_port())
    assert hivematrix(platform_python, env, "init").returncode == 0
    config = configs.load(hm_home)
    config["databases"] = {"postgresql": {"host": server.host or "127.0.0.1",
                                          "port": server.port or 5432,
                                          "admin_user": server.username or "postgres"}}
    config["apps"] = {name: {"database": "postgresql", "db_name": f"hm_{name}",
                             "db_user": f"hm_{name}"}}
    configs.save(hm_home, config)

    def exists() -> tuple[bool, bool]:
        with psycopg.connect(admin, autocommit=True) as connection:
            database = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                          [f"hm_{name}"]).fetchone()
            role = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                      [f"hm_{name}"]).fetchone()
        return database is not None, role is not None

    # Installed from a git repository this time.
    git = ["git", "-C", str(package), "-c", "user.name=Acme", "-c", "user.email=dev@acme.test"]
    subprocess.run([*git, "init", "--quiet"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "Acme memos"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    try:
        installed = hivematrix(platform_python, env, "install", f"git+file://{package}",
                               "--no-start")
        assert installed.returncode == 0, installed.stderr
        entry = json.loads((hm_home / "apps_registry.json").read_text())["services"][name]
        assert entry["source"] == f"git+file://{package}@{commit}"
        assert exists() == (True, True)
        url = make_url(configs.app_database(hm_home, configs.load(hm_home), name))
        with psycopg.connect(url.set(drivername="postgresql").render_as_string(
                hide_password=False)) as connection:
            assert connection.execute("SELECT count(*) FROM acme_memos").fetchone() == (0,)
        created = json.loads((hm_home / name / "instance" / "helm-created.json").read_text())
        assert created == {"database": f"hm_{name}", "role": f"hm_{name}"}

        kept = hivematrix(platform_python, env, "uninstall", name, "--yes")
        assert kept.returncode == 0, kept.stderr
        assert exists() == (True, True)  # data is kept unless purged

        purged = hivematrix(platform_python, env, "uninstall", name, "--purge", "--yes")
        assert purged.returncode == 0, purged.stderr
        assert f"PostgreSQL database hm_{name} (created by Helm)" in purged.stderr
        assert exists() == (False, False)
        assert name not in configs.load(hm_home).get("apps", {})
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(f"hm_{name}")))
            connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(
                sql.Identifier(f"hm_{name}")))


# --- refusals leave nothing behind ---------------------------------------------------------

@pytest.mark.parametrize("problem", ["no entry point", "name clash", "failing migration"])
def test_a_refused_or_failed_install_leaves_nothing_behind(
        problem: str, platform_python: str, env: dict[str, str], hm_home: Path,
        tmp_path: Path) -> None:
    distribution, name = unique("bad")
    service = {"no entry point": None, "name clash": "template"}.get(problem, name)
    package = write_package(tmp_path, distribution=distribution, module=name, service=service,
                            port=free_port(),
                            migration="fail" if problem == "failing migration" else "create")
    assert hivematrix(platform_python, env, "init").returncode == 0
    before = files_of(hm_home)

    refused = hivematrix(platform_python, env, "install", str(package))
    assert refused.returncode == 1
    message = " ".join(refused.stderr.split())
    expected = {
        "no entry point": "provides no new service: no entry point in the group "
                          "'hivematrix.services'",
        "name clash": f"{distribution} provides a service named 'template', but hivematrix "
                      "already does",
        "failing migration": "this migration always fails",
    }[problem]
    assert expected in message, refused.stderr
    assert "Everything done before that was undone." in message
    assert not pip_has(platform_python, distribution)
    assert files_of(hm_home) == before


@pytest.mark.parametrize("name", sorted(installer.BUILTIN_SERVICES))
def test_built_in_services_cannot_be_uninstalled(name: str, hm_home: Path) -> None:
    with pytest.raises(installer.InstallError, match="built into HiveMatrix"):
        installer.uninstall(hm_home, name, purge=True)


def test_uninstall_through_the_cli_refuses_a_built_in(
        platform_python: str, env: dict[str, str], hm_home: Path) -> None:
    assert hivematrix(platform_python, env, "init").returncode == 0
    before = files_of(hm_home)
    refused = hivematrix(platform_python, env, "uninstall", "core", "--yes", "--purge")
    assert refused.returncode == 1
    assert "core is built into HiveMatrix and cannot be uninstalled" in refused.stderr
    assert files_of(hm_home) == before


# --- plain logic ---------------------------------------------------------------------------

def test_a_free_own_port_is_kept_else_the_lowest_free_from_the_range() -> None:
    taken = {5100, 5101}
    assert installer.choose_port(5040, {5000}, lambda port: False) == 5040
    assert installer.choose_port(5040, {5040, 5100}, lambda port: False) == 5101
    assert installer.choose_port(5040, {5040, 5100}, taken.__contains__) == 5102
    # The same state, the same answer.
    assert installer.choose_port(5040, {5040}, taken.__contains__) == 5102


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        yield squatter.getsockname()[1]


def test_a_port_another_process_holds_is_not_chosen(listening: int) -> None:
    assert installer.port_in_use(listening)
    chosen = installer.choose_port(listening, set())
    assert chosen != listening and chosen >= apps.FIRST_FREE_PORT


def test_what_pip_is_given(tmp_path: Path) -> None:
    (tmp_path / "acme-service").mkdir()
    assert installer.pip_requirement("acme-service", cwd=tmp_path) == str(
        (tmp_path / "acme-service").resolve())
    assert installer.pip_requirement("acme-other==1.0", cwd=tmp_path) == "acme-other==1.0"
    assert installer.pip_requirement("https://example.org/acme/memos.git", cwd=tmp_path) == \
        "git+https://example.org/acme/memos.git"
    assert installer.pip_requirement("git+https://example.org/acme/memos.git@v1",
                                     cwd=tmp_path) == "git+https://example.org/acme/memos.git@v1"
    for bad in ("", "  ", "--index-url=https://example.org/simple", "-r requirements.txt",
                "./acme-missing", "acme/missing"):
        with pytest.raises(installer.InstallError):
            installer.pip_requirement(bad, cwd=tmp_path)
