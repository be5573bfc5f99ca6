"""Slack: channels linked to certifiers, handled events, Block Kit bodies in the outbox.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_channel",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("certifier_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["certifier_id"], ["certifier.id"], name=op.f("fk_slack_channel_certifier_id_certifier")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_channel")),
        sa.UniqueConstraint("channel_id", name=op.f("uq_slack_channel_channel_id")),
    )
    op.create_index(
        op.f("ix_slack_channel_certifier_id"), "slack_channel", ["certifier_id"], unique=False
    )
    op.create_table(
        "slack_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_key", sa.String(length=255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_event")),
        sa.UniqueConstraint("event_key", name=op.f("uq_slack_event_event_key")),
    )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("body_blocks", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("body_blocks")
    op.drop_table("slack_event")
    op.drop_index(op.f("ix_slack_channel_certifier_id"), table_name="slack_channel")
    op.drop_table("slack_channel")
