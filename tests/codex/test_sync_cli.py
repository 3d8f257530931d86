"""`hivematrix codex sync psa|tickets|rmm` from a shell: Codex's settings come from
`$HIVEMATRIX_HOME/codex/instance/codex.conf`, as for the running service, and each run is a
recorded job; the exit code says how it went (0 done, 2 partial, 1 failed or refused)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from hivematrix.cli import main
from hivematrix.codex.models import Asset, Company, Contact, SyncJob, Ticket
from hivematrix.common.db import Database
from tests.codex.fakes.datto import API_KEY as DATTO_KEY
from tests.codex.fakes.datto import API_SECRET as DATTO_SECRET
from tests.codex.fakes.datto import DattoFake, seeded
from tests.codex.fakes.freshservice import API_KEY, FreshserviceFake


@pytest.fixture
def freshservice() -> FreshserviceFake:
    return FreshserviceFake().seed()


@pytest.fixture
def freshservice_url(freshservice: FreshserviceFake) -> Iterator[str]:
    with freshservice.serve() as url:
        yield url


@pytest.fixture
def datto() -> DattoFake:
    return seeded()


@pytest.fixture
def datto_url(datto: DattoFake) -> Iterator[str]:
    with datto.serve() as url:
        yield url


def write_conf(home: Path, database_url: str, **sections: dict[str, str]) -> Path:
    """Codex's instance file, in the format Helm writes (``[section] key`` = ``SECTION_KEY``)."""
    path = home / "codex" / "instance" / "codex.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["[database]", f"connection_string = {database_url}", ""]
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in values.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def psa_conf(hm_home: Path, codex_db_url: str, freshservice_url: str) -> Path:
    return write_conf(hm_home, codex_db_url,
                      codex={"psa_provider": "freshservice", "outbound_allowlist": "127.0.0.1",
                             "http_retries": "2"},
                      freshservice={"url": freshservice_url, "api_key": API_KEY})


def sync(*args: str) -> Result:
    return CliRunner().invoke(main, ["codex", "sync", *args])


def jobs(database: Database) -> list[SyncJob]:
    with database.transaction() as session:
        found = list(session.scalars(select(SyncJob).order_by(SyncJob.started_at)))
        session.expunge_all()
        return found


def count(database: Database, model: type) -> int:
    with database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_psa_sync_prints_counts_and_a_rerun_is_unchanged(
        psa_conf: Path, codex_db: Database, freshservice: FreshserviceFake) -> None:
    first = sync("psa")
    assert first.exit_code == 0, first.output
    assert "companies: 3 created" in first.output
    assert "contacts: 4 created" in first.output
    assert "agents: 2 created" in first.output
    assert "psa sync succeeded" in first.output
    again = sync("psa")
    assert again.exit_code == 0, again.output
    assert "companies: 3 unchanged" in again.output
    assert "contacts: 4 unchanged" in again.output
    assert "agents: 2 unchanged" in again.output
    # Recorded like any other run; nothing doubled, nothing written back twice.
    recorded = jobs(codex_db)
    assert [(job.kind, job.status, job.triggered_by) for job in recorded] == [
        ("psa", "succeeded", "cli"), ("psa", "succeeded", "cli")]
    assert recorded[0].id in first.output and recorded[1].id in again.output
    assert "companies: 3 read" in recorded[1].log
    assert count(codex_db, Company) == 3 and count(codex_db, Contact) == 4
    assert len(freshservice.writes) == 2


def test_tickets_incremental_then_full(psa_conf: Path, codex_db: Database,
                                       freshservice: FreshserviceFake) -> None:
    first = sync("tickets")
    assert first.exit_code == 0, first.output
    assert "tickets: 6 created" in first.output
    incremental = sync("tickets")
    assert incremental.exit_code == 0, incremental.output
    # Only what changed lately is asked for again (three tickets), and it is unchanged.
    assert "tickets: 3 unchanged" in incremental.output
    assert "updated_since" in freshservice.queries("/tickets")[-1]
    full = sync("tickets", "--full")
    assert full.exit_code == 0, full.output
    assert "tickets: 6 unchanged" in full.output
    assert [job.full for job in jobs(codex_db)] == [False, False, True]
    assert count(codex_db, Ticket) == 6


def test_one_malformed_record_exits_2(psa_conf: Path, codex_db: Database,
                                      freshservice: FreshserviceFake) -> None:
    freshservice.requesters.append({"id": "21-x", "first_name": "Broken"})
    result = sync("psa")
    assert result.exit_code == 2, result.output
    assert "contacts: 4 created, 1 failed" in result.output
    assert "psa sync partial" in result.output
    (job,) = jobs(codex_db)
    assert job.status == "partial" and "contacts 21-x: id '21-x' is not an id" in job.log
    assert count(codex_db, Contact) == 4


def test_a_vendor_refusing_the_key_exits_1_with_the_reason(
        psa_conf: Path, codex_db: Database, freshservice: FreshserviceFake) -> None:
    freshservice.api_key = "rotated-key"
    result = sync("psa")
    assert result.exit_code == 1, result.output
    assert "psa sync failed" in result.output and "401" in result.output
    (job,) = jobs(codex_db)
    assert job.status == "failed" and "401" in job.error


def test_rmm_sync_links_devices_to_companies(hm_home: Path, codex_db_url: str,
                                             codex_db: Database, datto_url: str) -> None:
    write_conf(hm_home, codex_db_url,
               codex={"rmm_provider": "datto", "outbound_allowlist": "127.0.0.1"},
               datto={"url": datto_url, "api_key": DATTO_KEY, "api_secret": DATTO_SECRET})
    with codex_db.transaction() as session:
        session.add_all([Company(account_number="100001", name="Acme Dental"),
                         Company(account_number="100002", name="Baker and Sons Law")])
    first = sync("rmm")
    assert first.exit_code == 0, first.output
    assert "sites: 3 created" in first.output and "devices: 6 created" in first.output
    again = sync("rmm")
    assert again.exit_code == 0, again.output
    assert "sites: 3 unchanged" in again.output and "devices: 6 unchanged" in again.output
    assert count(codex_db, Asset) == 6
    # The site without an AccountNumber is named in the job's log, not silently skipped.
    assert "site Unlinked Bakery" in jobs(codex_db)[-1].log


def test_refused_without_a_configured_psa(hm_home: Path, codex_db_url: str,
                                          codex_db: Database) -> None:
    write_conf(hm_home, codex_db_url)
    for kind in ("psa", "tickets"):
        result = sync(kind)
        assert result.exit_code == 1, result.output
        assert "no PSA is configured (set CODEX_PSA_PROVIDER)" in result.output
    result = sync("rmm")
    assert result.exit_code == 1 and "no RMM is configured" in result.output
    assert jobs(codex_db) == []


def test_refused_before_the_database_is_migrated(hm_home: Path, tmp_path: Path,
                                                 freshservice_url: str) -> None:
    write_conf(hm_home, f"sqlite:///{tmp_path}/empty.db",
               codex={"psa_provider": "freshservice", "outbound_allowlist": "127.0.0.1"},
               freshservice={"url": freshservice_url, "api_key": API_KEY})
    result = sync("psa")
    assert result.exit_code == 1, result.output
    assert "run `hivematrix db upgrade codex` first" in result.output


def test_a_run_in_progress_is_not_doubled(psa_conf: Path, codex_db: Database) -> None:
    from hivematrix.codex.sync import runner

    other = runner.start_job(codex_db, "tickets", "freshservice", triggered_by="schedule")
    result = sync("tickets")
    assert result.exit_code == 1, result.output
    assert f"a tickets sync is already running (job {other}" in result.output
    assert len(jobs(codex_db)) == 1
