"""Feedback and audit tables, with the indexes the service queries by.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("feedback_key", sa.String(64), nullable=False, unique=True),
        sa.Column("service_id", sa.String(128), nullable=False),
        sa.Column("card_uuid", sa.String(128), nullable=False, index=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("accepted_suggestions", sa.Text),
        sa.Column("override_reason_system", sa.String(512)),
        sa.Column("override_reason_code", sa.String(128)),
        sa.Column("override_reason_display", sa.String(512)),
        sa.Column("user_comment", sa.Text),
        sa.Column("outcome_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("hook_instance", sa.String(64), index=True),
        sa.Column("service_id", sa.String(128), nullable=False),
        sa.Column("client", sa.String(512)),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("outcome", sa.Text),
        sa.Column("card_uuids", sa.Text),
        sa.Column("response", sa.Text),
    )
    op.create_table(
        "audit_cards",
        sa.Column("audit_id", sa.Integer, sa.ForeignKey("audit.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("card_uuid", sa.String(64), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("audit_cards")
    op.drop_table("audit")
    op.drop_table("feedback")
