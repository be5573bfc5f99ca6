"""Initial schema: tenants, partners, workflow instances, append-only audit trail, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 21:21:53.574539
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "certification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=4), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certification")),
        sa.UniqueConstraint("code", name=op.f("uq_certification_code")),
    )
    op.create_table(
        "certifier",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("siret", sa.String(length=14), nullable=False),
        sa.Column("cdc_matricule", sa.String(length=8), nullable=False),
        sa.Column("contract_number", sa.String(length=20), nullable=False),
        sa.Column("contact_email", sa.String(length=320), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certifier")),
        sa.UniqueConstraint("siret", name=op.f("uq_certifier_siret")),
    )
    op.create_table(
        "organisation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("siret", sa.String(length=14), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisation")),
        sa.UniqueConstraint("siret", name=op.f("uq_organisation_siret")),
    )
    op.create_table(
        "certifier_certification",
        sa.Column("certifier_id", sa.Integer(), nullable=False),
        sa.Column("certification_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["certification_id"],
            ["certification.id"],
            name=op.f("fk_certifier_certification_certification_id_certification"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["certifier_id"],
            ["certifier.id"],
            name=op.f("fk_certifier_certification_certifier_id_certifier"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "certifier_id", "certification_id", name=op.f("pk_certifier_certification")
        ),
    )
    op.create_table(
        "contact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("undeliverable", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
            name=op.f("fk_contact_organisation_id_organisation"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact")),
        sa.UniqueConstraint("organisation_id", "email", name=op.f("uq_contact_organisation_id")),
    )
    op.create_table(
        "partnership",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("certifier_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["certifier_id"],
            ["certifier.id"],
            name=op.f("fk_partnership_certifier_id_certifier"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
            name=op.f("fk_partnership_organisation_id_organisation"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partnership")),
        sa.UniqueConstraint(
            "certifier_id", "organisation_id", name=op.f("uq_partnership_certifier_id")
        ),
    )
    op.create_table(
        "partnership_certification",
        sa.Column("partnership_id", sa.Integer(), nullable=False),
        sa.Column("certification_id", sa.Integer(), nullable=False),
        sa.Column("sharing_enabled", sa.Boolean(), nullable=False),
        sa.Column("sharing_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["certification_id"],
            ["certification.id"],
            name=op.f("fk_partnership_certification_certification_id_certification"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["partnership_id"],
            ["partnership.id"],
            name=op.f("fk_partnership_certification_partnership_id_partnership"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "partnership_id", "certification_id", name=op.f("pk_partnership_certification")
        ),
    )
    op.create_table(
        "workflow_instance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("workflow", sa.String(length=64), nullable=False),
        sa.Column("certifier_id", sa.Integer(), nullable=False),
        sa.Column("partnership_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("active_key", sa.String(length=128), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("state_entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_event", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["certifier_id"],
            ["certifier.id"],
            name=op.f("fk_workflow_instance_certifier_id_certifier"),
        ),
        sa.ForeignKeyConstraint(
            ["partnership_id"],
            ["partnership.id"],
            name=op.f("fk_workflow_instance_partnership_id_partnership"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_instance")),
        sa.UniqueConstraint("active_key", name=op.f("uq_workflow_instance_active_key")),
        sa.UniqueConstraint("public_id", name=op.f("uq_workflow_instance_public_id")),
    )
    with op.batch_alter_table("workflow_instance", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_workflow_instance_certifier_id"), ["certifier_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_workflow_instance_due_at"), ["due_at"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("certifier_id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("template", sa.String(length=128), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("subject", sa.String(length=998), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["certifier_id"], ["certifier.id"], name=op.f("fk_outbox_certifier_id_certifier")
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["workflow_instance.id"],
            name=op.f("fk_outbox_instance_id_workflow_instance"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbox_message_id")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_certifier_id"), ["certifier_id"], unique=False)
        batch_op.create_index("ix_outbox_due", ["status", "next_attempt_at"], unique=False)

    op.create_table(
        "transition_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_state", sa.String(length=32), nullable=True),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("to_state", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["workflow_instance.id"],
            name=op.f("fk_transition_log_instance_id_workflow_instance"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transition_log")),
    )
    with op.batch_alter_table("transition_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transition_log_instance_id"), ["instance_id"], unique=False
        )

    _forbid_audit_rewrites()


def _forbid_audit_rewrites() -> None:
    """The transition log is the audit trail: the database itself refuses UPDATE and DELETE."""
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION transition_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'transition_log is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER transition_log_append_only BEFORE UPDATE OR DELETE ON transition_log "
            "FOR EACH ROW EXECUTE FUNCTION transition_log_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER transition_log_no_{action.lower()} BEFORE {action} "
                "ON transition_log BEGIN SELECT RAISE(ABORT, 'transition_log is append-only'); END"
            )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS transition_log_append_only ON transition_log")
        op.execute("DROP FUNCTION IF EXISTS transition_log_append_only()")
    with op.batch_alter_table("transition_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transition_log_instance_id"))

    op.drop_table("transition_log")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_due")
        batch_op.drop_index(batch_op.f("ix_outbox_certifier_id"))

    op.drop_table("outbox")
    with op.batch_alter_table("workflow_instance", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workflow_instance_due_at"))
        batch_op.drop_index(batch_op.f("ix_workflow_instance_certifier_id"))

    op.drop_table("workflow_instance")
    op.drop_table("partnership_certification")
    op.drop_table("partnership")
    op.drop_table("contact")
    op.drop_table("certifier_certification")
    op.drop_table("organisation")
    op.drop_table("certifier")
    op.drop_table("certification")
