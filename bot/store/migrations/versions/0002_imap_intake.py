"""IMAP intake: per-folder cursor (UIDVALIDITY, last UID) and processed Message-IDs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 23:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mailbox_cursor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox", sa.String(length=1024), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailbox_cursor")),
        sa.UniqueConstraint("mailbox", name=op.f("uq_mailbox_cursor_mailbox")),
    )
    op.create_table(
        "processed_mail",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_processed_mail")),
        sa.UniqueConstraint("message_id", name=op.f("uq_processed_mail_message_id")),
    )


def downgrade() -> None:
    op.drop_table("processed_mail")
    op.drop_table("mailbox_cursor")
