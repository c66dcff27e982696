"""Feedback records the client that posted it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("client", sa.String(512)))


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("client")
