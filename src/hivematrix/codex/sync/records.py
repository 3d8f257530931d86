"""What connectors hand to the store: vendor-neutral records of one synced object.

A connector's only job is to translate a vendor's payloads into these records; the store
(:mod:`hivematrix.codex.sync.store`) decides what is new, changed or gone. Every record names
its ``source`` (``freshservice``, ``connectwise``, ``datto``...) and the vendor's ``external_id``
as a string, so re-running a sync matches the same rows instead of adding new ones.

Datetimes are timezone-aware UTC; money-like and byte values are integers or Decimals, never
floats or rounded strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class CompanyRecord:
    source: str
    external_id: str
    name: str
    account_number: str | None = None
    description: str = ""
    domains: tuple[str, ...] = ()
    main_phone: str = ""
    address: str = ""
    billing_plan: str | None = None
    contract_term_length: str | None = None
    contract_start_date: date | None = None
    support_level: str | None = None
    active: bool = True


@dataclass(frozen=True)
class ContactRecord:
    source: str
    external_id: str
    name: str
    email: str | None = None
    secondary_emails: tuple[str, ...] = ()
    first_name: str = ""
    last_name: str = ""
    title: str = ""
    work_phone: str = ""
    mobile_phone: str = ""
    active: bool = True
    vip: bool = False
    #: (company external id, role) pairs; role is primary, billing, technical or general.
    companies: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AgentRecord:
    """A PSA agent (technician account in the PSA), used to name a ticket's responder."""

    source: str
    external_id: str
    name: str
    email: str = ""
    active: bool = True
    job_title: str = ""
    group_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class TimeEntryRecord:
    external_id: str
    hours: Decimal
    agent_external_id: str | None = None
    billable: bool = True
    note: str = ""
    executed_at: datetime | None = None


@dataclass(frozen=True)
class ConversationRecord:
    """One public reply or private note on a ticket (text with HTML stripped; HTML kept)."""

    external_id: str
    private: bool
    body_text: str
    body_html: str = ""
    author: str = ""
    incoming: bool = False
    created_at: datetime | None = None


@dataclass(frozen=True)
class TicketRecord:
    source: str
    external_id: str
    subject: str
    #: Normalised status (open, pending, resolved, closed, waiting_customer, on_hold,
    #: customer_replied, ...), from the provider's configurable map.
    status: str
    priority: str
    company_external_id: str | None = None
    number: str = ""
    description_html: str = ""
    description_text: str = ""
    status_raw: str = ""
    priority_raw: int | None = None
    ticket_type: str = "Incident"
    requester_external_id: str | None = None
    requester_name: str = ""
    requester_email: str = ""
    responder_external_id: str | None = None
    group_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    closed_at: datetime | None = None
    fr_due_by: datetime | None = None
    due_by: datetime | None = None
    first_responded_at: datetime | None = None
    agent_responded_at: datetime | None = None
    #: None means "not fetched in this run": the stored entries are kept as they are.
    time_entries: tuple[TimeEntryRecord, ...] | None = None
    conversations: tuple[ConversationRecord, ...] | None = None


@dataclass(frozen=True)
class SiteRecord:
    """An RMM site, linked to a company by the account number it carries (or not at all)."""

    source: str
    external_id: str
    name: str
    account_number: str | None = None


@dataclass(frozen=True)
class DeviceRecord:
    """An RMM device; ``device_category`` is the RMM's own word, mapped to a billing type."""

    source: str
    external_id: str
    site_external_id: str
    hostname: str
    device_category: str = ""
    operating_system: str = ""
    serial_number: str = ""
    model: str = ""
    manufacturer: str = ""
    internal_ip: str = ""
    external_ip: str = ""
    online: bool = False
    last_seen: datetime | None = None
    last_reboot: datetime | None = None
    last_audit: datetime | None = None
    last_logged_in_user: str = ""
    domain: str = ""
    antivirus_product: str = ""
    patch_status: str = ""
    description: str = ""
    portal_url: str = ""
    web_remote_url: str = ""
    backup_bytes: int | None = None
    warranty_expiry: date | None = None
    udfs: dict[str, str] = field(default_factory=dict)


@dataclass
class SyncCounts:
    """What one sync run did, per kind of object."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    retired: int = 0
    failed: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "retired": self.retired, "failed": self.failed}


@dataclass
class RecordFailure:
    """One record the connector or the store could not take; the rest of the run goes on."""

    kind: str
    external_id: str
    reason: str
    payload: Any = None
