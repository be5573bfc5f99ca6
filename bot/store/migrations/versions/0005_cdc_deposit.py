"""CDC deposit: batches (deposit files), passages (per successful folder), reminder job store.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cdc_batch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("certifier_id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("id_flux", sa.String(length=50), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("file_path", sa.Text(), nullable=False),
        sa.Column("schema", sa.String(length=16), nullable=False),
        sa.Column("passages", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("id_traitement", sa.String(length=64), nullable=True),
        sa.Column("ok_count", sa.Integer(), nullable=False),
        sa.Column("ko_count", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("deposited_at", UTC_DATETIME, nullable=True),
        sa.Column("processed_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["certifier_id"], ["certifier.id"], name=op.f("fk_cdc_batch_certifier_id_certifier")
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["workflow_instance.id"],
            name=op.f("fk_cdc_batch_instance_id_workflow_instance"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cdc_batch")),
        sa.UniqueConstraint("id_flux", name=op.f("uq_cdc_batch_id_flux")),
        sa.UniqueConstraint("instance_id", name=op.f("uq_cdc_batch_instance_id")),
    )
    op.create_index(op.f("ix_cdc_batch_certifier_id"), "cdc_batch", ["certifier_id"])
    op.create_table(
        "cdc_passage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("certifier_id", sa.Integer(), nullable=False),
        sa.Column("folder_id", sa.Integer(), nullable=False),
        sa.Column("id_technique", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("delivered_on", sa.Date(), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=True),
        sa.Column("mention", sa.String(length=40), nullable=True),
        sa.Column("edof_number", sa.String(length=13), nullable=True),
        sa.Column("birth_name", sa.String(length=60), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("sex", sa.String(length=1), nullable=True),
        sa.Column("birth_insee", sa.String(length=5), nullable=True),
        sa.Column("due_soon_notified_at", UTC_DATETIME, nullable=True),
        sa.Column("overdue_notified_at", UTC_DATETIME, nullable=True),
        sa.Column("result_at", UTC_DATETIME, nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["cdc_batch.id"], name=op.f("fk_cdc_passage_batch_id_cdc_batch")
        ),
        sa.ForeignKeyConstraint(
            ["certifier_id"], ["certifier.id"], name=op.f("fk_cdc_passage_certifier_id_certifier")
        ),
        sa.ForeignKeyConstraint(
            ["folder_id"],
            ["certification_folder.id"],
            name=op.f("fk_cdc_passage_folder_id_certification_folder"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cdc_passage")),
        sa.UniqueConstraint(
            "certifier_id", "id_technique", name=op.f("uq_cdc_passage_certifier_id")
        ),
        sa.UniqueConstraint("folder_id", name=op.f("uq_cdc_passage_folder_id")),
    )
    op.create_index(op.f("ix_cdc_passage_certifier_id"), "cdc_passage", ["certifier_id"])
    op.create_index(op.f("ix_cdc_passage_batch_id"), "cdc_passage", ["batch_id"])
    op.create_index("ix_cdc_passage_certifier_state", "cdc_passage", ["certifier_id", "state"])
    op.create_table(
        "apscheduler_cdc_jobs",
        sa.Column("id", sa.String(length=191), nullable=False),
        sa.Column("next_run_time", sa.Float(precision=25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apscheduler_cdc_jobs")),
    )
    op.create_index(
        op.f("ix_apscheduler_cdc_jobs_next_run_time"), "apscheduler_cdc_jobs", ["next_run_time"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_apscheduler_cdc_jobs_next_run_time"), table_name="apscheduler_cdc_jobs")
    op.drop_table("apscheduler_cdc_jobs")
    op.drop_index("ix_cdc_passage_certifier_state", table_name="cdc_passage")
    op.drop_index(op.f("ix_cdc_passage_batch_id"), table_name="cdc_passage")
    op.drop_index(op.f("ix_cdc_passage_certifier_id"), table_name="cdc_passage")
    op.drop_table("cdc_passage")
    op.drop_index(op.f("ix_cdc_batch_certifier_id"), table_name="cdc_batch")
    op.drop_table("cdc_batch")
