"""The two shapes a connector has: a PSA and an RMM. The sync runner only knows these."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol

from hivematrix.codex.sync.records import (
    AgentRecord,
    CompanyRecord,
    ContactRecord,
    DeviceRecord,
    RecordFailure,
    SiteRecord,
    TicketRecord,
)

#: What a listing yields: a record, or a failure for one payload the connector could not read
#: (logged and counted by the runner; the rest of the listing goes on).
Item = Any


class PSAConnector(Protocol):
    source: str

    def companies(self) -> Iterator[CompanyRecord | RecordFailure]: ...

    def contacts(self) -> Iterator[ContactRecord | RecordFailure]: ...

    def agents(self) -> Iterator[AgentRecord | RecordFailure]: ...

    def tickets(self, *, updated_since: datetime | None,
                details: bool) -> Iterator[TicketRecord | RecordFailure]:
        """Tickets updated since a moment (None: the full history). With ``details`` each
        ticket carries its time entries and conversations (one or two more calls per ticket)."""

    def set_company_account_number(self, external_id: str, account_number: str) -> None: ...

    def update_ticket(self, external_id: str, *, status: str | None = None,
                      note: str | None = None, author: str = "") -> None:
        """Push a normalised status (mapped back to the vendor's id) and/or a private note."""


class RMMConnector(Protocol):
    source: str

    def sites(self) -> Iterator[SiteRecord | RecordFailure]: ...

    def devices(self, site_external_id: str) -> Iterator[DeviceRecord | RecordFailure]: ...

    def set_site_account_number(self, site_external_id: str, account_number: str) -> None: ...

    def device_details(self, device_external_id: str) -> dict[str, Any]:
        """Live details of one device, as the RMM reports them now (nothing invented)."""

    def run_quick_job(self, device_external_id: str, component_uid: str,
                      variables: dict[str, str] | None = None) -> dict[str, Any]:
        """Start a component on a device; returns the vendor's job reference."""
