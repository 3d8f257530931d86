"""Ledger's tables: plans, the overrides on top of them, and accepted bills (snapshots).

Money is ``Numeric(12, 2)`` read back as :class:`~decimal.Decimal`. Companies live in Codex;
Ledger's rows name them by account number. Snapshot rows are immutable: the migration installs
triggers (PostgreSQL and SQLite) that refuse UPDATE and DELETE on them, so a correction is a
void (a row of its own) plus a re-issued snapshot.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from hivematrix.common.db import UTCDateTime, utcnow
from hivematrix.ledger.inputs import RATE_NAMES

ACCOUNT_MAX = 50
NAME_MAX = 255


def Money() -> Numeric[Decimal]:
    return Numeric(12, 2, asdecimal=True)


class Base(DeclarativeBase):
    """Every table of Ledger; Alembic compares migrations against its metadata."""


class BillingPlan(Base):
    """A plan: unique (plan name, contract term); every rate in :data:`RATE_NAMES`."""

    __tablename__ = "ledger_billing_plans"
    __table_args__ = (UniqueConstraint("plan_name", "term_length"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_name: Mapped[str] = mapped_column(String(100))
    term_length: Mapped[str] = mapped_column(String(50))
    support_level: Mapped[str] = mapped_column(String(50), default="Billed Hourly")
    per_user: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    per_workstation: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    per_server: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    per_vm: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    per_switch: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    per_firewall: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    per_printer: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    per_hour: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    backup_base_workstation: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    backup_base_server: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    backup_included_tb: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    backup_per_tb: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    prepaid_hours_monthly: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    prepaid_hours_yearly: Mapped[Decimal] = mapped_column(Money(), default=Decimal(0))
    #: Display only: feature key → what the plan includes.
    features: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ClientBillingOverride(Base):
    """One company's plan swap, support level and rates, each with its own enable flag."""

    __tablename__ = "ledger_client_overrides"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_number: Mapped[str] = mapped_column(String(ACCOUNT_MAX), unique=True)
    plan_name: Mapped[str | None] = mapped_column(String(100))
    plan_name_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    support_level: Mapped[str | None] = mapped_column(String(50))
    support_level_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    per_user: Mapped[Decimal | None] = mapped_column(Money())
    per_user_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    per_workstation: Mapped[Decimal | None] = mapped_column(Money())
    per_workstation_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    per_server: Mapped[Decimal | None] = mapped_column(Money())
    per_server_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    per_vm: Mapped[Decimal | None] = mapped_column(Money())
    per_vm_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    per_switch: Mapped[Decimal | None] = mapped_column(Money())
    per_switch_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    per_firewall: Mapped[Decimal | None] = mapped_column(Money())
    per_firewall_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    per_printer: Mapped[Decimal | None] = mapped_column(Money())
    per_printer_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    per_hour: Mapped[Decimal | None] = mapped_column(Money())
    per_hour_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    backup_base_workstation: Mapped[Decimal | None] = mapped_column(Money())
    backup_base_workstation_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    backup_base_server: Mapped[Decimal | None] = mapped_column(Money())
    backup_base_server_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    backup_included_tb: Mapped[Decimal | None] = mapped_column(Money())
    backup_included_tb_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    backup_per_tb: Mapped[Decimal | None] = mapped_column(Money())
    backup_per_tb_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    prepaid_hours_monthly: Mapped[Decimal | None] = mapped_column(Money())
    prepaid_hours_monthly_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    prepaid_hours_yearly: Mapped[Decimal | None] = mapped_column(Money())
    prepaid_hours_yearly_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


#: The client override's toggled fields: plan name, support level and every rate.
CLIENT_FIELDS: tuple[str, ...] = ("plan_name", "support_level", *RATE_NAMES)


class AssetOverride(Base):
    __tablename__ = "ledger_asset_overrides"
    __table_args__ = (UniqueConstraint("account_number", "asset_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_number: Mapped[str] = mapped_column(String(ACCOUNT_MAX), index=True)
    #: The Codex asset's id.
    asset_id: Mapped[int] = mapped_column(Integer)
    billing_type: Mapped[str] = mapped_column(String(50))
    custom_cost: Mapped[Decimal | None] = mapped_column(Money())


class UserOverride(Base):
    __tablename__ = "ledger_user_overrides"
    __table_args__ = (UniqueConstraint("account_number", "contact_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_number: Mapped[str] = mapped_column(String(ACCOUNT_MAX), index=True)
    #: The Codex contact's id.
    contact_id: Mapped[int] = mapped_column(Integer)
    billing_type: Mapped[str] = mapped_column(String(20))
    custom_cost: Mapped[Decimal | None] = mapped_column(Money())


class ManualAsset(Base):
    __tablename__ = "ledger_manual_assets"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_number: Mapped[str] = mapped_column(String(ACCOUNT_MAX), index=True)
    hostname: Mapped[str] = mapped_column(String(NAME_MAX))
    billing_type: Mapped[str] = mapped_column(String(50))
    custom_cost: Mapped[Decimal | None] = mapped_column(Money())
    notes: Mapped[str] = mapped_column(Text, default="")


class ManualUser(Base):
    __tablename__ = "ledger_manual_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_number: Mapped[str] = mapped_column(String(ACCOUNT_MAX), index=True)
    full_name: Mapped[str] = mapped_column(String(NAME_MAX))
    billing_type: Mapped[str] = mapped_column(String(20), default="Paid")
    custom_cost: Mapped[Decimal | None] = mapped_column(Money())
    notes: Mapped[str] = mapped_column(Text, default="")


class CustomLineItem(Base):
    """A fee of an explicit ``kind``: recurring (optional start/end "YYYY-MM"), one-off (its
    "YYYY-MM") or yearly (its month, optionally within start/end)."""

    __tablename__ = "ledger_custom_line_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_number: Mapped[str] = mapped_column(String(ACCOUNT_MAX), index=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(20))
    amount: Mapped[Decimal] = mapped_column(Money())
    start_period: Mapped[str | None] = mapped_column(String(7))
    end_period: Mapped[str | None] = mapped_column(String(7))
    one_off_period: Mapped[str | None] = mapped_column(String(7))
    yearly_month: Mapped[int | None] = mapped_column(Integer)


class FeatureOverride(Base):
    """Display only: what one company gets for a feature instead of the plan's value."""

    __tablename__ = "ledger_feature_overrides"
    __table_args__ = (UniqueConstraint("account_number", "feature_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_number: Mapped[str] = mapped_column(String(ACCOUNT_MAX), index=True)
    feature_key: Mapped[str] = mapped_column(String(100))
    value: Mapped[str] = mapped_column(String(NAME_MAX))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class BillingSnapshot(Base):
    """An accepted bill, as it was: totals, the receipt JSON and the exact invoice CSV.

    Never updated or deleted (database triggers refuse it). ``revision`` is 0 for the first
    acceptance of a period and n for the n-th re-issue after voids.
    """

    __tablename__ = "ledger_billing_snapshots"
    __table_args__ = (UniqueConstraint("account_number", "year", "month", "revision"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_number: Mapped[str] = mapped_column(String(ACCOUNT_MAX), index=True)
    company_name: Mapped[str] = mapped_column(String(NAME_MAX))
    year: Mapped[int] = mapped_column(Integer)
    month: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    invoice_number: Mapped[str] = mapped_column(String(80), unique=True)
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_billing_snapshots.id"))
    plan_name: Mapped[str | None] = mapped_column(String(100))
    contract_term: Mapped[str | None] = mapped_column(String(50))
    support_level: Mapped[str | None] = mapped_column(String(50))
    total_users: Mapped[Decimal] = mapped_column(Money())
    total_assets: Mapped[Decimal] = mapped_column(Money())
    total_backup: Mapped[Decimal] = mapped_column(Money())
    total_hours: Mapped[Decimal] = mapped_column(Money())
    total_custom: Mapped[Decimal] = mapped_column(Money())
    total_amount: Mapped[Decimal] = mapped_column(Money())
    user_count: Mapped[int] = mapped_column(Integer)
    asset_count: Mapped[int] = mapped_column(Integer)
    billable_hours: Mapped[Decimal] = mapped_column(Numeric(12, 4, asdecimal=True))
    invoice_date: Mapped[str] = mapped_column(String(10))
    due_date: Mapped[str] = mapped_column(String(10))
    receipt_json: Mapped[dict[str, Any]] = mapped_column(JSON)
    invoice_csv: Mapped[str] = mapped_column(Text)
    notes: Mapped[str] = mapped_column(Text, default="")
    accepted_by: Mapped[str] = mapped_column(String(150))
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    line_items: Mapped[list[SnapshotLineItem]] = relationship(
        back_populates="snapshot", order_by="SnapshotLineItem.position")
    void: Mapped[SnapshotVoid | None] = relationship(back_populates="snapshot")


class SnapshotLineItem(Base):
    """One line of an accepted bill (immutable, like its snapshot)."""

    __tablename__ = "ledger_snapshot_line_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("ledger_billing_snapshots.id"),
                                             index=True)
    position: Mapped[int] = mapped_column(Integer)
    section: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    type: Mapped[str] = mapped_column(String(50))
    source: Mapped[str] = mapped_column(String(20))
    #: TB of backup overage can carry many decimals; the receipt JSON keeps the exact value.
    quantity: Mapped[Decimal] = mapped_column(Numeric(16, 4, asdecimal=True))
    rate: Mapped[Decimal] = mapped_column(Numeric(14, 4, asdecimal=True))
    amount: Mapped[Decimal] = mapped_column(Money())
    ref: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(Text, default="")

    snapshot: Mapped[BillingSnapshot] = relationship(back_populates="line_items")


class SnapshotVoid(Base):
    """That a snapshot was voided, by whom and why (the snapshot itself stays as it was)."""

    __tablename__ = "ledger_snapshot_voids"

    id: Mapped[int] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("ledger_billing_snapshots.id"),
                                             unique=True)
    reason: Mapped[str] = mapped_column(Text)
    voided_by: Mapped[str] = mapped_column(String(150))
    voided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    snapshot: Mapped[BillingSnapshot] = relationship(back_populates="void")


#: Tables whose rows the database refuses to change or delete.
IMMUTABLE_TABLES = (BillingSnapshot.__tablename__, SnapshotLineItem.__tablename__,
                    SnapshotVoid.__tablename__)


class ScheduledSnapshot(Base):
    """When the scheduler accepts bills: day of month, hour, which period and companies."""

    __tablename__ = "ledger_scheduled_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    day_of_month: Mapped[int] = mapped_column(Integer, default=1)
    hour: Mapped[int] = mapped_column(Integer, default=2)
    #: "previous" or "current" month.
    period: Mapped[str] = mapped_column(String(10), default="previous")
    #: None: every company; else the account numbers to snapshot.
    account_numbers: Mapped[list[str] | None] = mapped_column(JSON)
    last_run_period: Mapped[str | None] = mapped_column(String(7))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SnapshotJob(Base):
    """One run of accepting many bills: progress, counts, errors, who or what started it."""

    __tablename__ = "ledger_snapshot_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column(Integer)
    month: Mapped[int] = mapped_column(Integer)
    #: queued, running, finished, failed.
    status: Mapped[str] = mapped_column(String(20), default="queued")
    #: "manual" or "schedule".
    trigger: Mapped[str] = mapped_column(String(20))
    triggered_by: Mapped[str] = mapped_column(String(150))
    total: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
