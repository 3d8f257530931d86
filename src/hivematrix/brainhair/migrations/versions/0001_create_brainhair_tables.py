"""create chat sessions, messages, responses, chunks, approvals, audit

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
        "brainhair_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=150), nullable=False),
        sa.Column("event", sa.String(length=50), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=True),
        sa.Column("approval_id", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("brainhair_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_brainhair_audit_actor"), ["actor"], unique=False)
        batch_op.create_index(batch_op.f("ix_brainhair_audit_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_brainhair_audit_event"), ["event"], unique=False)

    op.create_table(
        "brainhair_job_leases",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=False),
        sa.Column("until", UTCDateTime(), nullable=False),
        sa.Column("last_run_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "brainhair_sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=150), nullable=False),
        sa.Column("owner_username", sa.String(length=150), nullable=False),
        sa.Column("owner_name", sa.String(length=150), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("ticket_number", sa.String(length=50), nullable=True),
        sa.Column("account_number", sa.String(length=50), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("running_response_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("brainhair_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_brainhair_sessions_account_number"), ["account_number"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_brainhair_sessions_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_brainhair_sessions_owner_id"), ["owner_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_brainhair_sessions_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_brainhair_sessions_ticket_number"), ["ticket_number"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_brainhair_sessions_updated_at"), ["updated_at"], unique=False
        )

    op.create_table(
        "brainhair_approvals",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("response_id", sa.String(length=64), nullable=True),
        sa.Column("requested_by", sa.String(length=150), nullable=False),
        sa.Column("tool", sa.String(length=100), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("tool_input", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("decided_by", sa.String(length=150), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["session_id"], ["brainhair_sessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("brainhair_approvals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_brainhair_approvals_requested_by"), ["requested_by"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_brainhair_approvals_response_id"), ["response_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_brainhair_approvals_session_id"), ["session_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_brainhair_approvals_status"), ["status"], unique=False)

    op.create_table(
        "brainhair_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("tool_calls", sa.JSON(), nullable=True),
        sa.Column("tool_results", sa.JSON(), nullable=True),
        sa.Column("was_filtered", sa.Boolean(), nullable=False),
        sa.Column("filter_level", sa.String(length=10), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["brainhair_sessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("brainhair_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_brainhair_messages_session_created", ["session_id", "created_at"], unique=False
        )

    op.create_table(
        "brainhair_responses",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=150), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("stop_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["session_id"], ["brainhair_sessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("brainhair_responses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_brainhair_responses_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_brainhair_responses_session_id"), ["session_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_brainhair_responses_status"), ["status"], unique=False)

    op.create_table(
        "brainhair_chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("response_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["response_id"], ["brainhair_responses.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("response_id", "seq"),
    )


def downgrade() -> None:
    op.drop_table("brainhair_chunks")
    with op.batch_alter_table("brainhair_responses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_brainhair_responses_status"))
        batch_op.drop_index(batch_op.f("ix_brainhair_responses_session_id"))
        batch_op.drop_index(batch_op.f("ix_brainhair_responses_created_at"))

    op.drop_table("brainhair_responses")
    with op.batch_alter_table("brainhair_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_brainhair_messages_session_created")

    op.drop_table("brainhair_messages")
    with op.batch_alter_table("brainhair_approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_brainhair_approvals_status"))
        batch_op.drop_index(batch_op.f("ix_brainhair_approvals_session_id"))
        batch_op.drop_index(batch_op.f("ix_brainhair_approvals_response_id"))
        batch_op.drop_index(batch_op.f("ix_brainhair_approvals_requested_by"))

    op.drop_table("brainhair_approvals")
    with op.batch_alter_table("brainhair_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_brainhair_sessions_updated_at"))
        batch_op.drop_index(batch_op.f("ix_brainhair_sessions_ticket_number"))
        batch_op.drop_index(batch_op.f("ix_brainhair_sessions_status"))
        batch_op.drop_index(batch_op.f("ix_brainhair_sessions_owner_id"))
        batch_op.drop_index(batch_op.f("ix_brainhair_sessions_created_at"))
        batch_op.drop_index(batch_op.f("ix_brainhair_sessions_account_number"))

    op.drop_table("brainhair_sessions")
    op.drop_table("brainhair_job_leases")
    with op.batch_alter_table("brainhair_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_brainhair_audit_event"))
        batch_op.drop_index(batch_op.f("ix_brainhair_audit_at"))
        batch_op.drop_index(batch_op.f("ix_brainhair_audit_actor"))

    op.drop_table("brainhair_audit")
