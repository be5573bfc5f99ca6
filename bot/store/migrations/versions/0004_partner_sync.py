"""Partner folder sync: certification folders, per-partnership sync status, pauses, job store.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "certification_folder",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("certifier_id", sa.Integer(), nullable=False),
        sa.Column("partnership_id", sa.Integer(), nullable=False),
        sa.Column("certification_id", sa.Integer(), nullable=False),
        sa.Column("folder_number", sa.String(length=64), nullable=False),
        sa.Column("attendee_last_name", sa.String(length=100), nullable=False),
        sa.Column("attendee_first_name", sa.String(length=100), nullable=False),
        sa.Column("attendee_email", sa.String(length=320), nullable=True),
        sa.Column("attendee_phone", sa.String(length=32), nullable=True),
        sa.Column("session_start", sa.Date(), nullable=True),
        sa.Column("session_end", sa.Date(), nullable=True),
        sa.Column("training_state", sa.String(length=40), nullable=False),
        sa.Column("training_state_on", sa.Date(), nullable=True),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["certification_id"],
            ["certification.id"],
            name=op.f("fk_certification_folder_certification_id_certification"),
        ),
        sa.ForeignKeyConstraint(
            ["certifier_id"],
            ["certifier.id"],
            name=op.f("fk_certification_folder_certifier_id_certifier"),
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["workflow_instance.id"],
            name=op.f("fk_certification_folder_instance_id_workflow_instance"),
        ),
        sa.ForeignKeyConstraint(
            ["partnership_id"],
            ["partnership.id"],
            name=op.f("fk_certification_folder_partnership_id_partnership"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certification_folder")),
        sa.UniqueConstraint("instance_id", name=op.f("uq_certification_folder_instance_id")),
        sa.UniqueConstraint(
            "partnership_id", "folder_number", name=op.f("uq_certification_folder_partnership_id")
        ),
    )
    op.create_index(
        op.f("ix_certification_folder_certifier_id"), "certification_folder", ["certifier_id"]
    )
    op.create_table(
        "partner_sync",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partnership_id", sa.Integer(), nullable=False),
        sa.Column("certifier_id", sa.Integer(), nullable=False),
        sa.Column("source_kind", sa.String(length=8), nullable=False),
        sa.Column("base_url", sa.String(length=2048), nullable=True),
        sa.Column("credentials", sa.Text(), nullable=True),
        sa.Column("interval_minutes", sa.Integer(), nullable=False),
        sa.Column("cursor", sa.String(length=64), nullable=True),
        sa.Column("last_started_at", UTC_DATETIME, nullable=True),
        sa.Column("last_finished_at", UTC_DATETIME, nullable=True),
        sa.Column("last_outcome", sa.String(length=16), nullable=True),
        sa.Column("last_source", sa.String(length=8), nullable=True),
        sa.Column("last_created", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.Integer(), nullable=False),
        sa.Column("last_unchanged", sa.Integer(), nullable=False),
        sa.Column("last_ignored", sa.Integer(), nullable=False),
        sa.Column("last_rejected", sa.Integer(), nullable=False),
        sa.Column("last_errors", sa.JSON(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("failing_since", UTC_DATETIME, nullable=True),
        sa.Column("next_attempt_at", UTC_DATETIME, nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["certifier_id"], ["certifier.id"], name=op.f("fk_partner_sync_certifier_id_certifier")
        ),
        sa.ForeignKeyConstraint(
            ["partnership_id"],
            ["partnership.id"],
            name=op.f("fk_partner_sync_partnership_id_partnership"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_sync")),
        sa.UniqueConstraint("partnership_id", name=op.f("uq_partner_sync_partnership_id")),
    )
    op.create_index(op.f("ix_partner_sync_certifier_id"), "partner_sync", ["certifier_id"])
    op.create_table(
        "sharing_pause",
        sa.Column("partnership_id", sa.Integer(), nullable=False),
        sa.Column("certification_id", sa.Integer(), nullable=False),
        sa.Column("certifier_id", sa.Integer(), nullable=False),
        sa.Column("paused_at", UTC_DATETIME, nullable=False),
        sa.Column("paused_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["certifier_id"], ["certifier.id"], name=op.f("fk_sharing_pause_certifier_id_certifier")
        ),
        sa.ForeignKeyConstraint(
            ["partnership_id", "certification_id"],
            [
                "partnership_certification.partnership_id",
                "partnership_certification.certification_id",
            ],
            name=op.f("fk_sharing_pause_partnership_id_partnership_certification"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "partnership_id", "certification_id", name=op.f("pk_sharing_pause")
        ),
    )
    op.create_index(op.f("ix_sharing_pause_certifier_id"), "sharing_pause", ["certifier_id"])
    # APScheduler's SQLAlchemyJobStore layout: the scheduled syncs survive restarts.
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.String(length=191), nullable=False),
        sa.Column("next_run_time", sa.Float(precision=25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apscheduler_jobs")),
    )
    op.create_index(
        op.f("ix_apscheduler_jobs_next_run_time"), "apscheduler_jobs", ["next_run_time"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_apscheduler_jobs_next_run_time"), table_name="apscheduler_jobs")
    op.drop_table("apscheduler_jobs")
    op.drop_index(op.f("ix_sharing_pause_certifier_id"), table_name="sharing_pause")
    op.drop_table("sharing_pause")
    op.drop_index(op.f("ix_partner_sync_certifier_id"), table_name="partner_sync")
    op.drop_table("partner_sync")
    op.drop_index(op.f("ix_certification_folder_certifier_id"), table_name="certification_folder")
    op.drop_table("certification_folder")
