"""Users, groups, login throttling and OAuth 2 clients, codes and tokens.

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

GROUPS = ("admins", "technicians", "billing", "client")


def upgrade() -> None:
    groups = op.create_table(
        "identity_groups",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
    )
    op.bulk_insert(groups, [{"name": name} for name in GROUPS])

    op.create_table(
        "identity_users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("subject", sa.String(36), nullable=False, unique=True),
        sa.Column("username", sa.String(100), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("account_number", sa.String(64), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("security_stamp", sa.String(32), nullable=False),
        sa.Column("password_changed_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )

    op.create_table(
        "identity_user_groups",
        sa.Column("user_id", sa.Integer(),
                  sa.ForeignKey("identity_users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("group_id", sa.Integer(),
                  sa.ForeignKey("identity_groups.id", ondelete="CASCADE"), primary_key=True),
    )

    op.create_table(
        "identity_login_attempts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(100), nullable=False, unique=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("lockouts", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("last_failure_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_identity_login_attempts_last_failure_at", "identity_login_attempts",
                    ["last_failure_at"])

    op.create_table(
        "identity_oauth_clients",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("client_id", sa.String(48), nullable=False, unique=True),
        sa.Column("client_secret", sa.String(120), nullable=True),
        sa.Column("client_id_issued_at", sa.Integer(), nullable=False),
        sa.Column("client_secret_expires_at", sa.Integer(), nullable=False),
        sa.Column("client_metadata", sa.Text(), nullable=True),
    )

    op.create_table(
        "identity_oauth_codes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(),
                  sa.ForeignKey("identity_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("sid", sa.String(64), nullable=False),
        sa.Column("family", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("code", sa.String(120), nullable=False, unique=True),
        sa.Column("client_id", sa.String(48), nullable=True),
        sa.Column("redirect_uri", sa.Text(), nullable=True),
        sa.Column("response_type", sa.Text(), nullable=True),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("nonce", sa.Text(), nullable=True),
        sa.Column("auth_time", sa.Integer(), nullable=False),
        sa.Column("acr", sa.Text(), nullable=True),
        sa.Column("amr", sa.Text(), nullable=True),
        sa.Column("code_challenge", sa.Text(), nullable=True),
        sa.Column("code_challenge_method", sa.String(48), nullable=True),
    )
    op.create_index("ix_identity_oauth_codes_user_id", "identity_oauth_codes", ["user_id"])
    op.create_index("ix_identity_oauth_codes_created_at", "identity_oauth_codes", ["created_at"])

    op.create_table(
        "identity_oauth_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(),
                  sa.ForeignKey("identity_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("sid", sa.String(64), nullable=False),
        sa.Column("family", sa.String(64), nullable=False),
        sa.Column("auth_time", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(48), nullable=True),
        sa.Column("token_type", sa.String(40), nullable=True),
        sa.Column("access_token", sa.String(255), nullable=False, unique=True),
        sa.Column("refresh_token", sa.String(255), nullable=True),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("issued_at", sa.Integer(), nullable=False),
        sa.Column("access_token_revoked_at", sa.Integer(), nullable=False),
        sa.Column("refresh_token_revoked_at", sa.Integer(), nullable=False),
        sa.Column("expires_in", sa.Integer(), nullable=False),
    )
    for column in ("user_id", "sid", "family", "refresh_token"):
        op.create_index(f"ix_identity_oauth_tokens_{column}", "identity_oauth_tokens", [column])


def downgrade() -> None:
    for column in ("user_id", "sid", "family", "refresh_token"):
        op.drop_index(f"ix_identity_oauth_tokens_{column}", table_name="identity_oauth_tokens")
    op.drop_table("identity_oauth_tokens")
    op.drop_index("ix_identity_oauth_codes_created_at", table_name="identity_oauth_codes")
    op.drop_index("ix_identity_oauth_codes_user_id", table_name="identity_oauth_codes")
    op.drop_table("identity_oauth_codes")
    op.drop_table("identity_oauth_clients")
    op.drop_index("ix_identity_login_attempts_last_failure_at",
                  table_name="identity_login_attempts")
    op.drop_table("identity_login_attempts")
    op.drop_table("identity_user_groups")
    op.drop_table("identity_users")
    op.drop_table("identity_groups")
