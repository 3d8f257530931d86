"""Running a sync by name, from the CLI, the API or the scheduler: the one entry point.

``psa`` = companies, contacts and PSA agents; ``tickets`` = tickets (incremental unless
``full``), with time entries and conversations; ``rmm`` = sites and devices; ``agents`` =
HiveMatrix staff from the identity provider.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from hivematrix.codex.billing_types import BillingTypeMap
from hivematrix.codex.connectors import factory
from hivematrix.codex.settings import BadSetting, json_mapping
from hivematrix.codex.sync import runner
from hivematrix.common.db import Database

KINDS = ("psa", "tickets", "rmm", "agents")


class UnknownKind(BadSetting):
    pass


def provider_of(config: Mapping[str, Any], kind: str) -> str:
    """The provider a kind of sync would use (raises NotConfigured when there is none)."""
    if kind in ("psa", "tickets"):
        provider = str(config.get("CODEX_PSA_PROVIDER", "")).strip().lower()
        if not provider:
            raise factory.NotConfigured("no PSA is configured (set CODEX_PSA_PROVIDER)")
        return provider
    if kind == "rmm":
        provider = str(config.get("CODEX_RMM_PROVIDER", "")).strip().lower()
        if not provider:
            raise factory.NotConfigured("no RMM is configured (set CODEX_RMM_PROVIDER)")
        return provider
    if kind == "agents":
        return str(config.get("CODEX_AGENTS_SOURCE", "identity")).strip().lower() or "identity"
    raise UnknownKind(f"unknown sync {kind!r}; expected one of {', '.join(KINDS)}")


def run(config: Mapping[str, Any], database: Database, kind: str, *, full: bool = False,
        triggered_by: str = "", progress: runner.ProgressCallback | None = None,
        job_id: str | None = None) -> tuple[str, str]:
    """Run one sync to the end: (job id, status). Raises before a job is recorded only when
    the sync is not configured or another run of the kind is in progress."""
    provider = provider_of(config, kind)

    def work(run: runner.Run) -> None:
        if kind == "psa":
            psa = factory.psa(config)
            runner.sync_psa(database, psa, run, write_back_account_numbers=bool(
                config.get("CODEX_WRITE_BACK_ACCOUNT_NUMBERS", True)))
        elif kind == "tickets":
            runner.sync_tickets(database, factory.psa(config), run, full=full)
        elif kind == "rmm":
            billing = BillingTypeMap.from_config(json_mapping(config, "CODEX_BILLING_TYPE_MAP"))
            runner.sync_rmm(database, factory.rmm(config), run, billing)
        else:
            from hivematrix.codex.sync import agents

            agents.sync_agents(database, config, run)

    return runner.run_job(database, kind, provider, work, full=full,
                          triggered_by=triggered_by, progress=progress, job_id=job_id)


def start_in_background(config: Mapping[str, Any], database: Database, kind: str, *,
                        full: bool = False, triggered_by: str = "") -> str:
    """Record the job now (refusals raise here, before anything runs) and run it in a
    daemon thread; returns the job id for the caller to show or poll."""
    job_id = runner.start_job(database, kind, provider_of(config, kind), full=full,
                              triggered_by=triggered_by)

    def work() -> None:
        try:
            run(config, database, kind, full=full, job_id=job_id, triggered_by=triggered_by)
        except BadSetting as exc:  # a broken setting: the job says why
            runner.finish_job(database, runner.Run(job_id=job_id), error=str(exc))

    threading.Thread(target=work, name=f"codex-sync-{kind}", daemon=True).start()
    return job_id
