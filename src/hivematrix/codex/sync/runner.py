"""Running a sync: one recorded job per run, one bad record never sinks the rest.

A run is a :class:`~hivematrix.codex.models.SyncJob` row written before work starts and
finished with its counts, status and **whole** log. Each record is applied in a savepoint:
a record the store refuses is rolled back alone, logged and counted, and the run ends
``partial`` instead of ``succeeded``. Work is committed in batches, so a crash mid-run keeps
what was synced, and re-running is idempotent because the store matches on external ids.

Only one run per kind at a time: :func:`start_job` refuses while another is running (a run
older than :data:`STALE_AFTER` is considered dead and marked failed).
"""

from __future__ import annotations

import logging
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import false, select, text, update
from sqlalchemy.orm import Session

from hivematrix.codex.billing_types import BillingTypeMap
from hivematrix.codex.connectors.base import PSAConnector, RMMConnector
from hivematrix.codex.models import RMMSite, SyncJob
from hivematrix.codex.sync import store
from hivematrix.codex.sync.records import RecordFailure, SyncCounts
from hivematrix.common.db import Database, utcnow

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(hours=3)
BATCH = 200
#: Log text kept per job; beyond it the middle is elided (never silently truncated).
LOG_LIMIT = 2_000_000
#: Incremental ticket syncs re-read this much before the last successful run's start,
#: so a ticket updated while that run was listing is not missed.
TICKET_OVERLAP = timedelta(minutes=10)

T = TypeVar("T")
ProgressCallback = Callable[[str, int], None]


class JobRunning(Exception):
    """Another run of this kind is in progress."""

    def __init__(self, job: SyncJob) -> None:
        super().__init__(f"a {job.kind} sync is already running (job {job.id}, started "
                         f"{job.started_at.isoformat()})")
        # Plain values: the row is expired (detached) once the refusing transaction ends.
        self.job_id = job.id
        self.kind = job.kind
        self.started_at = job.started_at


@dataclass
class JobLog:
    """The job's log: every line kept, with a timestamp, in memory until the job ends."""

    lines: list[str] = field(default_factory=list)
    size: int = 0

    def write(self, message: str, level: str = "INFO") -> None:
        line = f"{utcnow().strftime('%Y-%m-%dT%H:%M:%SZ')} {level} {message}"
        self.lines.append(line)
        self.size += len(line) + 1
        log.log(logging.getLevelName(level), message)

    def text(self) -> str:
        text = "\n".join(self.lines)
        if len(text) <= LOG_LIMIT:
            return text
        half = LOG_LIMIT // 2
        return (f"{text[:half]}\n... {len(text) - LOG_LIMIT} characters elided ...\n"
                f"{text[-half:]}")


@dataclass
class Run:
    """What one job is doing: its id, counts per kind of object, failures and log."""

    job_id: str
    log: JobLog = field(default_factory=JobLog)
    counts: dict[str, SyncCounts] = field(default_factory=dict)
    progress: ProgressCallback | None = None

    def count(self, kind: str) -> SyncCounts:
        return self.counts.setdefault(kind, SyncCounts())

    @property
    def failed(self) -> int:
        return sum(counts.failed for counts in self.counts.values())

    def counts_json(self) -> dict[str, Any]:
        return {kind: counts.to_dict() for kind, counts in self.counts.items()}


def _serialise_starts(session: Session, kind: str) -> None:
    """Hold off other starts of ``kind`` (in any process) until this transaction ends.

    Locking the running row is not enough: when there is none, every racer reads "none"
    and inserts its own.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        key = zlib.crc32(f"codex-sync-start:{kind}".encode())
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    elif dialect == "sqlite":
        # Any write takes SQLite's one write lock at once (an empty one changes nothing),
        # so the read that follows sees every start committed before it.
        session.execute(update(SyncJob).where(false()).values(status=SyncJob.status))


def start_job(database: Database, kind: str, provider: str, *, full: bool = False,
              triggered_by: str = "") -> str:
    """Record a new running job, refusing when one of the same kind is running."""
    with database.transaction() as session:
        _serialise_starts(session, kind)
        running = session.scalar(select(SyncJob).where(
            SyncJob.kind == kind, SyncJob.status == "running").with_for_update())
        if running is not None:
            if utcnow() - running.started_at < STALE_AFTER:
                raise JobRunning(running)
            running.status = "failed"
            running.finished_at = utcnow()
            running.error = "abandoned: the process running it stopped without finishing"
        job_id = str(uuid.uuid4())
        session.add(SyncJob(id=job_id, kind=kind, provider=provider, full=full,
                            triggered_by=triggered_by, status="running"))
    return job_id


def finish_job(database: Database, run: Run, error: str = "") -> str:
    status = "failed" if error else "partial" if run.failed else "succeeded"
    with database.transaction() as session:
        job = session.get(SyncJob, run.job_id)
        assert job is not None
        job.status = status
        job.finished_at = utcnow()
        job.counts = run.counts_json()
        job.error = error
        job.log = run.log.text()
    return status


def _note_progress(database: Database, run: Run, kind: str, done: int) -> None:
    if run.progress is not None:
        run.progress(kind, done)
    with database.transaction() as session:
        job = session.get(SyncJob, run.job_id)
        if job is not None:
            job.progress = {"phase": kind, "done": done, "counts": run.counts_json()}


def _apply_all(database: Database, run: Run, kind: str,
               items: Iterable[T | RecordFailure],
               apply: Callable[[Session, T], str]) -> set[str]:
    """Apply every record of a listing in batches; returns the external ids seen."""
    counts = run.count(kind)
    seen: set[str] = set()
    done = 0
    session = database.sessionmaker()
    try:
        for item in _guarded(run, kind, items):
            done += 1
            if isinstance(item, RecordFailure):
                counts.failed += 1
                seen.add(item.external_id)  # unreadable is not vanished: never retire it
                run.log.write(f"{kind} {item.external_id}: {item.reason}", "WARNING")
                continue
            external_id = str(getattr(item, "external_id"))  # noqa: B009 - records all have it
            seen.add(external_id)
            try:
                with session.begin_nested():
                    outcome = apply(session, item)
            except Exception as exc:  # one bad record must not stop the run
                counts.failed += 1
                run.log.write(f"{kind} {external_id}: not stored ({type(exc).__name__}: "
                              f"{exc})", "ERROR")
                continue
            setattr(counts, outcome, getattr(counts, outcome) + 1)
            if done % BATCH == 0:
                session.commit()
                _note_progress(database, run, kind, done)
        session.commit()
    finally:
        session.close()
    run.log.write(f"{kind}: {done} read; {counts.to_dict()}")
    _note_progress(database, run, kind, done)
    return seen


class ListingFailed(Exception):
    """A vendor listing broke off part-way: nothing may be retired for it."""


def _guarded(run: Run, kind: str, items: Iterable[T]) -> Iterator[T]:
    try:
        yield from items
    except Exception as exc:
        run.log.write(f"{kind}: listing failed part-way ({type(exc).__name__}: {exc})", "ERROR")
        raise ListingFailed(f"{kind} listing failed: {exc}") from exc


def _retire(database: Database, run: Run, kind: str, retire: Callable[[Session], int]) -> None:
    with database.transaction() as session:
        retired = retire(session)
    run.count(kind).retired += retired
    if retired:
        run.log.write(f"{kind}: {retired} no longer listed, marked inactive")


def sync_psa(database: Database, connector: PSAConnector, run: Run, *,
             write_back_account_numbers: bool = True) -> None:
    """Companies (assigning account numbers the PSA lacks), contacts, agents."""
    source = connector.source
    assigned: list[tuple[str, str]] = []

    def company(session: Session, record: Any) -> str:
        row, outcome, new_number = store.apply_company(session, record)
        if new_number:
            assigned.append((record.external_id, row.account_number))
        return outcome

    seen = _apply_all(database, run, "companies", connector.companies(), company)
    _retire(database, run, "companies",
            lambda session: store.retire_companies(session, source, seen))
    for external_id, number in assigned:
        if not write_back_account_numbers:
            run.log.write(f"company {external_id}: assigned account number {number} "
                          "(write-back to the PSA is off)")
            continue
        try:
            connector.set_company_account_number(external_id, number)
            run.log.write(f"company {external_id}: account number {number} written to the PSA")
        except Exception as exc:
            run.count("companies").failed += 1
            run.log.write(f"company {external_id}: writing account number {number} back "
                          f"failed ({exc})", "ERROR")
    seen = _apply_all(database, run, "contacts", connector.contacts(), store.apply_contact)
    _retire(database, run, "contacts",
            lambda session: store.retire_contacts(session, source, seen))
    seen = _apply_all(database, run, "agents", connector.agents(), store.apply_agent)
    _retire(database, run, "agents", lambda session: store.retire_agents(session, source, seen))


def last_success(database: Database, kind: str, provider: str) -> datetime | None:
    with database.transaction() as session:
        return session.scalar(select(SyncJob.started_at).where(
            SyncJob.kind == kind, SyncJob.provider == provider,
            SyncJob.status.in_(("succeeded", "partial"))).order_by(
            SyncJob.started_at.desc()).limit(1))


def sync_tickets(database: Database, connector: PSAConnector, run: Run, *,
                 full: bool = False, details: bool = True) -> None:
    """Tickets updated since the last successful run (minus an overlap), or all of them."""
    since = None if full else last_success(database, "tickets", connector.source)
    if since is not None:
        since -= TICKET_OVERLAP
    scope = "full history" if since is None else f"updated since {since.isoformat()}"
    run.log.write(f"tickets: {scope}")
    _apply_all(database, run, "tickets",
               connector.tickets(updated_since=since, details=details), store.apply_ticket)


def sync_rmm(database: Database, connector: RMMConnector, run: Run,
             billing: BillingTypeMap) -> None:
    """Sites (linked by account number) and their devices; vanished devices retired."""
    sites = []

    def site(session: Session, record: Any) -> str:
        row, outcome = store.apply_site(session, record)
        sites.append((row.id, row.external_id, row.name, row.company_id))
        return outcome

    seen_sites = _apply_all(database, run, "sites", connector.sites(), site)

    def gone_sites(session: Session) -> int:
        # A site deleted in the RMM takes its devices with it: retire them (never delete).
        retired = 0
        for row in session.scalars(select(RMMSite).where(RMMSite.source == connector.source)):
            if row.external_id not in seen_sites:
                retired += store.retire_devices(session, row, set())
        return retired

    _retire(database, run, "devices", gone_sites)
    for site_id, external_id, name, company_id in sites:
        if company_id is None:
            run.log.write(f"site {name} ({external_id}): no AccountNumber matching a company; "
                          "its devices are skipped", "WARNING")
            continue

        def device(session: Session, record: Any, site_id: int = site_id) -> str:
            row = session.get(RMMSite, site_id)
            assert row is not None
            return store.apply_device(session, row, record, billing)

        try:
            seen = _apply_all(database, run, "devices", connector.devices(external_id), device)
        except ListingFailed:
            run.count("devices").failed += 1
            continue

        def retire(session: Session, site_id: int = site_id, seen: set[str] = seen) -> int:
            row = session.get(RMMSite, site_id)
            assert row is not None
            return store.retire_devices(session, row, seen)

        _retire(database, run, "devices", retire)


def run_job(database: Database, kind: str, provider: str, work: Callable[[Run], None], *,
            full: bool = False, triggered_by: str = "",
            progress: ProgressCallback | None = None,
            job_id: str | None = None) -> tuple[str, str]:
    """Start a job (or take over one :func:`start_job` recorded), run ``work`` and finish the
    job whatever happens: (job id, status)."""
    if job_id is None:
        job_id = start_job(database, kind, provider, full=full, triggered_by=triggered_by)
    run = Run(job_id=job_id, progress=progress)
    run.log.write(f"{kind} sync from {provider} started"
                  f"{' (full)' if full else ''}{' by ' + triggered_by if triggered_by else ''}")
    try:
        work(run)
    except Exception as exc:
        run.log.write(f"{kind} sync failed: {type(exc).__name__}: {exc}", "ERROR")
        return job_id, finish_job(database, run, error=f"{type(exc).__name__}: {exc}")
    run.log.write(f"{kind} sync finished{' with failures' if run.failed else ''}")
    return job_id, finish_job(database, run)
