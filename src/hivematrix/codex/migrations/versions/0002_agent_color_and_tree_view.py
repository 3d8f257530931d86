"""Agents: colour theme and KnowledgeTree view preferences.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Server defaults give the rows that already exist the platform's defaults.
    with op.batch_alter_table("codex_agents") as batch:
        batch.add_column(sa.Column("color_theme", sa.String(length=10), nullable=False,
                                   server_default="purple"))
        batch.add_column(sa.Column("knowledge_tree_view", sa.String(length=10),
                                   nullable=False, server_default="grid"))


def downgrade() -> None:
    with op.batch_alter_table("codex_agents") as batch:
        batch.drop_column("knowledge_tree_view")
        batch.drop_column("color_theme")
