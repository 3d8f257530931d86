"""Backups of a whole installation in one encrypted file, and restoring them.

What an archive holds
---------------------
- every service database: SQLite files copied with SQLite's online-backup API (a consistent
  copy even while the service writes), PostgreSQL databases dumped with
  ``pg_dump --format=custom``;
- settings and keys from ``$HIVEMATRIX_HOME``: ``configs/``, ``keys/`` (except
  ``keys/backup.key``, which must live elsewhere anyway), ``services.json``,
  ``master_services.json``, ``apps_registry.json``, ``initial-admin-password`` and each service
  folder's other files (``.flaskenv``, ``instance/*.conf``, Core's ``service-secrets.json``,
  Nexus's certificate, uploads, ...). Logs, ``run/``, ``backups/`` and database files (which are
  in the archive as databases) are left out, and so are symbolic links and other non-files;
- the graph store folders in :data:`GRAPH_STORES` when they exist.

Inside the encryption there is an uncompressed tar: ``manifest.json`` first (format version,
time, HiveMatrix version, host, and each member's path, kind, service, size, mode and SHA-256),
then the members, ``databases/<svc>.sqlite``, ``databases/<svc>.pgdump`` and
``files/<path below HIVEMATRIX_HOME>``.

Encryption
----------
age (through the ``pyrage`` bindings) rather than a construction of our own. pyrage's
passphrase mode takes and returns whole byte strings, so a backup would have to fit in memory
twice; its streaming functions (``encrypt_io``/``decrypt_io``) take X25519 identities only. An
archive therefore is two age messages back to back::

    hivematrix-backup 1\\n
    <length of the key block, decimal>\\n
    key block   age, passphrase (scrypt) = the backup key; plaintext: a fresh X25519 identity
    payload     age, encrypted to that identity; plaintext: the tar stream

So the backup key may be any string (``hivematrix backup`` generates a random one), each archive
has its own data key, memory use stays flat, and both parts are authenticated by age: a wrong
key, a flipped byte, truncation or appended bytes all fail decryption. Without HiveMatrix the
archive opens with the stock ``age`` tool: decrypt the key block with the passphrase, save the
identity to a file, then ``age -d -i`` the payload.

The key comes from ``HIVEMATRIX_ENCRYPTION_KEY``, else ``system.encryption_key`` in
``configs/master_config.json``, else ``keys/backup.key`` (see :func:`backup_key`).

Restoring decrypts and checks the whole archive (every checksum; the members are exactly those
of the manifest; only plain files with safe relative names) into a private staging folder
before anything is stopped or replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO

import pyrage
from sqlalchemy import URL, make_url
from sqlalchemy.exc import ArgumentError

from hivematrix import __version__
from hivematrix.common.config import SettingsError, load_settings, master_config_path
from hivematrix.common.files import atomic_file
from hivematrix.common.registry import discover_services
from hivematrix.helm import embedded

FORMAT = "hivematrix-backup"
FORMAT_VERSION = 1
MAGIC = b"hivematrix-backup 1\n"
ARCHIVE_SUFFIX = ".hmbackup"
MANIFEST_NAME = "manifest.json"
#: Environment variable holding the backup key; it wins over every file.
KEY_ENVIRONMENT_VARIABLE = "HIVEMATRIX_ENCRYPTION_KEY"
#: Graph stores kept as plain files: the process writing it (stopped before a restore
#: replaces it) -> folder below ``$HIVEMATRIX_HOME``. The embedded FalkorDB replaces its dump
#: by rename, so a copy is always whole; a backup first has it write a fresh one
#: (:func:`_fresh_graph_dumps`).
GRAPH_STORES: dict[str, str] = {embedded.FALKORDB: embedded.DATA_FOLDER}
#: ``--only`` choices; ``identity`` means identity's database, whichever engine.
ONLY_CHOICES = ("databases", "postgresql", "sqlite", "identity", "configs", "files", "graph")

KIND_SQLITE, KIND_POSTGRESQL, KIND_FILE = "sqlite", "postgresql", "file"
DATABASE_KINDS = (KIND_SQLITE, KIND_POSTGRESQL)
GROUP_DATABASE = "database"
FILE_GROUPS = ("configs", "files", "graph")

PHASE_COPY = "Copying databases and files"
PHASE_ENCRYPT = "Encrypting the archive"
PHASE_VERIFY = "Decrypting and verifying"
PHASE_RESTORE = "Restoring"

#: ``progress(phase, done, total)``; ``done == total`` when a phase ends.
ProgressCallback = Callable[[str, int, int], None]

_TOP_LEVEL_FILES = ("services.json", "master_services.json", "apps_registry.json",
                    "initial-admin-password")
_TOP_LEVEL_DIRS = ("configs", "keys")
_NOT_BACKED_UP = ("logs", "run", "backups")
_CONFIG_SUBFOLDERS = ("instance", "keys", "tls")
_PRUNED_FOLDERS = ("logs", "__pycache__")
_DATABASE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
_SERVICE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_STAGING_PREFIX = ".backup-staging-"
_RESTORE_STAGING_PREFIX = ".restore-staging-"
_MAX_KEY_BLOCK = 64 * 1024
_MAX_MANIFEST = 64 * 1024 * 1024
_CHUNK = 1024 * 1024
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE)


class BackupError(Exception):
    """A backup or restore cannot go on; the message says why and, where possible, what to do."""


class RestoreCancelled(BackupError):
    """The operator declined the confirmation; nothing was changed."""


# --- the manifest ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Member:
    """One file in an archive."""

    path: str
    kind: str
    #: The service it belongs to; ``None`` for platform-wide files (``configs/``, ``keys/``, ...).
    service: str | None
    #: ``database`` for databases, else one of :data:`FILE_GROUPS`.
    group: str
    size: int
    sha256: str
    #: Permission bits to restore (``None`` for PostgreSQL dumps).
    mode: int | None

    @property
    def target(self) -> PurePosixPath:
        """For files: where it goes, relative to ``$HIVEMATRIX_HOME``."""
        return PurePosixPath(self.path).relative_to("files")

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "service": self.service,
                "group": self.group, "size": self.size, "sha256": self.sha256,
                "mode": self.mode}

    @classmethod
    def from_json(cls, data: Any) -> Member:
        """Parse and check one manifest entry.

        :raises BackupError: a field is missing, of the wrong type or unsafe.
        """
        if not isinstance(data, dict):
            raise BackupError("manifest: a member is not an object")
        path, kind, service = data.get("path"), data.get("kind"), data.get("service")
        group, size, digest, mode = (data.get("group"), data.get("size"), data.get("sha256"),
                                     data.get("mode"))
        if not isinstance(path, str):
            raise BackupError("manifest: a member has no path")
        safe_name(path)
        if service is not None and not (isinstance(service, str)
                                        and _SERVICE_NAME.fullmatch(service)):
            raise BackupError(f"manifest: {path}: invalid service {service!r}")
        if (isinstance(size, bool) or not isinstance(size, int) or size < 0
                or not isinstance(digest, str) or not _SHA256.fullmatch(digest)):
            raise BackupError(f"manifest: {path}: invalid size or checksum")
        if mode is not None and (isinstance(mode, bool) or not isinstance(mode, int)
                                 or not 0 <= mode <= 0o777):
            raise BackupError(f"manifest: {path}: invalid mode {mode!r}")
        if kind in DATABASE_KINDS:
            suffix = "sqlite" if kind == KIND_SQLITE else "pgdump"
            if (service is None or group != GROUP_DATABASE
                    or path != f"databases/{service}.{suffix}"):
                raise BackupError(f"manifest: {path}: not a valid {kind} member")
        elif kind == KIND_FILE:
            parts = PurePosixPath(path).parts
            if (len(parts) < 2 or parts[0] != "files"
                    or file_group(PurePosixPath(*parts[1:])) != group):
                raise BackupError(f"manifest: {path}: not a file HiveMatrix backs up")
        else:
            raise BackupError(f"manifest: {path}: unknown kind {kind!r}")
        return cls(path=path, kind=kind, service=service, group=str(group), size=size,
                   sha256=digest, mode=mode)


@dataclass(frozen=True)
class Manifest:
    """What an archive holds; ``manifest.json`` inside it."""

    created_at: str
    hivematrix_version: str
    hostname: str
    #: The ``HIVEMATRIX_HOME`` it was made from.
    home: str
    members: tuple[Member, ...]
    #: Folders (relative to ``HIVEMATRIX_HOME``) holding backed-up files, with their modes.
    directories: tuple[tuple[str, int], ...] = ()
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        document = {
            "format": FORMAT, "format_version": self.format_version,
            "created_at": self.created_at, "hivematrix_version": self.hivematrix_version,
            "hostname": self.hostname, "home": self.home,
            "directories": [{"path": path, "mode": mode} for path, mode in self.directories],
            "members": [member.to_json() for member in self.members],
        }
        return (json.dumps(document, indent=2) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        """Parse and check ``manifest.json``.

        :raises BackupError: it is not a manifest this version understands, or is unsafe.
        """
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BackupError(f"the archive's manifest is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BackupError("the archive holds no HiveMatrix backup manifest")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise BackupError(f"backup format version {version!r} is not supported by this "
                              f"HiveMatrix (it reads version {FORMAT_VERSION})")
        texts = [data.get(name) for name in ("created_at", "hivematrix_version", "hostname",
                                              "home")]
        if not all(isinstance(text, str) for text in texts):
            raise BackupError("manifest: created_at, hivematrix_version, hostname or home missing")
        entries, folders = data.get("members"), data.get("directories", [])
        if not isinstance(entries, list) or not isinstance(folders, list):
            raise BackupError("manifest: members and directories must be lists")
        members = tuple(Member.from_json(entry) for entry in entries)
        paths = [member.path for member in members]
        if len(set(paths)) != len(paths) or MANIFEST_NAME in paths:
            raise BackupError("manifest: a member is listed twice")
        directories = []
        for entry in folders:
            path = entry.get("path") if isinstance(entry, dict) else None
            mode = entry.get("mode") if isinstance(entry, dict) else None
            if (not isinstance(path, str) or isinstance(mode, bool) or not isinstance(mode, int)
                    or not 0 <= mode <= 0o777):
                raise BackupError("manifest: invalid directory entry")
            safe_name(path)
            directories.append((path, mode))
        created_at, hivematrix_version, hostname, home = (str(text) for text in texts)
        return cls(created_at=created_at, hivematrix_version=hivematrix_version,
                   hostname=hostname, home=home, members=members,
                   directories=tuple(directories))


def safe_name(name: str) -> PurePosixPath:
    """``name`` as a relative path that stays where it is put.

    :raises BackupError: ``name`` is absolute, empty, has ``..``/``.`` parts, backslashes or
        NUL bytes, or is not in normal form.
    """
    path = PurePosixPath(name)
    if (not name or name.startswith("/") or "\\" in name or "\x00" in name
            or str(path) != name or any(part in ("", ".", "..") for part in name.split("/"))):
        raise BackupError(f"unsafe path {name!r} in the archive: refused")
    return path


def file_group(relative: PurePosixPath) -> str | None:
    """Which :data:`FILE_GROUPS` entry a file below ``$HIVEMATRIX_HOME`` is in; ``None`` when
    HiveMatrix neither backs it up nor restores it."""
    parts = relative.parts
    if not parts or parts[0].startswith(".") or parts[0] in _NOT_BACKED_UP:
        return None
    if len(parts) == 1:
        return "configs" if parts[0] in _TOP_LEVEL_FILES else None
    if parts[0] in _TOP_LEVEL_DIRS:
        return None if relative == PurePosixPath("keys", "backup.key") else "configs"
    if not _SERVICE_NAME.fullmatch(parts[0]) or any(part in _PRUNED_FOLDERS for part in parts):
        return None
    for store in GRAPH_STORES.values():
        if relative.is_relative_to(store):
            # temp-*: a dump being written (it replaces the real one when complete)
            return None if relative.name.startswith("temp-") else "graph"
    if len(parts) == 2 or parts[1] in _CONFIG_SUBFOLDERS:
        return "configs"
    return "files"


def _file_service(relative: PurePosixPath) -> str | None:
    if len(relative.parts) == 1 or relative.parts[0] in _TOP_LEVEL_DIRS:
        return None
    for owner, store in GRAPH_STORES.items():
        if relative.is_relative_to(store):
            return owner
    return relative.parts[0]


# --- the key ---------------------------------------------------------------------------------

def backup_key_path(home: Path) -> Path:
    """``keys/backup.key``: where a generated backup key is kept (mode 0600)."""
    return home / "keys" / "backup.key"


def find_backup_key(home: Path) -> str | None:
    """The backup key from ``$HIVEMATRIX_ENCRYPTION_KEY``, ``system.encryption_key`` in
    ``configs/master_config.json`` or ``keys/backup.key``, in that order; ``None`` if none.

    :raises BackupError: a file that should hold the key cannot be read, or is empty.
    """
    value = os.environ.get(KEY_ENVIRONMENT_VARIABLE, "").strip()
    if value:
        return value
    master = master_config_path(home)
    try:
        data = json.loads(master.read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError) as exc:
        raise BackupError(f"cannot read {master}: {exc}") from None
    system = data.get("system") if isinstance(data, dict) else None
    configured = system.get("encryption_key") if isinstance(system, dict) else None
    if isinstance(configured, str) and configured.strip():
        return configured.strip()
    path = backup_key_path(home)
    try:
        stored = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BackupError(f"cannot read the backup key {path}: {exc.strerror}") from None
    if not stored:
        raise BackupError(f"the backup key file {path} is empty; put the key back from your "
                          "safe copy")
    return stored


def backup_key(home: Path) -> str:
    """The backup key (see :func:`find_backup_key`); when there is none, a new random one is
    written to ``keys/backup.key`` (mode 0600) and returned.

    The caller must tell the operator to keep a copy off this machine: without the key no
    backup can be restored.
    """
    found = find_backup_key(home)
    if found:
        return found
    key = secrets.token_urlsafe(32)
    path = backup_key_path(home)
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # written meanwhile by another backup
        return find_backup_key(home) or key
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(key + "\n")
        out.flush()
        os.fsync(out.fileno())
    return key


# --- databases -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Database:
    service: str
    url: str
    kind: str

    @property
    def sqlite_path(self) -> Path:
        database = make_url(self.url).database or ""
        return Path(database).absolute()

    def describe(self) -> str:
        if self.kind == KIND_SQLITE:
            return f"{self.service} database: SQLite file {self.sqlite_path}"
        parsed = make_url(self.url)
        where = f"{parsed.host or 'local socket'}:{parsed.port or 5432}"
        return f"{self.service} database: PostgreSQL database {parsed.database!r} on {where}"


def _service_database(home: Path, service: str) -> _Database:
    """The database a service uses now, from its settings."""
    try:
        url = str(load_settings(service, environ={**os.environ,
                                                  "HIVEMATRIX_HOME": str(home)})["DATABASE_URL"])
        backend = make_url(url).get_backend_name()
    except SettingsError as exc:
        raise BackupError(f"{service}: {exc}") from None
    except ArgumentError:
        raise BackupError(f"{service}: DATABASE_URL is not a valid database URL") from None
    if backend == "sqlite":
        database = make_url(url).database
        if not database or database == ":memory:" or database.startswith("file:"):
            raise BackupError(f"{service}: DATABASE_URL names no SQLite file")
        return _Database(service, url, KIND_SQLITE)
    if backend == "postgresql":
        if not make_url(url).database:
            raise BackupError(f"{service}: DATABASE_URL names no PostgreSQL database")
        return _Database(service, url, KIND_POSTGRESQL)
    raise BackupError(f"{service}: {backend} databases cannot be backed up (SQLite and "
                      "PostgreSQL can)")


def _databases(home: Path) -> list[_Database]:
    return [_service_database(home, name)
            for name, spec in discover_services().items() if spec.migrations]


def libpq_url(url: str) -> tuple[str, str | None]:
    """A SQLAlchemy PostgreSQL URL (``postgresql+psycopg://u:p@h:5432/db``) as libpq takes it,
    without the password (``postgresql://u@h:5432/db``), and the password apart."""
    parsed = make_url(url)
    # ``URL.set(password=None)`` would keep the password: build the URL afresh.
    plain = URL.create("postgresql", username=parsed.username, host=parsed.host,
                       port=parsed.port, database=parsed.database, query=parsed.query)
    password = parsed.password
    return plain.render_as_string(hide_password=False), None if password is None else str(password)


def _pg_environment(password: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password  # never on the command line, where `ps` shows it
    return env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed, but a service database is on PostgreSQL; "
                          "install the PostgreSQL client tools (e.g. `apt install "
                          "postgresql-client`) in a version at least the server's")
    return path


def _run_tool(argv: list[str], password: str | None, what: str) -> None:
    result = subprocess.run(argv, env=_pg_environment(password), capture_output=True,  # noqa: S603
                            text=True, check=False)
    if result.returncode != 0:
        detail = result.stderr.strip() or f"exit status {result.returncode}"
        raise BackupError(f"{what} failed: {detail}")


def _dump_sqlite(source: Path, target: Path) -> None:
    """A consistent copy, even while the service writes (SQLite's online-backup API)."""
    try:
        with contextlib.closing(sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True,
                                                timeout=30)) as origin, \
                contextlib.closing(sqlite3.connect(target)) as copy:
            origin.backup(copy)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up the SQLite database {source}: {exc}") from None


def _dump_postgresql(database: _Database, target: Path) -> None:
    uri, password = libpq_url(database.url)
    _run_tool([_tool("pg_dump"), "--format=custom", "--no-password", f"--file={target}",
               f"--dbname={uri}"], password, f"pg_dump of {database.service}'s database")


def _ensure_postgresql_database(url: str) -> None:
    """Create the database ``url`` names when it does not exist."""
    import psycopg
    from psycopg import sql

    uri, password = libpq_url(url)
    name = make_url(url).database or ""
    try:
        with psycopg.connect(uri, password=password, connect_timeout=10):
            return
    except psycopg.OperationalError as exc:
        first_error = str(exc).strip()
    admin, _ = libpq_url(make_url(url).set(database="postgres")
                         .render_as_string(hide_password=False))
    try:
        with psycopg.connect(admin, password=password, autocommit=True,
                             connect_timeout=10) as connection:
            found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                       (name,)).fetchone()
            if found is None:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise BackupError(f"cannot connect to PostgreSQL database {name!r} ({first_error}) "
                          f"nor create it: {str(exc).strip()}") from None


def _restore_postgresql(database: _Database, dump: Path) -> None:
    _ensure_postgresql_database(database.url)
    uri, password = libpq_url(database.url)
    # One transaction: should anything fail, the database stays as it was.
    _run_tool([_tool("pg_restore"), "--clean", "--if-exists", "--no-owner",
               "--single-transaction", "--no-password", f"--dbname={uri}", str(dump)],
              password, f"pg_restore of {database.service}'s database")


# --- files -----------------------------------------------------------------------------------

def _is_log(name: str) -> bool:
    return name.endswith(".log") or ".log." in name


def _is_database_file(name: str) -> bool:
    """A SQLite file or its journal/WAL (``x.db``, ``x.db-wal``, ...)."""
    base = next((name.removesuffix(companion) for companion in _SQLITE_COMPANIONS
                 if name.endswith(companion)), name)
    return base.endswith(_DATABASE_SUFFIXES)


def _collect_files(home: Path, databases: list[_Database]) -> list[PurePosixPath]:
    """Files to back up, relative to ``home``."""
    skipped = {Path(f"{db.sqlite_path}{suffix}")
               for db in databases if db.kind == KIND_SQLITE
               for suffix in ("", *_SQLITE_COMPANIONS)}
    folders = [*_TOP_LEVEL_DIRS, *discover_services(),
               *(PurePosixPath(store).parts[0] for store in GRAPH_STORES.values())]
    found: list[PurePosixPath] = []
    for name in _TOP_LEVEL_FILES:
        if (home / name).is_file() and not (home / name).is_symlink():
            found.append(PurePosixPath(name))
    for folder in dict.fromkeys(folders):
        top = home / folder
        if top.is_symlink() or not top.is_dir():
            continue
        for directory, subfolders, names in os.walk(top):
            subfolders[:] = sorted(sub for sub in subfolders if sub not in _PRUNED_FOLDERS)
            for name in sorted(names):
                path = Path(directory, name)
                relative = PurePosixPath(path.relative_to(home).as_posix())
                if (path in skipped or path.is_symlink() or not path.is_file()
                        or _is_log(name) or name.endswith(ARCHIVE_SUFFIX)
                        or file_group(relative) is None
                        or (len(relative.parts) > 1 and relative.parts[0] not in _TOP_LEVEL_DIRS
                            and _is_database_file(name))):
                    continue
                found.append(relative)
    return found


def _fresh_graph_dumps(home: Path) -> None:
    """Have a running embedded FalkorDB write its dump now, so the archive holds every graph
    write made before the backup began (a stopped one saved everything when it stopped)."""
    try:
        embedded.save_snapshot(home, discover_services())
    except embedded.EmbeddedError as exc:
        raise BackupError(f"cannot back up the graph store: {exc}") from exc


def _copy_hashing(source: IO[bytes], target: Path) -> tuple[int, str]:
    """Copy ``source`` into a new private file; its size and SHA-256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    handle = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "wb") as out:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


def _hash_file(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _install(source: Path, target: Path, mode: int) -> None:
    """Copy ``source`` to a temporary file next to ``target``, then rename it over ``target``."""
    with atomic_file(target, mode, durable=True, suffix=".restoring") as out, \
            source.open("rb") as data:
        shutil.copyfileobj(data, out, _CHUNK)


# --- encrypted streams -----------------------------------------------------------------------

class _Counting(io.RawIOBase):
    """A reader that reports how many bytes have passed through it."""

    def __init__(self, inner: IO[bytes], report: Callable[[int], None]) -> None:
        super().__init__()
        self._inner = inner
        self._report = report
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        buffer[:len(data)] = data
        self.count += len(data)
        self._report(self.count)
        return len(data)


def _throttled(report: ProgressCallback, phase: str, total: int) -> Callable[[int], None]:
    last = [-_CHUNK]

    def update(done: int) -> None:
        if done - last[0] >= _CHUNK:
            last[0] = done
            report(phase, min(done, total), total)

    return update


def _write_archive(path: Path, key: str, produce: Callable[[BinaryIO], None],
                   on_bytes: Callable[[int], None]) -> None:
    """Write an archive atomically (mode 0600): header, key block, then what ``produce``
    writes, encrypted as it is written."""
    identity = pyrage.x25519.Identity.generate()
    block: bytes = pyrage.passphrase.encrypt(str(identity).encode("ascii"), key)
    with atomic_file(path, 0o600, durable=True, suffix=".partial") as out:
        out.write(MAGIC + f"{len(block)}\n".encode("ascii") + block)
        _encrypt_stream(produce, out, identity.to_public(), on_bytes)


def _encrypt_stream(produce: Callable[[BinaryIO], None], out: BinaryIO, recipient: Any,
                    on_bytes: Callable[[int], None]) -> None:
    # age reads plaintext; tarfile writes it: a pipe between a writer thread and age.
    read_end, write_end = os.pipe()
    failure: list[BaseException] = []

    def write() -> None:
        try:
            with os.fdopen(write_end, "wb") as sink:
                produce(sink)
        except BaseException as exc:  # re-raised below, in the caller's thread
            failure.append(exc)

    writer = threading.Thread(target=write, name="hivematrix-backup-writer", daemon=True)
    writer.start()
    try:
        with os.fdopen(read_end, "rb") as source:
            pyrage.encrypt_io(_Counting(source, on_bytes), out, [recipient])
    finally:
        writer.join()
    if failure:
        raise failure[0]


def _unwrap_identity(source: BinaryIO, key: str) -> Any:
    """Read the header and key block; the archive's X25519 identity."""
    if source.read(len(MAGIC)) != MAGIC:
        raise BackupError("not a HiveMatrix backup archive (or its header is damaged)")
    line = source.readline(16)
    try:
        length = int(line.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        length = -1
    if not 0 < length <= _MAX_KEY_BLOCK or not line.endswith(b"\n"):
        raise BackupError("the archive's header is damaged")
    block = source.read(length)
    if len(block) != length:
        raise BackupError("the archive is truncated")
    try:
        secret = pyrage.passphrase.decrypt(block, key)
    except pyrage.DecryptError:
        raise BackupError("wrong backup key: this archive cannot be decrypted with it (or its "
                          "header was altered)") from None
    try:
        return pyrage.x25519.Identity.from_str(bytes(secret).decode("ascii"))
    except (UnicodeDecodeError, ValueError, pyrage.IdentityError):
        raise BackupError("the archive's key block is damaged") from None


_DAMAGED = ("the archive is damaged or was tampered with: it failed authentication "
            "(nothing was restored from it)")


@contextmanager
def _plaintext(archive: Path, key: str, *, on_bytes: Callable[[int], None] | None = None,
               read_all: bool = True) -> Iterator[BinaryIO]:
    """The decrypted tar stream of ``archive``.

    age authenticates the stream chunk by chunk, so only authentic data is ever read here;
    truncation shows at the end, which is why, unless ``read_all`` is false, the stream is read
    to its end (and checked) after the caller is done with it.
    """
    try:
        source = archive.open("rb")
    except OSError as exc:
        raise BackupError(f"cannot read {archive}: {exc.strerror}") from None
    with source:
        identity = _unwrap_identity(source, key)
        read_end, write_end = os.pipe()
        closing = threading.Event()
        failure: list[BaseException] = []

        def decrypt() -> None:
            sink = os.fdopen(write_end, "wb")
            try:
                pyrage.decrypt_io(source, sink, [identity])
            except BaseException as exc:  # recorded before the reader sees the end
                if not closing.is_set():
                    failure.append(exc)
            finally:
                with contextlib.suppress(OSError):
                    sink.close()

        worker = threading.Thread(target=decrypt, name="hivematrix-backup-reader", daemon=True)
        worker.start()
        reader = os.fdopen(read_end, "rb", buffering=0)
        stream = io.BufferedReader(_Counting(reader, on_bytes or (lambda _done: None)), _CHUNK)
        try:
            yield stream
            if read_all:
                while stream.read(_CHUNK):
                    pass
        except BaseException:
            closing.set()
            reader.close()
            worker.join()
            if failure:
                raise BackupError(_DAMAGED) from failure[0]
            raise
        closing.set()
        reader.close()
        worker.join()
        if failure and read_all:
            raise BackupError(_DAMAGED) from failure[0]


def _read_manifest_member(tar: tarfile.TarFile) -> Manifest:
    info = tar.next()
    if info is None or info.name != MANIFEST_NAME or info.type not in _REGULAR:
        raise BackupError(f"the archive does not start with {MANIFEST_NAME}")
    if info.size > _MAX_MANIFEST:
        raise BackupError("the archive's manifest is implausibly large")
    data = tar.extractfile(info)
    assert data is not None  # a regular file
    return Manifest.from_json(data.read())


def _check_member(info: tarfile.TarInfo, expected: dict[str, Member], seen: set[str]) -> Member:
    if info.issym() or info.islnk():
        raise BackupError(f"the archive holds a link {info.name!r} -> {info.linkname!r}: refused")
    if info.type not in _REGULAR:
        raise BackupError(f"the archive holds {info.name!r}, which is not a plain file: refused")
    safe_name(info.name)
    member = expected.get(info.name)
    if member is None:
        raise BackupError(f"the archive holds {info.name!r}, which its manifest does not list: "
                          "refused")
    if info.name in seen:
        raise BackupError(f"the archive holds {info.name!r} twice: refused")
    seen.add(info.name)
    if info.size != member.size:
        raise BackupError(f"{info.name}: its size differs from the manifest's")
    return member


def _read_archive(archive: Path, key: str, *, progress: ProgressCallback,
                  stage: Path | None = None,
                  wanted: Callable[[Member], bool] = lambda _member: False) -> Manifest:
    """Decrypt ``archive`` and check all of it; the wanted members are copied into ``stage``.

    :raises BackupError: wrong key, damage, tampering or a member that is not allowed.
    """
    try:
        total = archive.stat().st_size
    except OSError as exc:
        raise BackupError(f"cannot read {archive}: {exc.strerror}") from None
    progress(PHASE_VERIFY, 0, total)
    with _plaintext(archive, key, on_bytes=_throttled(progress, PHASE_VERIFY, total)) as stream:
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                manifest = _read_manifest_member(tar)
                expected = {member.path: member for member in manifest.members}
                seen: set[str] = set()
                while (info := tar.next()) is not None:
                    member = _check_member(info, expected, seen)
                    data = tar.extractfile(info)
                    assert data is not None
                    if stage is not None and wanted(member):
                        try:
                            size, digest = _copy_hashing(data, stage / member.path)
                        except OSError as exc:
                            raise BackupError(f"cannot stage {member.path} for the restore: "
                                              f"{exc.strerror}") from None
                    else:
                        size, digest = _consume(data)
                    if size != member.size or digest != member.sha256:
                        raise BackupError(f"{member.path}: checksum mismatch; the archive was "
                                          "altered")
        except tarfile.TarError as exc:
            raise BackupError(f"the archive's contents are not a valid backup ({exc})") from None
    missing = sorted(expected.keys() - seen)
    if missing:
        raise BackupError(f"the archive lacks {len(missing)} member(s) its manifest lists, "
                          f"e.g. {missing[0]}")
    progress(PHASE_VERIFY, total, total)
    return manifest


def _consume(data: IO[bytes]) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    while chunk := data.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _no_progress(_phase: str, _done: int, _total: int) -> None:
    return None


# --- backup ----------------------------------------------------------------------------------

def default_archive_path(home: Path, now: datetime | None = None) -> Path:
    """``backups/hivematrix-backup-<UTC timestamp>.hmbackup``, not yet taken."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = home / "backups"
    candidate = folder / f"hivematrix-backup-{stamp}{ARCHIVE_SUFFIX}"
    number = 1
    while candidate.exists():
        number += 1
        candidate = folder / f"hivematrix-backup-{stamp}-{number}{ARCHIVE_SUFFIX}"
    return candidate


def _stage_database(database: _Database, staging: Path) -> Member | None:
    if database.kind == KIND_SQLITE:
        source = database.sqlite_path
        if not source.is_file():
            return None  # never migrated: nothing to keep
        path, mode = f"databases/{database.service}.sqlite", _mode(source)
        target = staging / path
        target.parent.mkdir(parents=True, exist_ok=True)
        _dump_sqlite(source, target)
    else:
        path, mode = f"databases/{database.service}.pgdump", None
        target = staging / path
        target.parent.mkdir(parents=True, exist_ok=True)
        _dump_postgresql(database, target)
    size, digest = _hash_file(target)
    return Member(path=path, kind=database.kind, service=database.service,
                  group=GROUP_DATABASE, size=size, sha256=digest, mode=mode)


def _stage_file(home: Path, relative: PurePosixPath, staging: Path) -> Member | None:
    source = home / relative
    path = f"files/{relative}"
    try:
        with source.open("rb") as data:
            mode = os.fstat(data.fileno()).st_mode & 0o777
            size, digest = _copy_hashing(data, staging / path)
    except FileNotFoundError:
        return None  # removed since it was listed
    except OSError as exc:
        raise BackupError(f"cannot read {source}: {exc.strerror}") from None
    group = file_group(relative)
    assert group is not None
    return Member(path=path, kind=KIND_FILE, service=_file_service(relative), group=group,
                  size=size, sha256=digest, mode=mode)


def _directories(home: Path, members: list[Member]) -> tuple[tuple[str, int], ...]:
    folders: set[PurePosixPath] = set()
    for member in members:
        if member.kind == KIND_FILE:
            folders.update(parent for parent in member.target.parents if parent.parts)
    return tuple((str(folder), _mode(home / folder)) for folder in sorted(folders))


def _tar_info(name: str, size: int, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, mtime
    return info


def create_backup(home: Path, output: Path | None, key: str, *,
                  progress: ProgressCallback | None = None) -> Manifest:
    """Write one encrypted archive of every service database, the settings and the keys.

    :param home: ``$HIVEMATRIX_HOME``.
    :param output: the archive to write (replaced atomically); ``None`` for
        :func:`default_archive_path`.
    :param key: the backup key (:func:`backup_key`).
    :param progress: called as ``progress(phase, done, total)``.
    :raises BackupError: nothing to back up, a database cannot be read, ``pg_dump`` is missing
        or fails. No archive is left behind then.
    """
    home = home.resolve()
    if not home.is_dir():
        raise BackupError(f"HIVEMATRIX_HOME {home} does not exist: nothing to back up")
    if not key:
        raise BackupError("the backup key is empty")
    report = progress or _no_progress
    target = (output or default_archive_path(home)).absolute()
    databases = _databases(home)
    if any(database.kind == KIND_POSTGRESQL for database in databases):
        _tool("pg_dump")  # before any work
    _fresh_graph_dumps(home)
    files = _collect_files(home, databases)
    staging = Path(tempfile.mkdtemp(dir=home, prefix=_STAGING_PREFIX))
    try:
        steps = len(databases) + len(files)
        members: list[Member] = []
        for done, database in enumerate(databases):
            report(PHASE_COPY, done, steps)
            staged = _stage_database(database, staging)
            if staged is not None:
                members.append(staged)
        for done, relative in enumerate(files, start=len(databases)):
            report(PHASE_COPY, done, steps)
            staged = _stage_file(home, relative, staging)
            if staged is not None:
                members.append(staged)
        report(PHASE_COPY, steps, steps)
        now = datetime.now(UTC)
        manifest = Manifest(created_at=now.isoformat(timespec="seconds"),
                            hivematrix_version=__version__, hostname=socket.gethostname(),
                            home=str(home), members=tuple(members),
                            directories=_directories(home, members))
        document = manifest.to_json()
        stamp = int(now.timestamp())  # whole seconds: no PAX header per member

        def write_tar(sink: BinaryIO) -> None:
            with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                tar.addfile(_tar_info(MANIFEST_NAME, len(document), 0o600, stamp),
                            io.BytesIO(document))
                for member in members:
                    with (staging / member.path).open("rb") as data:
                        tar.addfile(_tar_info(member.path, member.size, member.mode or 0o600,
                                              stamp), data)

        total = len(document) + sum(member.size for member in members)
        report(PHASE_ENCRYPT, 0, total)
        _write_archive(target, key, write_tar, _throttled(report, PHASE_ENCRYPT, total))
        report(PHASE_ENCRYPT, total, total)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


# --- reading and verifying -------------------------------------------------------------------

def read_manifest(archive: Path, key: str) -> Manifest:
    """The manifest of ``archive``, without checking the members (see :func:`verify`).

    :raises BackupError: wrong key, or not a readable backup.
    """
    with _plaintext(archive, key, read_all=False) as stream:
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                return _read_manifest_member(tar)
        except tarfile.TarError as exc:
            raise BackupError(f"the archive's contents are not a valid backup ({exc})") from None


def verify(archive: Path, key: str, *, progress: ProgressCallback | None = None) -> Manifest:
    """Decrypt all of ``archive`` and check every member against the manifest.

    :raises BackupError: wrong key, damage or tampering, an unsafe or unlisted member, a missing
        one or a checksum mismatch.
    """
    return _read_archive(archive, key, progress=progress or _no_progress)


# --- restore ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class RestorePlan:
    """What a restore is about to do, shown to the operator before it happens."""

    manifest: Manifest
    members: tuple[Member, ...]
    #: Human-readable list of what will be replaced.
    overwrites: tuple[str, ...]
    #: Services stopped before anything is replaced.
    services: tuple[str, ...]


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    restored: tuple[Member, ...]
    #: The services handed to ``stop_services``: start them again.
    services: tuple[str, ...]
    warnings: tuple[str, ...] = field(default=())


def _only(only: str | Collection[str] | None) -> frozenset[str] | None:
    if only is None:
        return None
    choices = frozenset([only] if isinstance(only, str) else only)
    unknown = sorted(choices - set(ONLY_CHOICES))
    if unknown:
        raise BackupError(f"unknown --only choice {unknown[0]!r}; choose from "
                          f"{', '.join(ONLY_CHOICES)}")
    return choices or None


def _selected(member: Member, groups: frozenset[str] | None) -> bool:
    if groups is None:
        return True
    for group in groups:
        if group == "databases" and member.kind in DATABASE_KINDS:
            return True
        if group in DATABASE_KINDS and member.kind == group:
            return True
        if group == "identity" and member.kind in DATABASE_KINDS and member.service == "identity":
            return True
        if member.kind == KIND_FILE and member.group == group:
            return True
    return False


def _inside(home: Path, target: Path) -> bool:
    real = Path(os.path.realpath(target.parent))
    return real == home or real.is_relative_to(home)


def _plan(home: Path, manifest: Manifest, members: list[Member]) -> tuple[
        RestorePlan, dict[str, _Database], list[str]]:
    """Check that every chosen member can be restored; what will be replaced."""
    installed = list(discover_services())
    databases: dict[str, _Database] = {}
    overwrites: list[str] = []
    areas: dict[str, int] = {}
    services: dict[str, None] = {}
    warnings: list[str] = []
    for member in members:
        if member.kind in DATABASE_KINDS:
            assert member.service is not None
            if member.service not in installed:
                raise BackupError(f"the archive holds {member.service}'s database, but "
                                  f"{member.service} is not installed")
            database = _service_database(home, member.service)
            if database.kind != member.kind:
                raise BackupError(
                    f"the archive holds {member.service}'s database as {member.kind}, but "
                    f"{member.service} is now configured for {database.kind}; restore the "
                    "settings first (`hivematrix restore FILE --only configs`) or change "
                    f"{member.service}/instance/{member.service}.conf")
            if database.kind == KIND_POSTGRESQL:
                _tool("pg_restore")
            databases[member.path] = database
            overwrites.append(database.describe())
            services[member.service] = None
        else:
            target = home / member.target
            if not _inside(home, target) or target.is_dir() or (
                    target.exists() and not target.is_file()):
                raise BackupError(f"cannot restore {member.target}: the path below "
                                  f"{home} is not a plain file")
            parts = member.target.parts
            area = parts[0] if len(parts) == 1 else f"{parts[0]}/"
            areas[area] = areas.get(area, 0) + 1
            if member.service is None:
                services.update(dict.fromkeys(installed))
            else:
                services[member.service] = None
    for area, count in areas.items():
        overwrites.append(area if not area.endswith("/")
                          else f"{area} ({count} file{'s' if count > 1 else ''})")
    if any(member.kind == KIND_FILE for member in members) and manifest.home != str(home):
        warnings.append(f"the archive was made from HIVEMATRIX_HOME={manifest.home}; restored "
                        "settings may name paths below it (e.g. SQLite connection strings)")
    ordered = [name for name in installed if name in services]
    ordered += sorted(name for name in services if name not in installed)
    plan = RestorePlan(manifest=manifest, members=tuple(members), overwrites=tuple(overwrites),
                       services=tuple(ordered))
    return plan, databases, warnings


def _prepare_directories(home: Path, manifest: Manifest, members: list[Member]) -> None:
    """Create the folders of restored files with their recorded modes (``keys/`` 0700, ...)."""
    modes = dict(manifest.directories)
    needed: set[PurePosixPath] = set()
    for member in members:
        if member.kind == KIND_FILE:
            needed.update(parent for parent in member.target.parents if parent.parts)
    for folder in sorted(needed, key=lambda path: len(path.parts)):
        path = home / folder
        mode = modes.get(str(folder), 0o755)
        if not path.is_dir():
            path.mkdir(mode=mode)
        path.chmod(mode)


def _restore_sqlite(staged: Path, database: _Database, mode: int) -> None:
    target = database.sqlite_path
    target.parent.mkdir(parents=True, exist_ok=True)
    # A left-over journal or WAL of the old file would be replayed into the new one.
    for suffix in _SQLITE_COMPANIONS:
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    _install(staged, target, mode)


def restore_backup(home: Path, archive: Path, key: str, *,
                   only: str | Collection[str] | None = None,
                   stop_services: Callable[[list[str]], None] | None = None,
                   confirm: Callable[[RestorePlan], bool] | None = None,
                   progress: ProgressCallback | None = None) -> RestoreResult:
    """Restore ``archive`` into ``home``.

    The whole archive is decrypted and checked first (into a private staging folder in
    ``home``); only then is ``confirm`` asked, are the affected services stopped and files and
    databases replaced. SQLite files and settings are written next to their targets and renamed
    over them; PostgreSQL databases are restored with ``pg_restore --clean --if-exists
    --no-owner`` in one transaction into the database the service's current settings name
    (created when missing).

    :param only: restore part of the archive: one or more of :data:`ONLY_CHOICES`.
    :param stop_services: called with the names of the services whose data is about to be
        replaced (after the checks, before any change); they need starting again afterwards.
    :param confirm: given the plan; returning false cancels (:class:`RestoreCancelled`).
    :param progress: called as ``progress(phase, done, total)``.
    :raises BackupError: wrong key, damage, tampering, unsafe members, nothing to restore, a
        database engine that does not match, a missing ``pg_restore``, or a failed restore.
    """
    groups = _only(only)
    report = progress or _no_progress
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=home, prefix=_RESTORE_STAGING_PREFIX))
    try:
        manifest = _read_archive(archive, key, progress=report, stage=staging,
                                 wanted=lambda member: _selected(member, groups))
        chosen = [member for member in manifest.members if _selected(member, groups)]
        if not chosen:
            raise BackupError("the archive holds nothing for --only "
                              f"{', '.join(sorted(groups or ()))}")
        plan, databases, warnings = _plan(home, manifest, chosen)
        if confirm is not None and not confirm(plan):
            raise RestoreCancelled("restore cancelled; nothing was changed")
        if stop_services is not None and plan.services:
            stop_services(list(plan.services))
        _prepare_directories(home, manifest, chosen)
        for done, member in enumerate(chosen):
            report(PHASE_RESTORE, done, len(chosen))
            staged = staging / member.path
            if member.kind == KIND_POSTGRESQL:
                _restore_postgresql(databases[member.path], staged)
            elif member.kind == KIND_SQLITE:
                _restore_sqlite(staged, databases[member.path], member.mode or 0o600)
            else:
                _install(staged, home / member.target, 0o600 if member.mode is None
                         else member.mode)
        report(PHASE_RESTORE, len(chosen), len(chosen))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return RestoreResult(manifest=manifest, restored=tuple(chosen), services=plan.services,
                         warnings=tuple(warnings))
