"""Sessions and personal API tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
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
        "core_sessions",
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("user", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_core_sessions_expires_at", "core_sessions", ["expires_at"])
    op.create_table(
        "core_api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("owner_sub", sa.String(255), nullable=False),
        sa.Column("owner", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_core_api_tokens_owner_sub", "core_api_tokens", ["owner_sub"])


def downgrade() -> None:
    op.drop_index("ix_core_api_tokens_owner_sub", table_name="core_api_tokens")
    op.drop_table("core_api_tokens")
    op.drop_index("ix_core_sessions_expires_at", table_name="core_sessions")
    op.drop_table("core_sessions")
