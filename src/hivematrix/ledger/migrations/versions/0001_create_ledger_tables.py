"""Create Ledger's tables: plans, overrides, snapshots (immutable by trigger), schedule, jobs.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from hivematrix.common.db import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_asset_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_number", sa.String(length=50), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("billing_type", sa.String(length=50), nullable=False),
        sa.Column("custom_cost", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_number", "asset_id"),
    )
    with op.batch_alter_table("ledger_asset_overrides", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_asset_overrides_account_number"), ["account_number"], unique=False
        )

    op.create_table(
        "ledger_billing_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_name", sa.String(length=100), nullable=False),
        sa.Column("term_length", sa.String(length=50), nullable=False),
        sa.Column("support_level", sa.String(length=50), nullable=False),
        sa.Column("per_user", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("per_workstation", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("per_server", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("per_vm", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("per_switch", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("per_firewall", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("per_printer", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("per_hour", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("backup_base_workstation", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("backup_base_server", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("backup_included_tb", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("backup_per_tb", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("prepaid_hours_monthly", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("prepaid_hours_yearly", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("plan_name", "term_length"),
    )
    op.create_table(
        "ledger_billing_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_number", sa.String(length=50), nullable=False),
        sa.Column("company_name", sa.String(length=255), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("invoice_number", sa.String(length=80), nullable=False),
        sa.Column("replaces_id", sa.Integer(), nullable=True),
        sa.Column("plan_name", sa.String(length=100), nullable=True),
        sa.Column("contract_term", sa.String(length=50), nullable=True),
        sa.Column("support_level", sa.String(length=50), nullable=True),
        sa.Column("total_users", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("total_assets", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("total_backup", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("total_hours", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("total_custom", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("total_amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("user_count", sa.Integer(), nullable=False),
        sa.Column("asset_count", sa.Integer(), nullable=False),
        sa.Column("billable_hours", sa.Numeric(precision=12, scale=4), nullable=False),
        sa.Column("invoice_date", sa.String(length=10), nullable=False),
        sa.Column("due_date", sa.String(length=10), nullable=False),
        sa.Column("receipt_json", sa.JSON(), nullable=False),
        sa.Column("invoice_csv", sa.Text(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("accepted_by", sa.String(length=150), nullable=False),
        sa.Column("accepted_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["replaces_id"],
            ["ledger_billing_snapshots.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_number", "year", "month", "revision"),
        sa.UniqueConstraint("invoice_number"),
    )
    with op.batch_alter_table("ledger_billing_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_billing_snapshots_accepted_at"), ["accepted_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ledger_billing_snapshots_account_number"),
            ["account_number"],
            unique=False,
        )

    op.create_table(
        "ledger_client_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_number", sa.String(length=50), nullable=False),
        sa.Column("plan_name", sa.String(length=100), nullable=True),
        sa.Column("plan_name_enabled", sa.Boolean(), nullable=False),
        sa.Column("support_level", sa.String(length=50), nullable=True),
        sa.Column("support_level_enabled", sa.Boolean(), nullable=False),
        sa.Column("per_user", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("per_user_enabled", sa.Boolean(), nullable=False),
        sa.Column("per_workstation", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("per_workstation_enabled", sa.Boolean(), nullable=False),
        sa.Column("per_server", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("per_server_enabled", sa.Boolean(), nullable=False),
        sa.Column("per_vm", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("per_vm_enabled", sa.Boolean(), nullable=False),
        sa.Column("per_switch", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("per_switch_enabled", sa.Boolean(), nullable=False),
        sa.Column("per_firewall", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("per_firewall_enabled", sa.Boolean(), nullable=False),
        sa.Column("per_printer", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("per_printer_enabled", sa.Boolean(), nullable=False),
        sa.Column("per_hour", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("per_hour_enabled", sa.Boolean(), nullable=False),
        sa.Column("backup_base_workstation", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("backup_base_workstation_enabled", sa.Boolean(), nullable=False),
        sa.Column("backup_base_server", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("backup_base_server_enabled", sa.Boolean(), nullable=False),
        sa.Column("backup_included_tb", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("backup_included_tb_enabled", sa.Boolean(), nullable=False),
        sa.Column("backup_per_tb", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("backup_per_tb_enabled", sa.Boolean(), nullable=False),
        sa.Column("prepaid_hours_monthly", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("prepaid_hours_monthly_enabled", sa.Boolean(), nullable=False),
        sa.Column("prepaid_hours_yearly", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("prepaid_hours_yearly_enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_number"),
    )
    op.create_table(
        "ledger_custom_line_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_number", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("start_period", sa.String(length=7), nullable=True),
        sa.Column("end_period", sa.String(length=7), nullable=True),
        sa.Column("one_off_period", sa.String(length=7), nullable=True),
        sa.Column("yearly_month", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ledger_custom_line_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_custom_line_items_account_number"),
            ["account_number"],
            unique=False,
        )

    op.create_table(
        "ledger_feature_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_number", sa.String(length=50), nullable=False),
        sa.Column("feature_key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_number", "feature_key"),
    )
    with op.batch_alter_table("ledger_feature_overrides", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_feature_overrides_account_number"),
            ["account_number"],
            unique=False,
        )

    op.create_table(
        "ledger_manual_assets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_number", sa.String(length=50), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("billing_type", sa.String(length=50), nullable=False),
        sa.Column("custom_cost", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ledger_manual_assets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_manual_assets_account_number"), ["account_number"], unique=False
        )

    op.create_table(
        "ledger_manual_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_number", sa.String(length=50), nullable=False),
        sa.Column("full_name", sa.String(length=255), nullable=False),
        sa.Column("billing_type", sa.String(length=20), nullable=False),
        sa.Column("custom_cost", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ledger_manual_users", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_manual_users_account_number"), ["account_number"], unique=False
        )

    op.create_table(
        "ledger_scheduled_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("day_of_month", sa.Integer(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("account_numbers", sa.JSON(), nullable=True),
        sa.Column("last_run_period", sa.String(length=7), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "ledger_snapshot_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("triggered_by", sa.String(length=150), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ledger_snapshot_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_snapshot_jobs_created_at"), ["created_at"], unique=False
        )

    op.create_table(
        "ledger_user_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_number", sa.String(length=50), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("billing_type", sa.String(length=20), nullable=False),
        sa.Column("custom_cost", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_number", "contact_id"),
    )
    with op.batch_alter_table("ledger_user_overrides", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_user_overrides_account_number"), ["account_number"], unique=False
        )

    op.create_table(
        "ledger_snapshot_line_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("section", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=16, scale=4), nullable=False),
        sa.Column("rate", sa.Numeric(precision=14, scale=4), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["ledger_billing_snapshots.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ledger_snapshot_line_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_snapshot_line_items_snapshot_id"), ["snapshot_id"], unique=False
        )

    op.create_table(
        "ledger_snapshot_voids",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("voided_by", sa.String(length=150), nullable=False),
        sa.Column("voided_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["ledger_billing_snapshots.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("snapshot_id"),
    )

    _create_immutability()


def downgrade() -> None:
    _drop_immutability()
    op.drop_table("ledger_snapshot_voids")
    with op.batch_alter_table("ledger_snapshot_line_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_snapshot_line_items_snapshot_id"))

    op.drop_table("ledger_snapshot_line_items")
    with op.batch_alter_table("ledger_user_overrides", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_user_overrides_account_number"))

    op.drop_table("ledger_user_overrides")
    with op.batch_alter_table("ledger_snapshot_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_snapshot_jobs_created_at"))

    op.drop_table("ledger_snapshot_jobs")
    op.drop_table("ledger_scheduled_snapshots")
    with op.batch_alter_table("ledger_manual_users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_manual_users_account_number"))

    op.drop_table("ledger_manual_users")
    with op.batch_alter_table("ledger_manual_assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_manual_assets_account_number"))

    op.drop_table("ledger_manual_assets")
    with op.batch_alter_table("ledger_feature_overrides", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_feature_overrides_account_number"))

    op.drop_table("ledger_feature_overrides")
    with op.batch_alter_table("ledger_custom_line_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_custom_line_items_account_number"))

    op.drop_table("ledger_custom_line_items")
    op.drop_table("ledger_client_overrides")
    with op.batch_alter_table("ledger_billing_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_billing_snapshots_account_number"))
        batch_op.drop_index(batch_op.f("ix_ledger_billing_snapshots_accepted_at"))

    op.drop_table("ledger_billing_snapshots")
    op.drop_table("ledger_billing_plans")
    with op.batch_alter_table("ledger_asset_overrides", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_asset_overrides_account_number"))

    op.drop_table("ledger_asset_overrides")


#: Rows that are a record of what was billed: the database itself refuses to change them.
IMMUTABLE = ("ledger_billing_snapshots", "ledger_snapshot_line_items", "ledger_snapshot_voids")
REFUSAL = "ledger snapshots are immutable; void and re-issue instead"


def _create_immutability() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{REFUSAL} (% on %)', TG_OP, TG_TABLE_NAME;
            END $$""")
        for table in IMMUTABLE:
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
            )
        return
    for table in IMMUTABLE:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
            )


def _drop_immutability() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in IMMUTABLE:
            op.execute(f"DROP TRIGGER {table}_immutable ON {table}")
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION ledger_refuse_change()")
        return
    for table in IMMUTABLE:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER {table}_no_{action}")
