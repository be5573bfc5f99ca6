"""Trainers: accounts, per-inviter trainers, sign-in tokens, sessions, slots, unavailability,
invitation texts, rate limits; instances and outbox rows may belong to an organisation.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer(), nullable=False)


def upgrade() -> None:
    for table in ("workflow_instance", "outbox"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column("certifier_id", existing_type=sa.Integer(), nullable=True)
            batch.add_column(sa.Column("organisation_id", sa.Integer(), nullable=True))
            batch.create_foreign_key(
                op.f(f"fk_{table}_organisation_id_organisation"),
                "organisation",
                ["organisation_id"],
                ["id"],
            )
    op.create_index(
        op.f("ix_workflow_instance_organisation_id"),
        "workflow_instance",
        ["organisation_id"],
        unique=False,
    )
    op.create_table(
        "trainer_account",
        _id(),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trainer_account")),
        sa.UniqueConstraint("email", name=op.f("uq_trainer_account_email")),
    )
    op.create_table(
        "trainer",
        _id(),
        sa.Column("inviter_key", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("certifier_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
            name=op.f("fk_trainer_organisation_id_organisation"),
        ),
        sa.ForeignKeyConstraint(
            ["certifier_id"], ["certifier.id"], name=op.f("fk_trainer_certifier_id_certifier")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["trainer_account.id"],
            name=op.f("fk_trainer_account_id_trainer_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trainer")),
        sa.UniqueConstraint("inviter_key", "email", name=op.f("uq_trainer_inviter_key")),
    )
    op.create_index(op.f("ix_trainer_inviter_key"), "trainer", ["inviter_key"], unique=False)
    op.create_index(op.f("ix_trainer_account_id"), "trainer", ["account_id"], unique=False)
    op.create_table(
        "trainer_token",
        _id(),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("new_email", sa.String(length=320), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("used_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["trainer_account.id"],
            name=op.f("fk_trainer_token_account_id_trainer_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trainer_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_trainer_token_token_hash")),
    )
    op.create_index(op.f("ix_trainer_token_account_id"), "trainer_token", ["account_id"])
    op.create_table(
        "trainer_session",
        _id(),
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("trainer_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["trainer_account.id"],
            name=op.f("fk_trainer_session_account_id_trainer_account"),
        ),
        sa.ForeignKeyConstraint(
            ["trainer_id"], ["trainer.id"], name=op.f("fk_trainer_session_trainer_id_trainer")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trainer_session")),
        sa.UniqueConstraint("session_hash", name=op.f("uq_trainer_session_session_hash")),
    )
    op.create_index(op.f("ix_trainer_session_account_id"), "trainer_session", ["account_id"])
    op.create_table(
        "trainer_slot",
        _id(),
        sa.Column("trainer_id", sa.Integer(), nullable=False),
        sa.Column("action_title", sa.String(length=255), nullable=False),
        sa.Column("starts_at", UTC_DATETIME, nullable=False),
        sa.Column("ends_at", UTC_DATETIME, nullable=False),
        sa.Column("room", sa.String(length=255), nullable=False),
        sa.Column("participants", sa.Integer(), nullable=False),
        sa.Column("imported_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["trainer_id"], ["trainer.id"], name=op.f("fk_trainer_slot_trainer_id_trainer")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trainer_slot")),
        sa.UniqueConstraint(
            "trainer_id", "starts_at", "action_title", name=op.f("uq_trainer_slot_trainer_id")
        ),
    )
    op.create_index(op.f("ix_trainer_slot_trainer_id"), "trainer_slot", ["trainer_id"])
    op.create_table(
        "trainer_unavailability",
        _id(),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("note", sa.String(length=255), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["trainer_account.id"],
            name=op.f("fk_trainer_unavailability_account_id_trainer_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trainer_unavailability")),
    )
    op.create_index(
        op.f("ix_trainer_unavailability_account_id"), "trainer_unavailability", ["account_id"]
    )
    op.create_table(
        "invitation_text",
        _id(),
        sa.Column("inviter_key", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitation_text")),
        sa.UniqueConstraint("inviter_key", "language", name=op.f("uq_invitation_text_inviter_key")),
    )
    op.create_table(
        "rate_limit_hit",
        _id(),
        sa.Column("bucket", sa.String(length=255), nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_limit_hit")),
    )
    op.create_index("ix_rate_limit_hit_bucket_at", "rate_limit_hit", ["bucket", "at"])


def downgrade() -> None:
    op.drop_index("ix_rate_limit_hit_bucket_at", table_name="rate_limit_hit")
    op.drop_table("rate_limit_hit")
    op.drop_table("invitation_text")
    op.drop_index(op.f("ix_trainer_unavailability_account_id"), table_name="trainer_unavailability")
    op.drop_table("trainer_unavailability")
    op.drop_index(op.f("ix_trainer_slot_trainer_id"), table_name="trainer_slot")
    op.drop_table("trainer_slot")
    op.drop_index(op.f("ix_trainer_session_account_id"), table_name="trainer_session")
    op.drop_table("trainer_session")
    op.drop_index(op.f("ix_trainer_token_account_id"), table_name="trainer_token")
    op.drop_table("trainer_token")
    op.drop_index(op.f("ix_trainer_account_id"), table_name="trainer")
    op.drop_index(op.f("ix_trainer_inviter_key"), table_name="trainer")
    op.drop_table("trainer")
    op.drop_table("trainer_account")
    op.drop_index(op.f("ix_workflow_instance_organisation_id"), table_name="workflow_instance")
    for table in ("outbox", "workflow_instance"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(
                op.f(f"fk_{table}_organisation_id_organisation"), type_="foreignkey"
            )
            batch.drop_column("organisation_id")
            batch.alter_column("certifier_id", existing_type=sa.Integer(), nullable=False)
