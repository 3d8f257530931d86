"""Codex's tables: the MSP's master data and what the sync jobs record about themselves.

Companies are addressed by ``account_number`` in every API, but rows link by an integer id so
an account number can be corrected without rewriting every child row. External ids from
vendors are strings (vendors use 64-bit integers, GUIDs or both) and are unique per source,
which is what makes a re-sync idempotent. Every datetime is timezone-aware UTC.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from hivematrix.common.db import UTCDateTime, utcnow

COMPLIANCE_LEVELS = ("standard", "hipaa", "cjis")
CONTRACT_TERMS = ("Month to Month", "1 Year", "2 Year", "3 Year")
CONTACT_ROLES = ("primary", "billing", "technical", "general")
ASSET_SOURCES = ("rmm", "manual", "import")
NETWORK_KINDS = ("router", "switch", "firewall", "access_point")
LINK_KINDS = ("uplink", "port")
SYNC_KINDS = ("psa", "tickets", "rmm", "agents")
SYNC_STATES = ("running", "succeeded", "partial", "failed")


class Base(DeclarativeBase):
    """Every table of this service; Alembic compares migrations against its metadata."""


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Company(Timestamps, Base):
    __tablename__ = "codex_companies"
    __table_args__ = (UniqueConstraint("psa_source", "psa_external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_number: Mapped[str] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("codex_companies.id"), index=True)
    compliance_level: Mapped[str] = mapped_column(String(20), default="standard", index=True)
    billing_plan: Mapped[str | None] = mapped_column(String(100), index=True)
    contract_term_length: Mapped[str | None] = mapped_column(String(20))
    contract_start_date: Mapped[date | None] = mapped_column(Date)
    contract_end_date: Mapped[date | None] = mapped_column(Date)
    support_level: Mapped[str | None] = mapped_column(String(50))
    domains: Mapped[list[str]] = mapped_column(JSON, default=list)
    main_phone: Mapped[str] = mapped_column(String(50), default="")
    address: Mapped[str] = mapped_column(Text, default="")
    psa_source: Mapped[str | None] = mapped_column(String(20))
    psa_external_id: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    parent: Mapped[Company | None] = relationship(remote_side="Company.id",
                                                  back_populates="children")
    children: Mapped[list[Company]] = relationship(back_populates="parent")
    locations: Mapped[list[Location]] = relationship(back_populates="company",
                                                     order_by="Location.name")


class Contact(Timestamps, Base):
    __tablename__ = "codex_contacts"
    __table_args__ = (UniqueConstraint("external_source", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    first_name: Mapped[str] = mapped_column(String(120), default="")
    last_name: Mapped[str] = mapped_column(String(120), default="")
    #: Lower-cased; not unique (the same address can be in two PSAs), but indexed for lookups.
    email: Mapped[str | None] = mapped_column(String(255), index=True)
    secondary_emails: Mapped[list[str]] = mapped_column(JSON, default=list)
    work_phone: Mapped[str] = mapped_column(String(50), default="")
    mobile_phone: Mapped[str] = mapped_column(String(50), default="")
    title: Mapped[str] = mapped_column(String(150), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    vip: Mapped[bool] = mapped_column(Boolean, default=False)
    external_source: Mapped[str | None] = mapped_column(String(20))
    external_id: Mapped[str | None] = mapped_column(String(64))

    roles: Mapped[list[ContactRole]] = relationship(back_populates="contact",
                                                    cascade="all, delete-orphan")


class ContactRole(Base):
    """A contact's role at a company; a contact can work for several companies."""

    __tablename__ = "codex_contact_roles"

    contact_id: Mapped[int] = mapped_column(ForeignKey("codex_contacts.id"), primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("codex_companies.id"), primary_key=True,
                                            index=True)
    role: Mapped[str] = mapped_column(String(20), primary_key=True)

    contact: Mapped[Contact] = relationship(back_populates="roles")
    company: Mapped[Company] = relationship()


class Location(Timestamps, Base):
    __tablename__ = "codex_locations"
    __table_args__ = (UniqueConstraint("company_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("codex_companies.id"), index=True)
    name: Mapped[str] = mapped_column(String(150))
    address: Mapped[str] = mapped_column(Text, default="")
    phone: Mapped[str] = mapped_column(String(50), default="")

    company: Mapped[Company] = relationship(back_populates="locations")


class RMMSite(Timestamps, Base):
    """An RMM site and the company its ``AccountNumber`` variable links it to (if any)."""

    __tablename__ = "codex_rmm_sites"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("codex_companies.id"), index=True)


class Asset(Timestamps, Base):
    __tablename__ = "codex_assets"
    __table_args__ = (UniqueConstraint("rmm_source", "rmm_device_id"),
                      Index("ix_codex_assets_company_retired", "company_id", "retired_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("codex_companies.id"), index=True)
    hostname: Mapped[str] = mapped_column(String(255), index=True)
    device_category: Mapped[str] = mapped_column(String(100), default="")
    #: Derived from the category by the configured map, unless ``billing_type_override`` is set.
    billing_type: Mapped[str] = mapped_column(String(30), index=True)
    billing_type_override: Mapped[str | None] = mapped_column(String(30))
    #: True when the category was not in the map and the default was used: worth a look.
    billing_type_unmapped: Mapped[bool] = mapped_column(Boolean, default=False)
    operating_system: Mapped[str] = mapped_column(String(255), default="")
    serial_number: Mapped[str] = mapped_column(String(100), default="", index=True)
    model: Mapped[str] = mapped_column(String(150), default="")
    manufacturer: Mapped[str] = mapped_column(String(150), default="")
    purchase_date: Mapped[date | None] = mapped_column(Date)
    warranty_expiry: Mapped[date | None] = mapped_column(Date, index=True)
    internal_ip: Mapped[str] = mapped_column(String(100), default="")
    external_ip: Mapped[str] = mapped_column(String(100), default="")
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_reboot: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_audit: Mapped[datetime | None] = mapped_column(UTCDateTime)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    patch_status: Mapped[str] = mapped_column(String(50), default="")
    antivirus_product: Mapped[str] = mapped_column(String(150), default="")
    last_logged_in_user: Mapped[str] = mapped_column(String(255), default="")
    domain: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    portal_url: Mapped[str] = mapped_column(String(500), default="")
    web_remote_url: Mapped[str] = mapped_column(String(500), default="")
    backup_bytes: Mapped[int | None] = mapped_column(BigInteger)
    udfs: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(20), default="manual")
    rmm_source: Mapped[str | None] = mapped_column(String(20))
    rmm_device_id: Mapped[str | None] = mapped_column(String(64))
    rmm_site_id: Mapped[int | None] = mapped_column(ForeignKey("codex_rmm_sites.id"), index=True)
    #: Set when the device vanished from the RMM: kept for history and billing, not deleted.
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    company: Mapped[Company] = relationship()
    contacts: Mapped[list[Contact]] = relationship(secondary="codex_asset_contacts")


class AssetContact(Base):
    __tablename__ = "codex_asset_contacts"

    asset_id: Mapped[int] = mapped_column(ForeignKey("codex_assets.id"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("codex_contacts.id"), primary_key=True,
                                            index=True)


class NetworkDevice(Timestamps, Base):
    __tablename__ = "codex_network_devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("codex_companies.id"), index=True)
    location_id: Mapped[int | None] = mapped_column(ForeignKey("codex_locations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    name: Mapped[str] = mapped_column(String(150))
    management_ip: Mapped[str] = mapped_column(String(100), default="")
    manufacturer: Mapped[str] = mapped_column(String(150), default="")
    model: Mapped[str] = mapped_column(String(150), default="")
    firmware: Mapped[str] = mapped_column(String(100), default="")
    serial_number: Mapped[str] = mapped_column(String(100), default="")
    notes: Mapped[str] = mapped_column(Text, default="")

    company: Mapped[Company] = relationship()
    location: Mapped[Location | None] = relationship()


class NetworkLink(Base):
    """A cable between two devices: ``from`` is the downstream side of an uplink."""

    __tablename__ = "codex_network_links"
    __table_args__ = (UniqueConstraint("from_device_id", "from_port"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    from_device_id: Mapped[int] = mapped_column(ForeignKey("codex_network_devices.id"))
    from_port: Mapped[str] = mapped_column(String(50), default="")
    to_device_id: Mapped[int] = mapped_column(ForeignKey("codex_network_devices.id"), index=True)
    to_port: Mapped[str] = mapped_column(String(50), default="")
    kind: Mapped[str] = mapped_column(String(20), default="uplink")


class PSAAgent(Timestamps, Base):
    __tablename__ = "codex_psa_agents"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(255), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    job_title: Mapped[str] = mapped_column(String(150), default="")
    group_ids: Mapped[list[str]] = mapped_column(JSON, default=list)


class Ticket(Base):
    __tablename__ = "codex_tickets"
    __table_args__ = (UniqueConstraint("source", "external_id"),
                      Index("ix_codex_tickets_company_created", "company_id", "created_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(20), index=True)
    external_id: Mapped[str] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(50), default="")
    company_id: Mapped[int | None] = mapped_column(ForeignKey("codex_companies.id"))
    subject: Mapped[str] = mapped_column(String(500), default="")
    description_html: Mapped[str] = mapped_column(Text, default="")
    description_text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(40), index=True)
    status_raw: Mapped[str] = mapped_column(String(40), default="")
    priority: Mapped[str] = mapped_column(String(20), index=True)
    priority_raw: Mapped[int | None] = mapped_column(Integer)
    ticket_type: Mapped[str] = mapped_column(String(50), default="Incident")
    requester_external_id: Mapped[str | None] = mapped_column(String(64))
    requester_name: Mapped[str] = mapped_column(String(255), default="")
    requester_email: Mapped[str] = mapped_column(String(255), default="")
    responder_external_id: Mapped[str | None] = mapped_column(String(64), index=True)
    group_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fr_due_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    agent_responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    total_hours: Mapped[Decimal] = mapped_column(Numeric(10, 2), default=Decimal("0"))
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    company: Mapped[Company | None] = relationship()
    time_entries: Mapped[list[TimeEntry]] = relationship(back_populates="ticket",
                                                         cascade="all, delete-orphan")
    conversations: Mapped[list[Conversation]] = relationship(
        back_populates="ticket", cascade="all, delete-orphan", order_by="Conversation.created_at")


class TimeEntry(Base):
    __tablename__ = "codex_time_entries"
    __table_args__ = (UniqueConstraint("ticket_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("codex_tickets.id"))
    external_id: Mapped[str] = mapped_column(String(64))
    agent_external_id: Mapped[str | None] = mapped_column(String(64))
    hours: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    billable: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str] = mapped_column(Text, default="")
    executed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    ticket: Mapped[Ticket] = relationship(back_populates="time_entries")


class Conversation(Base):
    __tablename__ = "codex_conversations"
    __table_args__ = (UniqueConstraint("ticket_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("codex_tickets.id"))
    external_id: Mapped[str] = mapped_column(String(64))
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    incoming: Mapped[bool] = mapped_column(Boolean, default=False)
    author: Mapped[str] = mapped_column(String(255), default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    ticket: Mapped[Ticket] = relationship(back_populates="conversations")


class Agent(Timestamps, Base):
    """A HiveMatrix staff member (from the IdP) and their display preferences."""

    __tablename__ = "codex_agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), unique=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    email: Mapped[str] = mapped_column(String(255), default="")
    name: Mapped[str] = mapped_column(String(255), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    theme: Mapped[str] = mapped_column(String(10), default="system")
    home_page: Mapped[str] = mapped_column(String(40), default="beacon")
    color_theme: Mapped[str] = mapped_column(String(10), default="purple",
                                             server_default="purple")
    knowledge_tree_view: Mapped[str] = mapped_column(String(10), default="grid",
                                                     server_default="grid")
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SyncJob(Base):
    """One run of a sync: who or what started it, what it did, and its whole log."""

    __tablename__ = "codex_sync_jobs"
    __table_args__ = (Index("ix_codex_sync_jobs_kind_started", "kind", "started_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    provider: Mapped[str] = mapped_column(String(20))
    full: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="running", index=True)
    triggered_by: Mapped[str] = mapped_column(String(150), default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    log: Mapped[str] = mapped_column(Text, default="")


class ScheduleClaim(Base):
    """Who ran a scheduled sync for one due time: the primary key makes it exactly one."""

    __tablename__ = "codex_schedule_claims"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    claimed_by: Mapped[str] = mapped_column(String(150))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    job_id: Mapped[str | None] = mapped_column(String(36))
