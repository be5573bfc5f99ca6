"""CDC passages and batches in the store: results to deposit, lookups, status; tenant-scoped.

A passage is what the deposit needs of one certification folder « réussi »; it is created on
first need (build, reminders, status) and keeps its own state: pending → exported → ok | ko.
Every function takes the certifier's id and filters on it.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from bot.clock import PARIS, paris
from bot.engine import REFERENCE_ALPHABET
from bot.errors import Conflict, InvalidInput, NotFound
from bot.render import format_date
from bot.store.models import (
    CdcBatch,
    CdcPassage,
    Certification,
    CertificationFolder,
    Certifier,
    TransitionLog,
    WorkflowInstance,
)
from bot.sync.folders import bulk_insert
from workflows import cdc_batch, cdc_deposit
from workflows.certification_folder import State as FolderState

PENDING, EXPORTED, OK, KO = "pending", "exported", "ok", "ko"
PASSAGE_STATES = (PENDING, EXPORTED, OK, KO)
MENTIONS = (
    "SANS_MENTION",
    "MENTION_ASSEZ_BIEN",
    "MENTION_BIEN",
    "MENTION_TRES_BIEN",
    "MENTION_TRES_BIEN_AVEC_FELICITATIONS_DU_JURY",
)
# Listed by name in a notice; the rest are counted (« … et 12 autres »).
LISTED = 50
CHUNK = 500
_INSEE = re.compile(r"^(\d{5}|2[AB]\d{3})$")
_EDOF = re.compile(r"^[0-9A-Za-z]{1,13}$")


def add_months(day: date, months: int) -> date:
    """The same day `months` later (or earlier), clamped to the month's end."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    following = date(year + (month == 12), month % 12 + 1, 1)
    return date(year, month, min(day.day, (following - timedelta(days=1)).day))


def deadline_of(delivered_on: date) -> date:
    """Data for each holder within three months of delivery (art. R6113-17-2)."""
    return add_months(delivered_on, 3)


def holder(first_name: str, last_name: str) -> str:
    return f"{first_name} {last_name.upper()}"


def both_dates(day: date) -> dict[str, str]:
    """A date as the French and English templates show it (data is stored as JSON)."""
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=PARIS)
    return {language: format_date(noon, language) for language in ("fr", "en")}


def new_reference(session: Session, prefix: str) -> str:
    while True:
        code = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(10))
        reference = f"{prefix}-{code}"
        if (
            session.scalar(
                select(WorkflowInstance.id).where(WorkflowInstance.public_id == reference)
            )
            is None
        ):
            return reference


def new_instance(
    session: Session,
    *,
    workflow: str,
    prefix: str,
    initial: str,
    certifier_id: int,
    data: dict[str, Any],
    actor: str,
    now: datetime,
    active_key: str | None = None,
) -> WorkflowInstance:
    """A silently started workflow instance (no start effects, no timer), in the caller's
    transaction, with its first audit-trail row."""
    instance = WorkflowInstance(
        public_id=new_reference(session, prefix),
        workflow=workflow,
        certifier_id=certifier_id,
        partnership_id=None,
        state=initial,
        active_key=active_key,
        data=data,
        state_entered_at=now,
        due_at=None,
        due_event=None,
        created_at=now,
        updated_at=now,
    )
    session.add(instance)
    session.flush()
    session.add(
        TransitionLog(
            instance_id=instance.id,
            at=now,
            from_state=None,
            event="start",
            to_state=initial,
            actor=actor,
        )
    )
    return instance


def certifier_of(session: Session, certifier_id: int) -> Certifier:
    certifier = session.get(Certifier, certifier_id)
    if certifier is None:
        raise NotFound(f"certificateur n° {certifier_id} introuvable (`cordee certifier list`).")
    return certifier


# ------------------------------------------------------------------ passages


def ensure_passages(session: Session, certifier_id: int, now: datetime) -> int:
    """Create the passage of every folder « réussi » that has none yet; returns how many."""
    created = 0
    while True:
        rows = session.execute(
            select(
                CertificationFolder.id,
                WorkflowInstance.public_id,
                WorkflowInstance.state_entered_at,
            )
            .join(WorkflowInstance, WorkflowInstance.id == CertificationFolder.instance_id)
            .outerjoin(CdcPassage, CdcPassage.folder_id == CertificationFolder.id)
            .where(
                CertificationFolder.certifier_id == certifier_id,
                WorkflowInstance.state == FolderState.SUCCESS,
                CdcPassage.id.is_(None),
            )
            .order_by(CertificationFolder.id)
            .limit(CHUNK * 10)
        ).all()
        if not rows:
            return created
        bulk_insert(
            session,
            CdcPassage.__table__,  # type: ignore[arg-type]
            [
                {
                    "certifier_id": certifier_id,
                    "folder_id": folder_id,
                    "id_technique": reference,
                    "state": PENDING,
                    # Until the issue date is given, the day the result was recorded.
                    "delivered_on": paris(entered_at).date(),
                    "created_at": now,
                    "updated_at": now,
                }
                for folder_id, reference, entered_at in rows
            ],
        )
        created += len(rows)


@dataclass(frozen=True)
class ResultData:
    """What `cordee folders set-result` records; None leaves a value unchanged."""

    issued_on: date | None = None
    mention: str | None = None
    edof_number: str | None = None
    birth_name: str | None = None
    birth_date: date | None = None
    sex: str | None = None
    birth_insee: str | None = None


def check_result(data: ResultData, today: date) -> ResultData:
    """Refuse values the CDC format cannot carry, with what to type instead."""
    if data.issued_on is not None and not (date(1900, 1, 1) <= data.issued_on <= today):
        raise InvalidInput(
            "date de délivrance impossible : elle doit être passée (format AAAA-MM-JJ)."
        )
    if data.mention is not None and data.mention not in MENTIONS:
        raise InvalidInput(
            f"mention inconnue « {data.mention} » : choisissez parmi {', '.join(MENTIONS)}."
        )
    if data.edof_number is not None and not _EDOF.match(data.edof_number):
        raise InvalidInput("numéro de dossier EDOF invalide : 13 lettres ou chiffres au plus.")
    if data.birth_name is not None and not (0 < len(data.birth_name.strip()) <= 60):
        raise InvalidInput("nom de naissance vide ou de plus de 60 caractères.")
    if data.birth_date is not None and not (date(1900, 1, 1) <= data.birth_date < today):
        raise InvalidInput("date de naissance impossible (format AAAA-MM-JJ).")
    if data.sex is not None and data.sex not in ("M", "F"):
        raise InvalidInput("sexe : M ou F, comme sur la pièce d'identité.")
    if data.birth_insee is not None and not _INSEE.match(data.birth_insee):
        raise InvalidInput(
            "code INSEE de la commune de naissance invalide : 5 caractères (ex. 31555 pour "
            "Toulouse, 2A004 pour Ajaccio, 99134 pour une naissance en Espagne)."
        )
    return data


def record_result(
    session: Session, certifier_id: int, folder_id: int, data: ResultData, now: datetime
) -> CdcPassage:
    """Store a folder's result and civil status for the deposit (the folder is « réussi »)."""
    ensure_passages(session, certifier_id, now)
    passage = session.scalars(
        select(CdcPassage)
        .where(CdcPassage.certifier_id == certifier_id, CdcPassage.folder_id == folder_id)
        .with_for_update()
    ).one()
    if passage.state == OK:
        raise Conflict(
            f"le passage {passage.id_technique} est déjà accepté par la Caisse des Dépôts : "
            "ses données ne changent plus ici. Une correction se demande à la CDC."
        )
    for name in (
        "issued_on",
        "mention",
        "edof_number",
        "birth_name",
        "birth_date",
        "sex",
        "birth_insee",
    ):
        value = getattr(data, name)
        if value is not None:
            setattr(passage, name, value.strip() if isinstance(value, str) else value)
    if data.issued_on is not None:
        passage.delivered_on = data.issued_on
        # A new delivery date restarts the reminders that depend on it.
        passage.due_soon_notified_at = None
        passage.overdue_notified_at = None
    passage.updated_at = now
    return passage


def awaiting_deposit() -> Any:
    """Passages not yet with the CDC: pending, or in a file generated but not deposited."""
    return or_(
        CdcPassage.state == PENDING,
        and_(CdcPassage.state == EXPORTED, WorkflowInstance.state == cdc_batch.State.GENERATED),
    )


def passage_rows(
    session: Session, certifier_id: int, condition: Any, limit: int | None = None
) -> list[Any]:
    """Passages with what a notice lists: holder, folder number, certification."""
    query = (
        select(
            CdcPassage,
            CertificationFolder.folder_number,
            CertificationFolder.attendee_first_name,
            CertificationFolder.attendee_last_name,
            Certification.code,
        )
        .join(CertificationFolder, CertificationFolder.id == CdcPassage.folder_id)
        .join(Certification, Certification.id == CertificationFolder.certification_id)
        .outerjoin(CdcBatch, CdcBatch.id == CdcPassage.batch_id)
        .outerjoin(WorkflowInstance, WorkflowInstance.id == CdcBatch.instance_id)
        .where(
            CdcPassage.certifier_id == certifier_id,
            CertificationFolder.certifier_id == certifier_id,
            condition,
        )
        .order_by(CdcPassage.delivered_on, CdcPassage.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.execute(query))


# ------------------------------------------------------------------- batches


def find_batch(
    session: Session, certifier_id: int | None, wanted: str
) -> tuple[CdcBatch, WorkflowInstance]:
    """A batch by reference (LD-…), idFlux or file name; within one certifier when given."""
    text = wanted.strip()
    query = select(CdcBatch, WorkflowInstance).join(
        WorkflowInstance, WorkflowInstance.id == CdcBatch.instance_id
    )
    if certifier_id is not None:
        query = query.where(
            CdcBatch.certifier_id == certifier_id, WorkflowInstance.certifier_id == certifier_id
        )
    if text.upper().startswith(f"{cdc_batch.WORKFLOW.reference_prefix}-"):
        query = query.where(WorkflowInstance.public_id == text.upper())
    else:
        query = query.where(or_(CdcBatch.id_flux == text, CdcBatch.file_name == text))
    rows = session.execute(query.limit(2).with_for_update(of=CdcBatch)).all()
    if not rows:
        raise NotFound(
            f"lot de dépôt « {text} » introuvable"
            + (" pour ce certificateur" if certifier_id is not None else "")
            + " : `cordee deposit status` liste les lots (référence LD-…, idFlux, fichier)."
        )
    if len(rows) > 1:
        raise Conflict(
            f"plusieurs lots répondent à « {text} » : désignez-le par sa référence LD-…."
        )
    batch, instance = rows[0]
    return batch, instance


def monitor(session: Session, certifier: Certifier, now: datetime) -> WorkflowInstance:
    """The certifier's « cdc_deposit » instance, which carries the reminders; made on first need."""
    key = f"{cdc_deposit.NAME}:certifier:{certifier.id}"
    found = session.scalars(
        select(WorkflowInstance).where(
            WorkflowInstance.active_key == key, WorkflowInstance.certifier_id == certifier.id
        )
    ).one_or_none()
    if found is not None:
        return found
    return new_instance(
        session,
        workflow=cdc_deposit.NAME,
        prefix=cdc_deposit.WORKFLOW.reference_prefix,
        initial=cdc_deposit.WORKFLOW.initial,
        certifier_id=certifier.id,
        data={"certifier_name": certifier.name},
        actor="cdc",
        now=now,
        active_key=key,
    )


# -------------------------------------------------------------------- status


@dataclass(frozen=True)
class BatchStatus:
    reference: str
    file_name: str
    id_flux: str
    state: str
    state_label: str
    passages: int
    ok: int
    ko: int
    id_traitement: str | None
    created_at: datetime
    deposited_at: datetime | None
    processed_at: datetime | None


@dataclass(frozen=True)
class DepositStatus:
    certifier_id: int
    certifier_name: str
    passages: dict[str, int]
    awaiting_deposit: int
    incomplete: int
    due_soon: int
    overdue: int
    next_deadline: date | None
    batches: tuple[BatchStatus, ...]


def deposit_status(session: Session, certifier_id: int, now: datetime) -> DepositStatus:
    """Batches, passages by state and deadlines of one certifier."""
    certifier = certifier_of(session, certifier_id)
    ensure_passages(session, certifier_id, now)
    today = paris(now).date()
    counts = dict(
        session.execute(
            select(CdcPassage.state, func.count())
            .where(CdcPassage.certifier_id == certifier_id)
            .group_by(CdcPassage.state)
        ).all()
    )
    waiting = (
        select(func.count(), func.min(CdcPassage.delivered_on))
        .select_from(CdcPassage)
        .outerjoin(CdcBatch, CdcBatch.id == CdcPassage.batch_id)
        .outerjoin(WorkflowInstance, WorkflowInstance.id == CdcBatch.instance_id)
        .where(
            CdcPassage.certifier_id == certifier_id, or_(awaiting_deposit(), CdcPassage.state == KO)
        )
    )
    awaiting, oldest = session.execute(waiting).one()
    overdue = session.scalar(
        waiting.with_only_columns(func.count()).where(
            CdcPassage.delivered_on < add_months(today, -3)
        )
    )
    due_soon = session.scalar(
        waiting.with_only_columns(func.count()).where(
            CdcPassage.delivered_on <= add_months(today, -2),
            CdcPassage.delivered_on >= add_months(today, -3),
        )
    )
    incomplete = session.scalar(
        select(func.count())
        .select_from(CdcPassage)
        .where(
            CdcPassage.certifier_id == certifier_id,
            CdcPassage.state.in_((PENDING, KO)),
            or_(
                CdcPassage.issued_on.is_(None),
                and_(
                    CdcPassage.edof_number.is_(None),
                    or_(
                        CdcPassage.birth_date.is_(None),
                        CdcPassage.sex.is_(None),
                        CdcPassage.birth_insee.is_(None),
                    ),
                ),
            ),
        )
    )
    batches = tuple(
        BatchStatus(
            reference=instance.public_id,
            file_name=batch.file_name,
            id_flux=batch.id_flux,
            state=instance.state,
            state_label=cdc_batch.STATE_LABELS.get(instance.state, instance.state),
            passages=batch.passages,
            ok=batch.ok_count,
            ko=batch.ko_count,
            id_traitement=batch.id_traitement,
            created_at=batch.created_at,
            deposited_at=batch.deposited_at,
            processed_at=batch.processed_at,
        )
        for batch, instance in session.execute(
            select(CdcBatch, WorkflowInstance)
            .join(WorkflowInstance, WorkflowInstance.id == CdcBatch.instance_id)
            .where(CdcBatch.certifier_id == certifier_id)
            .order_by(CdcBatch.id.desc())
        )
    )
    return DepositStatus(
        certifier_id=certifier.id,
        certifier_name=certifier.name,
        passages={state: int(counts.get(state, 0)) for state in PASSAGE_STATES},
        awaiting_deposit=int(awaiting or 0),
        incomplete=int(incomplete or 0),
        due_soon=int(due_soon or 0),
        overdue=int(overdue or 0),
        next_deadline=deadline_of(oldest) if oldest is not None else None,
        batches=batches,
    )
