"""SQLAlchemy 2 typed models: tenants, partners, workflow instances, audit trail and outbox."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on SQLite (naive storage) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


certifier_certification = Table(
    "certifier_certification",
    Base.metadata,
    Column("certifier_id", ForeignKey("certifier.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "certification_id", ForeignKey("certification.id", ondelete="CASCADE"), primary_key=True
    ),
)


class Certifier(Base):
    """An organisation owning RNCP/RS certifications: the tenant of every other record."""

    __tablename__ = "certifier"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    siret: Mapped[str] = mapped_column(String(14), unique=True)
    cdc_matricule: Mapped[str] = mapped_column(String(8))
    contract_number: Mapped[str] = mapped_column(String(20))
    # Shown to partner organisations so they know whom to ask; optional.
    contact_email: Mapped[str] = mapped_column(String(320), default="")
    language: Mapped[str] = mapped_column(String(2), default="fr")
    created_at: Mapped[datetime]

    certifications: Mapped[list[Certification]] = relationship(
        secondary=certifier_certification,
        back_populates="certifiers",
        order_by="Certification.code",
    )


class Certification(Base):
    """An RNCP or RS certification; several certifiers may co-certify it."""

    __tablename__ = "certification"

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(4))
    code: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(255))

    certifiers: Mapped[list[Certifier]] = relationship(
        secondary=certifier_certification, back_populates="certifications"
    )


class Organisation(Base):
    """A training organisation (organisme de formation); answers by email, has no account."""

    __tablename__ = "organisation"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    siret: Mapped[str] = mapped_column(String(14), unique=True)
    created_at: Mapped[datetime]

    contacts: Mapped[list[Contact]] = relationship(
        back_populates="organisation", order_by="Contact.id", cascade="all, delete-orphan"
    )


class Contact(Base):
    """A person reachable by email at a training organisation."""

    __tablename__ = "contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(320))
    language: Mapped[str] = mapped_column(String(2), default="fr")
    undeliverable: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]

    organisation: Mapped[Organisation] = relationship(back_populates="contacts")

    __table_args__ = (UniqueConstraint("organisation_id", "email"),)


class Partnership(Base):
    """A certifier working with a training organisation on some of its certifications."""

    __tablename__ = "partnership"

    id: Mapped[int] = mapped_column(primary_key=True)
    certifier_id: Mapped[int] = mapped_column(ForeignKey("certifier.id", ondelete="CASCADE"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]

    certifier: Mapped[Certifier] = relationship()
    organisation: Mapped[Organisation] = relationship()
    certifications: Mapped[list[PartnershipCertification]] = relationship(
        back_populates="partnership", cascade="all, delete-orphan"
    )

    __table_args__ = (UniqueConstraint("certifier_id", "organisation_id"),)


class PartnershipCertification(Base):
    """One certification covered by a partnership, and whether its folders may be synced."""

    __tablename__ = "partnership_certification"

    partnership_id: Mapped[int] = mapped_column(
        ForeignKey("partnership.id", ondelete="CASCADE"), primary_key=True
    )
    certification_id: Mapped[int] = mapped_column(
        ForeignKey("certification.id", ondelete="CASCADE"), primary_key=True
    )
    sharing_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    sharing_changed_at: Mapped[datetime | None]

    partnership: Mapped[Partnership] = relationship(back_populates="certifications")
    certification: Mapped[Certification] = relationship()


class WorkflowInstance(Base):
    """One running or finished workflow; the next timer lives here so it survives restarts."""

    __tablename__ = "workflow_instance"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    workflow: Mapped[str] = mapped_column(String(64))
    # The tenant: a certifier, or (trainer invitations) a training organisation.
    certifier_id: Mapped[int | None] = mapped_column(ForeignKey("certifier.id"), index=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"), index=True)
    partnership_id: Mapped[int | None] = mapped_column(ForeignKey("partnership.id"))
    state: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    # Set while the instance is live; unique, so two live instances for one subject cannot exist.
    active_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    data: Mapped[dict[str, Any]]
    state_entered_at: Mapped[datetime]
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    due_event: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class TransitionLog(Base):
    """Append-only audit trail, one row per state change; a database trigger refuses rewrites."""

    __tablename__ = "transition_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("workflow_instance.id"), index=True)
    at: Mapped[datetime]
    from_state: Mapped[str | None] = mapped_column(String(32))
    event: Mapped[str] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))


class OutboxMessage(Base):
    """A message written in the same transaction as the state change, delivered afterwards."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    certifier_id: Mapped[int | None] = mapped_column(ForeignKey("certifier.id"), index=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("workflow_instance.id"))
    channel: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(320))
    template: Mapped[str] = mapped_column(String(128))
    language: Mapped[str] = mapped_column(String(2))
    subject: Mapped[str] = mapped_column(String(998))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    # Block Kit JSON for a Slack notification, when the message has a Slack template.
    body_blocks: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    # reply+<token>@<reply domain> on mail to a partner contact: routes their reply back here.
    reply_to: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)


class SlackChannelLink(Base):
    """A Slack channel whose members act for one certifier (cordee slack link)."""

    __tablename__ = "slack_channel"

    id: Mapped[int] = mapped_column(primary_key=True)
    certifier_id: Mapped[int] = mapped_column(ForeignKey("certifier.id"), index=True)
    channel_id: Mapped[str] = mapped_column(String(32), unique=True)
    linked_at: Mapped[datetime]


class SlackEvent(Base):
    """A Slack event or button press already handled: Slack's retries change nothing."""

    __tablename__ = "slack_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_key: Mapped[str] = mapped_column(String(255), unique=True)
    received_at: Mapped[datetime]


class MailboxCursor(Base):
    """How far the IMAP intake has read one folder: (UIDVALIDITY, last UID handled)."""

    __tablename__ = "mailbox_cursor"

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(1024), unique=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class ProcessedMail(Base):
    """One incoming message already handled, by Message-ID: never handled twice."""

    __tablename__ = "processed_mail"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    received_at: Mapped[datetime]


# ------------------------------------------------------------ partner folder sync


class CertificationFolder(Base):
    """A certifier's certification folder, built from a partner's shared training folder.

    Its state lives on its workflow instance (workflow « certification_folder »). Only the
    administrative data of the allow-list in bot/sync/rules.py is kept: never prices, funding,
    billing or private notes.
    """

    __tablename__ = "certification_folder"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("workflow_instance.id"), unique=True)
    certifier_id: Mapped[int] = mapped_column(ForeignKey("certifier.id"), index=True)
    partnership_id: Mapped[int] = mapped_column(ForeignKey("partnership.id", ondelete="CASCADE"))
    certification_id: Mapped[int] = mapped_column(ForeignKey("certification.id"))
    folder_number: Mapped[str] = mapped_column(String(64))
    attendee_last_name: Mapped[str] = mapped_column(String(100))
    attendee_first_name: Mapped[str] = mapped_column(String(100))
    attendee_email: Mapped[str | None] = mapped_column(String(320))
    attendee_phone: Mapped[str | None] = mapped_column(String(32))
    session_start: Mapped[date | None]
    session_end: Mapped[date | None]
    training_state: Mapped[str] = mapped_column(String(40))
    training_state_on: Mapped[date | None]
    # Digest of the allow-listed fields: an unchanged folder costs no write on the next run.
    fingerprint: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("partnership_id", "folder_number"),)


class PartnerSync(Base):
    """Where a partnership's training folders come from, when, and how the last run went."""

    __tablename__ = "partner_sync"

    id: Mapped[int] = mapped_column(primary_key=True)
    partnership_id: Mapped[int] = mapped_column(
        ForeignKey("partnership.id", ondelete="CASCADE"), unique=True
    )
    certifier_id: Mapped[int] = mapped_column(ForeignKey("certifier.id"), index=True)
    source_kind: Mapped[str] = mapped_column(String(8))
    base_url: Mapped[str | None] = mapped_column(String(2048))
    # Fernet token (key derived from CORDEE_SECRET_KEY); never the clear API key.
    credentials: Mapped[str | None] = mapped_column(Text)
    interval_minutes: Mapped[int] = mapped_column(Integer, default=60)
    # The source's own « last update » instant of the newest folder read (updatedSince).
    cursor: Mapped[str | None] = mapped_column(String(64))
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_outcome: Mapped[str | None] = mapped_column(String(16))
    last_source: Mapped[str | None] = mapped_column(String(8))
    last_created: Mapped[int] = mapped_column(Integer, default=0)
    last_updated: Mapped[int] = mapped_column(Integer, default=0)
    last_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    last_ignored: Mapped[int] = mapped_column(Integer, default=0)
    last_rejected: Mapped[int] = mapped_column(Integer, default=0)
    # Row errors of the last run: line, folder number and message, never a person's data.
    last_errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class SharingPause(Base):
    """A covered certification whose sharing is paused; resuming deletes the row."""

    __tablename__ = "sharing_pause"

    partnership_id: Mapped[int] = mapped_column(primary_key=True)
    certification_id: Mapped[int] = mapped_column(primary_key=True)
    certifier_id: Mapped[int] = mapped_column(ForeignKey("certifier.id"), index=True)
    paused_at: Mapped[datetime]
    # "certifier:cli", "partner_contact:web"…: who may be asked why.
    paused_by: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        ForeignKeyConstraint(
            ["partnership_id", "certification_id"],
            [
                "partnership_certification.partnership_id",
                "partnership_certification.certification_id",
            ],
            ondelete="CASCADE",
        ),
    )


# APScheduler's persistent job store (SQLAlchemyJobStore) reads and writes this table; it is
# declared here, with APScheduler's own layout, so that migrations create it like any other.
def _job_store_table(name: str) -> Table:
    """A table with the layout APScheduler's SQLAlchemyJobStore reads and writes."""
    return Table(
        name,
        Base.metadata,
        Column("id", String(191), primary_key=True),
        Column("next_run_time", Float(25), index=True),
        Column("job_state", LargeBinary, nullable=False),
    )


scheduler_jobs = _job_store_table("apscheduler_jobs")


# ------------------------------------------------------------ CDC deposit (accrochage)


class CdcBatch(Base):
    """One deposit file built for the CDC; its state lives on its « cdc_batch » instance."""

    __tablename__ = "cdc_batch"

    id: Mapped[int] = mapped_column(primary_key=True)
    certifier_id: Mapped[int] = mapped_column(ForeignKey("certifier.id"), index=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("workflow_instance.id"), unique=True)
    id_flux: Mapped[str] = mapped_column(String(50), unique=True)
    file_name: Mapped[str] = mapped_column(String(255))
    file_path: Mapped[str] = mapped_column(Text)
    schema: Mapped[str] = mapped_column(String(16))
    passages: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # Filled by the CDC processing report (« accusé de traitement »).
    id_traitement: Mapped[str | None] = mapped_column(String(64))
    ok_count: Mapped[int] = mapped_column(Integer, default=0)
    ko_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    deposited_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]


class CdcPassage(Base):
    """What the CDC deposit needs of one successful certification folder, and where it stands.

    States: pending → exported (in batch_id) → ok | ko(message). Only the data the deposit
    needs is kept, and only for folders whose result must be deposited.
    """

    __tablename__ = "cdc_passage"

    id: Mapped[int] = mapped_column(primary_key=True)
    certifier_id: Mapped[int] = mapped_column(ForeignKey("certifier.id"), index=True)
    folder_id: Mapped[int] = mapped_column(
        ForeignKey("certification_folder.id", ondelete="CASCADE"), unique=True
    )
    # The folder's « DC-… » reference: stable, unique, and no personal data in it.
    id_technique: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    message: Mapped[str | None] = mapped_column(Text)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("cdc_batch.id"), index=True)
    # The certification's delivery date: the result's issue date, else the day of « réussi ».
    delivered_on: Mapped[date]
    issued_on: Mapped[date | None]
    mention: Mapped[str | None] = mapped_column(String(40))
    edof_number: Mapped[str | None] = mapped_column(String(13))
    birth_name: Mapped[str | None] = mapped_column(String(60))
    birth_date: Mapped[date | None]
    sex: Mapped[str | None] = mapped_column(String(1))
    birth_insee: Mapped[str | None] = mapped_column(String(5))
    due_soon_notified_at: Mapped[datetime | None]
    overdue_notified_at: Mapped[datetime | None]
    result_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("certifier_id", "id_technique"),
        Index("ix_cdc_passage_certifier_state", "certifier_id", "state"),
    )


# The deposit reminders' APScheduler job store: its own table, so that the partner sync's
# scheduler (which loads every job of `apscheduler_jobs`) never runs them too.
cdc_scheduler_jobs = _job_store_table("apscheduler_cdc_jobs")


# ------------------------------------------------------------------ trainers


class TrainerAccount(Base):
    """One person who trains, whatever the organisations: their login is their own email."""

    __tablename__ = "trainer_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    language: Mapped[str] = mapped_column(String(2), default="fr")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Trainer(Base):
    """A trainer as one inviter (organisation or certifier) knows them; linked to an account
    once they accept. The inviter's email may change without touching the account's login."""

    __tablename__ = "trainer"

    id: Mapped[int] = mapped_column(primary_key=True)
    # « org:<id> » or « cert:<id> »: who invited; with the email, one row per trainer there.
    inviter_key: Mapped[str] = mapped_column(String(32), index=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    certifier_id: Mapped[int | None] = mapped_column(ForeignKey("certifier.id"))
    email: Mapped[str] = mapped_column(String(320))
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    account_id: Mapped[int | None] = mapped_column(ForeignKey("trainer_account.id"), index=True)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("inviter_key", "email"),)


class TrainerToken(Base):
    """A single-use sign-in or email-change link; only its hash is kept."""

    __tablename__ = "trainer_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))  # login | email
    account_id: Mapped[int] = mapped_column(ForeignKey("trainer_account.id"), index=True)
    new_email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class TrainerSession(Base):
    """A signed-in browser: the cookie carries a random id, only its hash is stored."""

    __tablename__ = "trainer_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("trainer_account.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    # The organisation space being looked at (a Trainer row of this account).
    trainer_id: Mapped[int | None] = mapped_column(ForeignKey("trainer.id"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class TrainerSlot(Base):
    """A slot an organisation staffed the trainer on (imported from its planning)."""

    __tablename__ = "trainer_slot"

    id: Mapped[int] = mapped_column(primary_key=True)
    trainer_id: Mapped[int] = mapped_column(ForeignKey("trainer.id"), index=True)
    action_title: Mapped[str] = mapped_column(String(255))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    room: Mapped[str] = mapped_column(String(255), default="")
    participants: Mapped[int] = mapped_column(Integer, default=0)
    imported_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("trainer_id", "starts_at", "action_title"),)


class TrainerUnavailability(Base):
    """A period the trainer declared they cannot teach."""

    __tablename__ = "trainer_unavailability"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("trainer_account.id"), index=True)
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    note: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime]


class InvitationText(Base):
    """An inviter's own invitation text (subject and body with the allowed tags)."""

    __tablename__ = "invitation_text"

    id: Mapped[int] = mapped_column(primary_key=True)
    inviter_key: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(2))
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("inviter_key", "language"),)


class RateLimitHit(Base):
    """One attempt counted against a limit (sign-in links, new invitation links)."""

    __tablename__ = "rate_limit_hit"

    id: Mapped[int] = mapped_column(primary_key=True)
    bucket: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime]

    __table_args__ = (Index("ix_rate_limit_hit_bucket_at", "bucket", "at"),)
