"""Create Codex's tables: master data, tickets, agents, sync jobs and schedule claims.

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
        "codex_agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("username", sa.String(length=150), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("theme", sa.String(length=10), nullable=False),
        sa.Column("home_page", sa.String(length=40), nullable=False),
        sa.Column("last_synced_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subject"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "codex_companies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_number", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("compliance_level", sa.String(length=20), nullable=False),
        sa.Column("billing_plan", sa.String(length=100), nullable=True),
        sa.Column("contract_term_length", sa.String(length=20), nullable=True),
        sa.Column("contract_start_date", sa.Date(), nullable=True),
        sa.Column("contract_end_date", sa.Date(), nullable=True),
        sa.Column("support_level", sa.String(length=50), nullable=True),
        sa.Column("domains", sa.JSON(), nullable=False),
        sa.Column("main_phone", sa.String(length=50), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("psa_source", sa.String(length=20), nullable=True),
        sa.Column("psa_external_id", sa.String(length=64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("archived_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["codex_companies.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_number"),
        sa.UniqueConstraint("psa_source", "psa_external_id"),
    )
    with op.batch_alter_table("codex_companies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_codex_companies_active"), ["active"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_codex_companies_billing_plan"), ["billing_plan"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_codex_companies_compliance_level"), ["compliance_level"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_codex_companies_name"), ["name"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_codex_companies_parent_id"), ["parent_id"], unique=False
        )

    op.create_table(
        "codex_contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("first_name", sa.String(length=120), nullable=False),
        sa.Column("last_name", sa.String(length=120), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("secondary_emails", sa.JSON(), nullable=False),
        sa.Column("work_phone", sa.String(length=50), nullable=False),
        sa.Column("mobile_phone", sa.String(length=50), nullable=False),
        sa.Column("title", sa.String(length=150), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("vip", sa.Boolean(), nullable=False),
        sa.Column("external_source", sa.String(length=20), nullable=True),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("external_source", "external_id"),
    )
    with op.batch_alter_table("codex_contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_codex_contacts_active"), ["active"], unique=False)
        batch_op.create_index(batch_op.f("ix_codex_contacts_email"), ["email"], unique=False)
        batch_op.create_index(batch_op.f("ix_codex_contacts_name"), ["name"], unique=False)

    op.create_table(
        "codex_psa_agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("job_title", sa.String(length=150), nullable=False),
        sa.Column("group_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "external_id"),
    )
    op.create_table(
        "codex_schedule_claims",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(length=150), nullable=False),
        sa.Column("claimed_at", UTCDateTime(), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("name", "due_at"),
    )
    op.create_table(
        "codex_sync_jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("triggered_by", sa.String(length=150), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("log", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("codex_sync_jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_codex_sync_jobs_kind_started", ["kind", "started_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_codex_sync_jobs_status"), ["status"], unique=False)

    op.create_table(
        "codex_contact_roles",
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["codex_companies.id"],
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["codex_contacts.id"],
        ),
        sa.PrimaryKeyConstraint("contact_id", "company_id", "role"),
    )
    with op.batch_alter_table("codex_contact_roles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_codex_contact_roles_company_id"), ["company_id"], unique=False
        )

    op.create_table(
        "codex_locations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=150), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("phone", sa.String(length=50), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["codex_companies.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("company_id", "name"),
    )
    with op.batch_alter_table("codex_locations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_codex_locations_company_id"), ["company_id"], unique=False
        )

    op.create_table(
        "codex_rmm_sites",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["codex_companies.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "external_id"),
    )
    with op.batch_alter_table("codex_rmm_sites", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_codex_rmm_sites_company_id"), ["company_id"], unique=False
        )

    op.create_table(
        "codex_tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=50), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("description_html", sa.Text(), nullable=False),
        sa.Column("description_text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("status_raw", sa.String(length=40), nullable=False),
        sa.Column("priority", sa.String(length=20), nullable=False),
        sa.Column("priority_raw", sa.Integer(), nullable=True),
        sa.Column("ticket_type", sa.String(length=50), nullable=False),
        sa.Column("requester_external_id", sa.String(length=64), nullable=True),
        sa.Column("requester_name", sa.String(length=255), nullable=False),
        sa.Column("requester_email", sa.String(length=255), nullable=False),
        sa.Column("responder_external_id", sa.String(length=64), nullable=True),
        sa.Column("group_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=True),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("fr_due_by", UTCDateTime(), nullable=True),
        sa.Column("due_by", UTCDateTime(), nullable=True),
        sa.Column("first_responded_at", UTCDateTime(), nullable=True),
        sa.Column("agent_responded_at", UTCDateTime(), nullable=True),
        sa.Column("total_hours", sa.Numeric(precision=10, scale=2), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["codex_companies.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "external_id"),
    )
    with op.batch_alter_table("codex_tickets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_codex_tickets_company_created", ["company_id", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_codex_tickets_group_id"), ["group_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_codex_tickets_priority"), ["priority"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_codex_tickets_responder_external_id"),
            ["responder_external_id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_codex_tickets_source"), ["source"], unique=False)
        batch_op.create_index(batch_op.f("ix_codex_tickets_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_codex_tickets_updated_at"), ["updated_at"], unique=False
        )

    op.create_table(
        "codex_assets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("device_category", sa.String(length=100), nullable=False),
        sa.Column("billing_type", sa.String(length=30), nullable=False),
        sa.Column("billing_type_override", sa.String(length=30), nullable=True),
        sa.Column("billing_type_unmapped", sa.Boolean(), nullable=False),
        sa.Column("operating_system", sa.String(length=255), nullable=False),
        sa.Column("serial_number", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=150), nullable=False),
        sa.Column("manufacturer", sa.String(length=150), nullable=False),
        sa.Column("purchase_date", sa.Date(), nullable=True),
        sa.Column("warranty_expiry", sa.Date(), nullable=True),
        sa.Column("internal_ip", sa.String(length=100), nullable=False),
        sa.Column("external_ip", sa.String(length=100), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=True),
        sa.Column("last_reboot", UTCDateTime(), nullable=True),
        sa.Column("last_audit", UTCDateTime(), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("patch_status", sa.String(length=50), nullable=False),
        sa.Column("antivirus_product", sa.String(length=150), nullable=False),
        sa.Column("last_logged_in_user", sa.String(length=255), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("portal_url", sa.String(length=500), nullable=False),
        sa.Column("web_remote_url", sa.String(length=500), nullable=False),
        sa.Column("backup_bytes", sa.BigInteger(), nullable=True),
        sa.Column("udfs", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("rmm_source", sa.String(length=20), nullable=True),
        sa.Column("rmm_device_id", sa.String(length=64), nullable=True),
        sa.Column("rmm_site_id", sa.Integer(), nullable=True),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["codex_companies.id"],
        ),
        sa.ForeignKeyConstraint(
            ["rmm_site_id"],
            ["codex_rmm_sites.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rmm_source", "rmm_device_id"),
    )
    with op.batch_alter_table("codex_assets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_codex_assets_billing_type"), ["billing_type"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_codex_assets_company_id"), ["company_id"], unique=False
        )
        batch_op.create_index(
            "ix_codex_assets_company_retired", ["company_id", "retired_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_codex_assets_hostname"), ["hostname"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_codex_assets_rmm_site_id"), ["rmm_site_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_codex_assets_serial_number"), ["serial_number"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_codex_assets_warranty_expiry"), ["warranty_expiry"], unique=False
        )

    op.create_table(
        "codex_conversations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("incoming", sa.Boolean(), nullable=False),
        sa.Column("author", sa.String(length=255), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["codex_tickets.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ticket_id", "external_id"),
    )
    op.create_table(
        "codex_network_devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("location_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=150), nullable=False),
        sa.Column("management_ip", sa.String(length=100), nullable=False),
        sa.Column("manufacturer", sa.String(length=150), nullable=False),
        sa.Column("model", sa.String(length=150), nullable=False),
        sa.Column("firmware", sa.String(length=100), nullable=False),
        sa.Column("serial_number", sa.String(length=100), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["codex_companies.id"],
        ),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["codex_locations.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("codex_network_devices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_codex_network_devices_company_id"), ["company_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_codex_network_devices_kind"), ["kind"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_codex_network_devices_location_id"), ["location_id"], unique=False
        )

    op.create_table(
        "codex_time_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("agent_external_id", sa.String(length=64), nullable=True),
        sa.Column("hours", sa.Numeric(precision=8, scale=2), nullable=False),
        sa.Column("billable", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("executed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["codex_tickets.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ticket_id", "external_id"),
    )
    op.create_table(
        "codex_asset_contacts",
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["codex_assets.id"],
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["codex_contacts.id"],
        ),
        sa.PrimaryKeyConstraint("asset_id", "contact_id"),
    )
    with op.batch_alter_table("codex_asset_contacts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_codex_asset_contacts_contact_id"), ["contact_id"], unique=False
        )

    op.create_table(
        "codex_network_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("from_device_id", sa.Integer(), nullable=False),
        sa.Column("from_port", sa.String(length=50), nullable=False),
        sa.Column("to_device_id", sa.Integer(), nullable=False),
        sa.Column("to_port", sa.String(length=50), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["from_device_id"],
            ["codex_network_devices.id"],
        ),
        sa.ForeignKeyConstraint(
            ["to_device_id"],
            ["codex_network_devices.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("from_device_id", "from_port"),
    )
    with op.batch_alter_table("codex_network_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_codex_network_links_to_device_id"), ["to_device_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("codex_network_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_codex_network_links_to_device_id"))

    op.drop_table("codex_network_links")
    with op.batch_alter_table("codex_asset_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_codex_asset_contacts_contact_id"))

    op.drop_table("codex_asset_contacts")
    op.drop_table("codex_time_entries")
    with op.batch_alter_table("codex_network_devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_codex_network_devices_location_id"))
        batch_op.drop_index(batch_op.f("ix_codex_network_devices_kind"))
        batch_op.drop_index(batch_op.f("ix_codex_network_devices_company_id"))

    op.drop_table("codex_network_devices")
    op.drop_table("codex_conversations")
    with op.batch_alter_table("codex_assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_codex_assets_warranty_expiry"))
        batch_op.drop_index(batch_op.f("ix_codex_assets_serial_number"))
        batch_op.drop_index(batch_op.f("ix_codex_assets_rmm_site_id"))
        batch_op.drop_index(batch_op.f("ix_codex_assets_hostname"))
        batch_op.drop_index("ix_codex_assets_company_retired")
        batch_op.drop_index(batch_op.f("ix_codex_assets_company_id"))
        batch_op.drop_index(batch_op.f("ix_codex_assets_billing_type"))

    op.drop_table("codex_assets")
    with op.batch_alter_table("codex_tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_codex_tickets_updated_at"))
        batch_op.drop_index(batch_op.f("ix_codex_tickets_status"))
        batch_op.drop_index(batch_op.f("ix_codex_tickets_source"))
        batch_op.drop_index(batch_op.f("ix_codex_tickets_responder_external_id"))
        batch_op.drop_index(batch_op.f("ix_codex_tickets_priority"))
        batch_op.drop_index(batch_op.f("ix_codex_tickets_group_id"))
        batch_op.drop_index("ix_codex_tickets_company_created")

    op.drop_table("codex_tickets")
    with op.batch_alter_table("codex_rmm_sites", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_codex_rmm_sites_company_id"))

    op.drop_table("codex_rmm_sites")
    with op.batch_alter_table("codex_locations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_codex_locations_company_id"))

    op.drop_table("codex_locations")
    with op.batch_alter_table("codex_contact_roles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_codex_contact_roles_company_id"))

    op.drop_table("codex_contact_roles")
    with op.batch_alter_table("codex_sync_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_codex_sync_jobs_status"))
        batch_op.drop_index("ix_codex_sync_jobs_kind_started")

    op.drop_table("codex_sync_jobs")
    op.drop_table("codex_schedule_claims")
    op.drop_table("codex_psa_agents")
    with op.batch_alter_table("codex_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_codex_contacts_name"))
        batch_op.drop_index(batch_op.f("ix_codex_contacts_email"))
        batch_op.drop_index(batch_op.f("ix_codex_contacts_active"))

    op.drop_table("codex_contacts")
    with op.batch_alter_table("codex_companies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_codex_companies_parent_id"))
        batch_op.drop_index(batch_op.f("ix_codex_companies_name"))
        batch_op.drop_index(batch_op.f("ix_codex_companies_compliance_level"))
        batch_op.drop_index(batch_op.f("ix_codex_companies_billing_plan"))
        batch_op.drop_index(batch_op.f("ix_codex_companies_active"))

    op.drop_table("codex_companies")
    op.drop_table("codex_agents")
