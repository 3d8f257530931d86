"""`hivematrix backup` / `restore`: real SQLite and PostgreSQL databases, real encryption."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import shutil
import sqlite3
import stat
import tarfile
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyrage
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import Session

from hivematrix.cli import main
from hivematrix.core.keyring import KeyRing
from hivematrix.helm import backup
from hivematrix.template.models import Note

KEY = "correct horse battery staple, but longer"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def run_cli(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(autouse=True)
def no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(backup.KEY_ENVIRONMENT_VARIABLE, raising=False)


@pytest.fixture
def home(hm_home: Path) -> Path:
    """An initialised home: migrated template database, Core's keys, an upload, a log."""
    run_cli("init")
    run_cli("db", "upgrade", "template")
    KeyRing.open(hm_home / "keys", publish_for=timedelta(hours=1))
    uploads = hm_home / "template" / "uploads"
    uploads.mkdir()
    (uploads / "logo.png").write_bytes(os.urandom(3000))
    (hm_home / "logs" / "template.log").write_text("not backed up\n")
    (hm_home / "template" / "debug.log").write_text("not backed up either\n")
    (hm_home / "run" / "template.pid").write_text("123\n")
    return hm_home


def template_url(home: Path) -> str:
    return f"sqlite:///{home / 'template' / 'template.db'}"


def add_notes(url: str, *titles: str) -> None:
    engine = create_engine(url)
    with Session(engine) as session, session.begin():
        session.add_all(Note(title=title, body=f"body of {title}", created_by="alice")
                        for title in titles)
    engine.dispose()


def notes(url: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT id, title, body, created_by, created_at FROM template_notes ORDER BY id"))
        result = [tuple(row) for row in rows]
    engine.dispose()
    return result


def snapshot(home: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every file's mode and bytes and every folder's mode below ``home``."""
    found: dict[str, tuple[int, bytes | None]] = {}
    for path in sorted(home.rglob("*")):
        mode = stat.S_IMODE(path.lstat().st_mode)
        found[str(path.relative_to(home))] = (mode, None if path.is_dir() else path.read_bytes())
    return found


def settings_snapshot(home: Path) -> dict[str, tuple[int, bytes | None]]:
    """What a restore brings back: all but databases, logs, run/, backups/ and the key."""
    return {path: value for path, value in snapshot(home).items()
            if not path.startswith(("logs", "run", "backups"))
            and not path.endswith((".db", ".db-wal", ".db-shm", ".log", "backup.key"))}


def only_archive(home: Path) -> Path:
    [archive] = (home / "backups").glob(f"*{backup.ARCHIVE_SUFFIX}")
    return archive


# --- SQLite, through the CLI -----------------------------------------------------------------

def test_sqlite_round_trip_restores_data_settings_and_modes(home: Path, tmp_path: Path) -> None:
    url = template_url(home)
    add_notes(url, "first", "second")
    # Committed rows still in the write-ahead log, as with a running service: the online
    # backup copies them, a plain file copy would not.
    live = sqlite3.connect(home / "template" / "template.db")
    live.execute("PRAGMA journal_mode=WAL")
    live.execute("PRAGMA wal_autocheckpoint=0")
    live.execute("INSERT INTO template_notes (title, body, created_by, created_at) "
                 "VALUES ('in the wal', '', 'bob', '2024-01-01 00:00:00.000000')")
    live.commit()
    assert (home / "template" / "template.db-wal").stat().st_size > 0

    output = run_cli("backup")
    live.close()
    assert "KEEP THE BACKUP KEY SAFE" in output
    key_file = home / "keys" / "backup.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 40
    archive = only_archive(home)
    assert archive.name.startswith("hivematrix-backup-")
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert not list(home.glob(".backup-staging-*"))
    assert b"first" not in archive.read_bytes()  # encrypted

    manifest = backup.read_manifest(archive, key)
    paths = {member.path: member for member in manifest.members}
    assert paths["databases/template.sqlite"].kind == "sqlite"
    for expected in ("files/configs/master_config.json", "files/services.json",
                     "files/apps_registry.json", "files/master_services.json",
                     "files/keys/keyring.json", "files/template/.flaskenv",
                     "files/template/instance/template.conf", "files/core/service-secrets.json",
                     "files/template/uploads/logo.png"):
        assert expected in paths, expected
    assert paths["files/template/uploads/logo.png"].group == "files"
    assert not [path for path in paths if path.startswith(("files/logs/", "files/run/"))
                or path.endswith((".log", "backup.key", ".db", "-wal", "-shm"))]
    assert manifest.hivematrix_version and manifest.hostname and manifest.created_at
    rows = notes(url)
    settings = settings_snapshot(home)
    saved_key = tmp_path / "saved.key"
    saved_key.write_text(key)

    # Lose the database, change settings and modes, remove keys and uploads.
    for name in ("template.db", "template.db-wal", "template.db-shm"):
        (home / "template" / name).unlink(missing_ok=True)
    (home / "services.json").write_text("{}")
    flaskenv = home / "template" / ".flaskenv"
    flaskenv.write_text("SECRET_KEY=changed\n")
    flaskenv.chmod(0o644)
    shutil.rmtree(home / "keys")
    shutil.rmtree(home / "template" / "uploads")
    (home / "template" / "instance" / "template.conf").unlink()

    output = run_cli("restore", str(archive), "--yes", "--key-file", str(saved_key))
    assert "template database: SQLite file" in output
    assert "hivematrix start" in output
    assert notes(url) == rows and len(rows) == 3
    assert settings_snapshot(home) == settings
    assert stat.S_IMODE((home / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE(flaskenv.stat().st_mode) == 0o600
    assert not list(home.glob(".restore-staging-*"))

    # The key is reused, not regenerated (backup.key was not restored: it was never archived).
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    again = home / "elsewhere" / "copy.hmbackup"
    output = run_cli("backup", "--output", str(again))
    assert "KEEP THE BACKUP KEY SAFE" not in output
    assert backup.verify(again, key).members


def test_restore_only_configs_leaves_databases_alone(home: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(backup.KEY_ENVIRONMENT_VARIABLE, KEY)
    url = template_url(home)
    add_notes(url, "kept")
    run_cli("backup")
    settings = settings_snapshot(home)
    (home / "configs" / "master_config.json").write_text('{"system": {}}')
    add_notes(url, "added after the backup")
    rows = notes(url)

    output = run_cli("restore", str(only_archive(home)), "--only", "configs", "--yes")
    assert "template database" not in output
    assert settings_snapshot(home) == settings
    assert notes(url) == rows  # not restored

    result = invoke("restore", str(only_archive(home)), "--only", "postgresql", "--yes")
    assert result.exit_code == 1
    assert "holds nothing for --only postgresql" in result.output


def test_restore_refuses_without_yes_when_stdin_is_not_a_terminal(home: Path) -> None:
    archive = home / "backups" / "some.hmbackup"
    archive.write_bytes(b"whatever")
    before = snapshot(home)
    result = invoke("restore", str(archive))
    assert result.exit_code == 1
    assert "not a terminal" in result.output and "--yes" in result.output
    assert snapshot(home) == before


def test_backup_key_lookup_order(hm_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert backup.find_backup_key(hm_home) is None
    created = backup.backup_key(hm_home)
    path = backup.backup_key_path(hm_home)
    assert path.read_text().strip() == created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert backup.backup_key(hm_home) == created
    (hm_home / "configs").mkdir()
    (hm_home / "configs" / "master_config.json").write_text(
        json.dumps({"system": {"encryption_key": "from-master-config"}}))
    assert backup.backup_key(hm_home) == "from-master-config"
    monkeypatch.setenv(backup.KEY_ENVIRONMENT_VARIABLE, "from-environment")
    assert backup.backup_key(hm_home) == "from-environment"


def test_libpq_url_keeps_the_password_off_the_command_line() -> None:
    uri, password = backup.libpq_url("postgresql+psycopg://hm:p%40ss%3Aw@db.example:5433/hive")
    assert uri == "postgresql://hm@db.example:5433/hive"
    assert password == "p@ss:w"
    assert backup.libpq_url("postgresql://hm@localhost/hive") == (
        "postgresql://hm@localhost/hive", None)


# --- PostgreSQL ------------------------------------------------------------------------------

@pytest.fixture
def template_pg(pg_url: str, home: Path) -> Iterator[str]:
    """The template service on its own, freshly created PostgreSQL database."""
    server = make_url(pg_url)
    name = f"hm_backup_{uuid.uuid4().hex[:12]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = server.set(database=name).render_as_string(hide_password=False)
    (home / "template" / "instance" / "template.conf").write_text(
        f"[database]\nconnection_string = {url}\n")
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_postgresql_round_trip(home: Path, template_pg: str,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(backup.KEY_ENVIRONMENT_VARIABLE, KEY)
    run_cli("db", "upgrade", "template")
    add_notes(template_pg, "alpha", "beta", "gamma")
    rows = notes(template_pg)
    run_cli("backup")
    archive = only_archive(home)
    [member] = [member for member in backup.read_manifest(archive, KEY).members
                if member.service == "template" and member.kind in backup.DATABASE_KINDS]
    assert (member.kind, member.path) == ("postgresql", "databases/template.pgdump")

    engine = create_engine(template_pg)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM template_notes WHERE title = 'alpha'"))
        connection.execute(text("UPDATE template_notes SET body = 'changed'"))
        connection.execute(text("ALTER TABLE template_notes ADD COLUMN extra TEXT"))
    engine.dispose()
    add_notes(template_pg, "delta")
    output = run_cli("restore", str(archive), "--yes")
    assert "PostgreSQL database" in output
    assert notes(template_pg) == rows

    # The database is gone altogether: restoring creates it again.
    database = make_url(template_pg).database
    admin = make_url(template_pg).set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False),
                         autocommit=True) as connection:
        connection.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
    result = backup.restore_backup(home, archive, KEY, only="postgresql")
    assert [member.path for member in result.restored] == ["databases/template.pgdump"]
    assert result.services == ("template",)
    assert notes(template_pg) == rows


def test_missing_pg_dump_is_a_clear_error(home: Path, template_pg: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(backup.KEY_ENVIRONMENT_VARIABLE, KEY)
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = invoke("backup")
    assert result.exit_code == 1
    assert "pg_dump is not installed" in result.output
    assert not list((home / "backups").iterdir())
    assert not list(home.glob(".backup-staging-*"))


# --- refusing damaged, foreign and crafted archives ------------------------------------------

@pytest.fixture
def made(home: Path) -> Path:
    """An archive made with :data:`KEY`."""
    add_notes(template_url(home), "precious")
    archive = home / "backups" / "good.hmbackup"
    backup.create_backup(home, archive, KEY)
    return archive


def tampered(archive: Path, how: str) -> Path:
    data = bytearray(archive.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x01
    elif how == "truncate":
        data = data[: len(data) * 2 // 3]
    elif how == "truncate-end":
        data = data[:-1]
    else:
        data += b"\x00" * 64
    copy = archive.with_name(f"{how}.hmbackup")
    copy.write_bytes(bytes(data))
    return copy


def test_tampered_archive_is_refused_and_nothing_changes(home: Path, made: Path) -> None:
    for how in ("flip", "truncate", "truncate-end", "append"):
        bad = tampered(made, how)
        before = snapshot(home)
        stopped: list[list[str]] = []
        with pytest.raises(backup.BackupError, match="damaged or was tampered with"):
            backup.restore_backup(home, bad, KEY, stop_services=stopped.append)
        assert stopped == [], how
        assert snapshot(home) == before, how


def test_cli_reports_tampering_and_a_wrong_key(home: Path, made: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    archive = made
    bad = tampered(archive, "flip")
    before = snapshot(home)
    monkeypatch.setenv(backup.KEY_ENVIRONMENT_VARIABLE, KEY)
    result = invoke("restore", str(bad), "--yes")
    assert result.exit_code == 1
    assert "tampered with" in result.output
    monkeypatch.setenv(backup.KEY_ENVIRONMENT_VARIABLE, "not the key")
    result = invoke("restore", str(archive), "--yes")
    assert result.exit_code == 1
    assert "wrong backup key" in result.output
    assert snapshot(home) == before


@functools.cache
def key_block(key: str) -> tuple[Any, bytes]:
    """An X25519 identity and its key block (scrypt is slow: made once per key)."""
    identity = pyrage.x25519.Identity.generate()
    return identity, pyrage.passphrase.encrypt(str(identity).encode(), key)


def seal(path: Path, key: str, payload: bytes) -> Path:
    """Encrypt ``payload`` in the archive format the module docstring documents."""
    identity, block = key_block(key)
    body = pyrage.encrypt(payload, [identity.to_public()])
    path.write_bytes(b"hivematrix-backup 1\n" + f"{len(block)}\n".encode() + block + body)
    return path


def manifest_for(*members: dict[str, Any]) -> bytes:
    return json.dumps({"format": "hivematrix-backup", "format_version": 1,
                       "created_at": "2024-01-01T00:00:00+00:00", "hivematrix_version": "0",
                       "hostname": "attacker", "home": "/", "directories": [],
                       "members": list(members)}).encode()


def file_member(path: str, content: bytes) -> dict[str, Any]:
    return {"path": path, "kind": "file", "service": None, "group": "configs",
            "size": len(content), "sha256": hashlib.sha256(content).hexdigest(), "mode": 0o644}


def tar_of(manifest: bytes, *entries: tarfile.TarInfo | tuple[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                name, content = entry
                info = tarfile.TarInfo(name)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def crafted_archives(tmp_path: Path) -> dict[str, bytes]:
    evil = b"pwned\n"
    outside = str(tmp_path / "evil")
    return {
        "dot-dot in manifest and tar": tar_of(
            manifest_for(file_member("files/../../evil", evil)), ("files/../../evil", evil)),
        "dot-dot member not in manifest": tar_of(manifest_for(), ("../evil", evil)),
        "absolute member": tar_of(manifest_for(file_member(outside, evil)), (outside, evil)),
        "symlink member": tar_of(
            manifest_for(file_member("files/configs/master_config.json", b"")),
            symlink("files/configs/master_config.json", outside)),
        "unlisted member": tar_of(
            manifest_for(file_member("files/services.json", b"{}")),
            ("files/services.json", b"{}"), ("files/configs/extra.json", evil)),
    }


def test_crafted_archives_are_refused(home: Path, tmp_path: Path) -> None:
    before = snapshot(home)
    for case, payload in crafted_archives(tmp_path).items():
        archive = seal(tmp_path / "crafted.hmbackup", KEY, payload)
        stopped: list[list[str]] = []
        with pytest.raises(backup.BackupError, match="refused"):
            backup.restore_backup(home, archive, KEY, stop_services=stopped.append)
        assert stopped == [], case
        assert snapshot(home) == before, case
        assert not (tmp_path / "evil").exists(), case


def test_crafted_archive_format_itself_restores(home: Path, tmp_path: Path) -> None:
    """The same hand-made format, with a legitimate member, is accepted: the refusals above
    are about the members, not the way the archive was sealed."""
    content = b'{"edited": true}\n'
    payload = tar_of(manifest_for(file_member("files/services.json", content)),
                     ("files/services.json", content))
    archive = seal(tmp_path / "fine.hmbackup", KEY, payload)
    result = backup.restore_backup(home, archive, KEY)
    assert (home / "services.json").read_bytes() == content
    assert stat.S_IMODE((home / "services.json").stat().st_mode) == 0o644
    assert "template" in result.services
