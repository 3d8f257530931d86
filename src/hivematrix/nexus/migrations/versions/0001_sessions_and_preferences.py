"""Browser sessions and display preferences.

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
        "nexus_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_nexus_sessions_expires_at", "nexus_sessions", ["expires_at"])
    op.create_table(
        "nexus_preferences",
        sa.Column("subject", sa.String(255), primary_key=True),
        sa.Column("theme", sa.String(16), nullable=False),
        sa.Column("color_theme", sa.String(16), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("nexus_preferences")
    op.drop_index("ix_nexus_sessions_expires_at", "nexus_sessions")
    op.drop_table("nexus_sessions")
