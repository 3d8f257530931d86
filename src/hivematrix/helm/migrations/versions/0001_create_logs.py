"""Create the log entries, log cursors and service samples tables.

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

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "helm_log_entries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("timestamp", UTCDateTime(), nullable=False),
        sa.Column("service", sa.String(50), nullable=False),
        sa.Column("level", sa.String(20), nullable=False),
        sa.Column("logger", sa.String(255), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        sa.Column("user", sa.String(255), nullable=True),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.UniqueConstraint("fingerprint", name="uq_helm_log_entries_fingerprint"),
    )
    op.create_index("ix_helm_log_entries_timestamp", "helm_log_entries", ["timestamp"])
    op.create_index("ix_helm_log_entries_service_timestamp", "helm_log_entries",
                    ["service", "timestamp"])
    op.create_index("ix_helm_log_entries_level_timestamp", "helm_log_entries",
                    ["level", "timestamp"])
    op.create_index("ix_helm_log_entries_correlation_id", "helm_log_entries",
                    ["correlation_id"])
    op.create_index("ix_helm_log_entries_user", "helm_log_entries", ["user"])

    op.create_table(
        "helm_log_cursors",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("inode", sa.BigInteger(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=True),
        sa.Column("head_length", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("path", name="uq_helm_log_cursors_path"),
    )

    op.create_table(
        "helm_service_samples",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(50), nullable=False),
        sa.Column("timestamp", UTCDateTime(), nullable=False),
        sa.Column("cpu_percent", sa.Float(), nullable=True),
        sa.Column("memory_mb", sa.Float(), nullable=True),
        sa.Column("uptime_seconds", sa.Float(), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
    )
    op.create_index("ix_helm_service_samples_service_timestamp", "helm_service_samples",
                    ["service", "timestamp"])


def downgrade() -> None:
    op.drop_index("ix_helm_service_samples_service_timestamp",
                  table_name="helm_service_samples")
    op.drop_table("helm_service_samples")
    op.drop_table("helm_log_cursors")
    for name in ("user", "correlation_id", "level_timestamp", "service_timestamp", "timestamp"):
        op.drop_index(f"ix_helm_log_entries_{name}", table_name="helm_log_entries")
    op.drop_table("helm_log_entries")
