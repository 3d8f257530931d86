"""Helm's backups page: a backup made in the background, listed, downloaded and decrypted with
the backup key; the refusals; and the archive names that must not reach a file."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from hivematrix.cli import main
from hivematrix.helm import backup, backup_runs
from hivematrix.helm.jobs import FileLock

HTML = {"Accept": "text/html"}
Headers = Callable[..., dict[str, str]]
# Backups do not touch Helm's own database: one engine is enough.
pytestmark = pytest.mark.parametrize("helm_db_url", ["sqlite"], indirect=True)


@pytest.fixture(autouse=True)
def no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(backup.KEY_ENVIRONMENT_VARIABLE, raising=False)


@pytest.fixture
def home(hm_home: Path) -> Path:
    """An initialised home with a migrated database, so archives hold a database too."""
    for args in (["init"], ["db", "upgrade", "template"]):
        result = CliRunner().invoke(main, args, env={"HIVEMATRIX_HOME": str(hm_home)})
        assert result.exit_code == 0, result.output
    return hm_home


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def admin_page(client: FlaskClient, as_user: Headers, path: str = "/backups") -> str:
    response = client.get(path, headers={**as_user("admin"), **HTML})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def wait_until_finished(client: FlaskClient, as_user: Headers) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        latest = client.get("/api/backups/latest", headers=as_user("admin")).get_json()
        if latest["state"] != "running":
            return dict(latest)
        assert time.monotonic() < deadline, latest
        time.sleep(0.1)


def test_a_backup_made_from_the_page_is_listed_and_downloads_whole(
        home: Path, helm_client: FlaskClient, as_user: Headers, tmp_path: Path) -> None:
    page = admin_page(helm_client, as_user)
    assert 'data-testid="archives-empty"' in page
    assert "Restoring is done from the command line only" in page
    assert "hivematrix restore ARCHIVE" in page

    started = helm_client.post("/backups", headers={**as_user("admin"), **HTML},
                               data={"csrf_token": csrf(page)})
    assert started.status_code == 303 and started.headers["Location"].endswith("/backups")
    run = wait_until_finished(helm_client, as_user)
    assert run["state"] == "succeeded", run
    assert run["requested_by"] == "admin-user" and run["new_key"] is True
    assert run["summary"]["databases"] == ["template"]

    page = admin_page(helm_client, as_user)
    [name] = re.findall(r'<tr data-archive="([^"]+)">', page)
    assert name == run["archive"] and name.endswith(backup.ARCHIVE_SUFFIX)
    row = page.split(f'<tr data-archive="{name}">')[1].split("</tr>")[0]
    assert '<span class="badge badge--success">yes</span>' in row
    assert "1 database (template)" in row
    assert f'href="/backups/{name}"' in row
    assert "A new backup key was generated" in page and "keys/backup.key" in page

    download = helm_client.get(f"/backups/{name}", headers=as_user("admin"))
    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == f"attachment; filename={name}"
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["Cache-Control"] == "no-store"
    copy = tmp_path / "downloaded.hmbackup"
    copy.write_bytes(download.get_data())
    download.close()

    key = backup.find_backup_key(home)
    assert key
    # The download is the whole archive: it decrypts with the backup key and every member
    # matches the manifest's checksums (verify reads and checks all of it).
    manifest = backup.verify(copy, key)
    original = backup.read_manifest(home / "backups" / name, key)
    assert manifest == original
    assert {member.path for member in manifest.members} >= {
        "databases/template.sqlite", "files/configs/master_config.json"}
    with pytest.raises(backup.BackupError):
        backup.verify(copy, "not the key")


def test_a_second_backup_is_refused_while_one_runs(home: Path, helm_client: FlaskClient,
                                                   as_user: Headers) -> None:
    # Another Helm worker's backup: it holds the lock and says so in the status file.
    other = FileLock(backup_runs.lock_path(home))
    assert other.acquire()
    backup_runs.status_path(home).write_text(json.dumps({
        "state": "running", "archive": "hivematrix-backup-x.hmbackup",
        "started_at": "2026-06-01T10:00:00+00:00", "phase": backup.PHASE_ENCRYPT,
        "done": 30, "total": 120}))
    try:
        page = admin_page(helm_client, as_user)
        assert 'data-testid="create-backup" disabled' in page
        assert f"{backup.PHASE_ENCRYPT}: 25 %" in page
        refused = helm_client.post("/backups", headers=as_user("admin"),
                                   data={"csrf_token": csrf(page)})
        assert refused.status_code == 409
        assert "already running" in refused.get_json()["detail"]
        assert helm_client.get("/api/backups/latest", headers=as_user("admin")).get_json()[
            "percent"] == 25
    finally:
        other.release()
    # The process holding it is gone and the status never said it finished.
    latest = helm_client.get("/api/backups/latest", headers=as_user("admin")).get_json()
    assert latest["state"] == "interrupted" and "no archive was written" in latest["error"]
    page = admin_page(helm_client, as_user)
    assert 'data-testid="create-backup" disabled' not in page and "interrupted" in page


def test_a_failed_backup_says_why(hm_home: Path, helm_client: FlaskClient,
                                  as_user: Headers) -> None:
    # A key file that is there but empty: the backup module refuses to guess a new key.
    (hm_home / "keys").mkdir()
    (hm_home / "keys" / "backup.key").write_text("")
    page = admin_page(helm_client, as_user)
    assert helm_client.post("/backups", headers=as_user("admin"),
                            data={"csrf_token": csrf(page)}).status_code == 303
    run = wait_until_finished(helm_client, as_user)
    assert run["state"] == "failed" and "is empty" in run["error"]
    page = admin_page(helm_client, as_user)
    assert 'class="alert alert--error u-mt-2" role="alert">the backup key file' in page
    assert backup_runs.list_archives(hm_home) == []


def test_creating_needs_a_csrf_token(home: Path, helm_client: FlaskClient,
                                     as_user: Headers) -> None:
    refused = helm_client.post("/backups", headers={**as_user("admin"), **HTML},
                               data={"x": "1"})
    assert refused.status_code == 400
    assert backup_runs.read_run(home) is None and backup_runs.list_archives(home) == []


def test_archive_names_never_leave_the_backups_folder(hm_home: Path, helm_client: FlaskClient,
                                                      as_user: Headers, tmp_path: Path) -> None:
    folder = hm_home / "backups"
    folder.mkdir()
    (folder / "real.hmbackup").write_bytes(b"archive bytes")
    (folder / ".hidden.hmbackup").write_bytes(b"a dot file")
    outside = tmp_path / "secret.hmbackup"
    outside.write_bytes(b"not for download")
    (folder / "link.hmbackup").symlink_to(outside)
    (hm_home / "configs").mkdir()
    (hm_home / "configs" / "x.hmbackup").write_bytes(b"elsewhere")
    admin = as_user("admin")

    ok = helm_client.get("/backups/real.hmbackup", headers=admin)
    assert ok.status_code == 200 and ok.get_data() == b"archive bytes"
    ok.close()
    for name in (".hidden.hmbackup", "real.txt", "..", "a b.hmbackup", "real.hmbackup.1"):
        bad = helm_client.get(f"/backups/{name}", headers=admin)
        assert bad.status_code == 400, name
        assert bad.get_json()["errors"]["path"]["name"], name
    for name in ("link.hmbackup", "missing.hmbackup"):
        assert helm_client.get(f"/backups/{name}", headers=admin).status_code == 404, name
    for path in ("/backups/..%2Fconfigs%2Fx.hmbackup", "/backups/../configs/x.hmbackup",
                 "/backups/%2E%2E%2Fconfigs%2Fx.hmbackup"):
        answer = helm_client.get(path, headers=admin)
        assert answer.status_code in (400, 404) and answer.get_data() != b"elsewhere", path
    page = admin_page(helm_client, as_user)
    assert re.findall(r'<tr data-archive="([^"]+)">', page) == ["real.hmbackup"]
    assert "made outside this page" in page


def test_deleting_an_archive_needs_the_confirmation_and_a_token(
        hm_home: Path, helm_client: FlaskClient, as_user: Headers) -> None:
    folder = hm_home / "backups"
    folder.mkdir()
    archive = folder / "old.hmbackup"
    archive.write_bytes(b"x")
    page = admin_page(helm_client, as_user)
    token = csrf(page)
    admin = {**as_user("admin"), **HTML}
    assert helm_client.post("/backups/old.hmbackup/delete", headers=admin,
                            data={"confirm": "yes"}).status_code == 400  # no token
    unconfirmed = helm_client.post("/backups/old.hmbackup/delete", headers=as_user("admin"),
                                   data={"csrf_token": token})
    assert unconfirmed.status_code == 400
    assert unconfirmed.get_json()["errors"] == {"form": {"confirm": ["Confirm the deletion."]}}
    assert archive.exists()
    assert helm_client.post("/backups/.x.hmbackup/delete", headers=admin,
                            data={"csrf_token": token, "confirm": "yes"}).status_code == 400
    assert helm_client.post("/backups/gone.hmbackup/delete", headers=admin,
                            data={"csrf_token": token, "confirm": "yes"}).status_code == 404
    done = helm_client.post("/backups/old.hmbackup/delete", headers=admin,
                            data={"csrf_token": token, "confirm": "yes"})
    assert done.status_code == 303 and done.headers["Location"].endswith(
        "/backups?deleted=old.hmbackup")
    assert not archive.exists()
    assert "old.hmbackup was deleted" in admin_page(helm_client, as_user,
                                                    "/backups?deleted=old.hmbackup")


@pytest.mark.parametrize("level", ["technician", "client"])
def test_backups_are_for_admins(hm_home: Path, helm_client: FlaskClient, as_user: Headers,
                                level: str) -> None:
    (hm_home / "backups").mkdir()
    (hm_home / "backups" / "a.hmbackup").write_bytes(b"x")
    headers = {**as_user(level), **HTML}
    for url in ("/backups", "/api/backups/latest", "/backups/a.hmbackup"):
        assert helm_client.get(url, headers=headers).status_code == 403, url
    for url in ("/backups", "/backups/a.hmbackup/delete"):
        # JSON needs no CSRF token: what refuses it here is the permission level.
        assert helm_client.post(url, headers=headers,
                                json={"confirm": "yes"}).status_code == 403, url
    assert (hm_home / "backups" / "a.hmbackup").exists()
    assert not backup_runs.status_path(hm_home).exists()


def test_the_page_script_builds_nothing_from_html(helm_client: FlaskClient,
                                                  as_user: Headers) -> None:
    for name in ("backups.js", "dashboard.js"):
        script = helm_client.get(f"/static/{name}", headers=as_user("admin")).get_data(
            as_text=True)
        for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                          "eval(", "new Function"):
            assert forbidden not in script, (name, forbidden)
        assert "textContent" in script
