"""Certification folders in the store: bulk writes for the sync, tenant-scoped reads, set-state.

Every read takes the certifier's id and filters on it: a certifier never sees, nor changes,
another certifier's folders, whatever the channel asking (CLI, web, later Slack).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from bot.engine import REFERENCE_ALPHABET
from bot.errors import Conflict, InvalidInput, NotFound
from bot.events import HistoryEntry
from bot.store.models import (
    Certification,
    CertificationFolder,
    Certifier,
    Organisation,
    Partnership,
    TransitionLog,
    WorkflowInstance,
)
from bot.sync.monitor import contact_of
from bot.sync.rules import Known, TrainingFolder
from bot.sync.services import SyncServices
from workflows.certification_folder import NAME, STATE_LABELS, WORKFLOW, State, event_towards

FOLDERS = cast(Table, CertificationFolder.__table__)
INSTANCES = cast(Table, WorkflowInstance.__table__)
LOG = cast(Table, TransitionLog.__table__)
LOOKUP_CHUNK = 500
# Random bytes below this bound map evenly onto the alphabet; the others are dropped.
_EVEN_BOUND = 256 - 256 % len(REFERENCE_ALPHABET)


def new_reference() -> str:
    """« DC-7KQ2M9XP4R »: the same shape and alphabet as the engine's, drawn fast in bulk."""
    while True:
        letters = [
            REFERENCE_ALPHABET[byte % len(REFERENCE_ALPHABET)]
            for byte in secrets.token_bytes(16)
            if byte < _EVEN_BOUND
        ]
        if len(letters) >= 10:
            return f"{WORKFLOW.reference_prefix}-{''.join(letters[:10])}"


# ------------------------------------------------------------ sync writes


@dataclass(frozen=True, slots=True)
class Stored:
    """A folder already in the store, as the sync needs it."""

    id: int
    public_id: str
    known: Known


def existing(session: Session, partnership_id: int, numbers: Sequence[str]) -> dict[str, Stored]:
    found: dict[str, Stored] = {}
    for start in range(0, len(numbers), LOOKUP_CHUNK):
        chunk = numbers[start : start + LOOKUP_CHUNK]
        rows = session.execute(
            select(
                CertificationFolder.folder_number,
                CertificationFolder.id,
                CertificationFolder.fingerprint,
                WorkflowInstance.public_id,
                WorkflowInstance.state,
            )
            .join(WorkflowInstance, WorkflowInstance.id == CertificationFolder.instance_id)
            .where(
                CertificationFolder.partnership_id == partnership_id,
                CertificationFolder.folder_number.in_(chunk),
            )
        )
        for number, folder_id, fingerprint, public_id, state in rows:
            found[number] = Stored(folder_id, public_id, Known(fingerprint, state))
    return found


def digests(session: Session, partnership_id: int) -> set[str]:
    """The digests of every folder of a partnership (a few MB for 100,000 folders)."""
    # Through the session's Core connection: no ORM row handling, twice as fast here.
    query = select(FOLDERS.c.fingerprint).where(FOLDERS.c.partnership_id == partnership_id)
    return set(session.connection().execute(query).scalars())


def _columns(folder: TrainingFolder, certification_id: int) -> dict[str, Any]:
    """The allow-listed fields, as stored: this is all a certification folder keeps."""
    return {
        "certification_id": certification_id,
        "attendee_last_name": folder.last_name,
        "attendee_first_name": folder.first_name,
        "attendee_email": folder.email,
        "attendee_phone": folder.phone,
        "session_start": folder.session_start,
        "session_end": folder.session_end,
        "training_state": folder.state,
        "training_state_on": folder.state_on,
        "fingerprint": folder.fingerprint,
    }


def create_folders(
    session: Session,
    *,
    certifier_id: int,
    partnership_id: int,
    folders: Sequence[TrainingFolder],
    codes: dict[str, int],
    actor: str,
    now: datetime,
) -> None:
    """New certification folders « à enregistrer », with their instance and audit-trail row.

    The workflow starts silently (no effects), so rows are written in bulk rather than through
    the engine one by one: the same rows, thousands of times faster.
    """
    if not folders:
        return
    references = [new_reference() for _ in folders]
    instance_rows = [
        {
            "public_id": reference,
            "workflow": NAME,
            "certifier_id": certifier_id,
            "partnership_id": partnership_id,
            "state": WORKFLOW.initial,
            "version": 1,
            "active_key": None,
            "data": {"folder_number": folder.folder_number},
            "state_entered_at": now,
            "due_at": None,
            "due_event": None,
            "last_error": None,
            "created_at": now,
            "updated_at": now,
        }
        for reference, folder in zip(references, folders, strict=True)
    ]
    bulk_insert(session, INSTANCES, instance_rows)
    # Read the ids back by reference: RETURNING in bulk goes row by row on SQLite.
    ids: dict[str, int] = {}
    for start in range(0, len(references), LOOKUP_CHUNK):
        chunk = references[start : start + LOOKUP_CHUNK]
        ids.update(
            session.execute(
                select(INSTANCES.c.public_id, INSTANCES.c.id).where(
                    INSTANCES.c.public_id.in_(chunk)
                )
            ).all()
        )
    instance_ids = [ids[reference] for reference in references]
    bulk_insert(
        session,
        LOG,
        [
            {
                "instance_id": instance_id,
                "at": now,
                "from_state": None,
                "event": "start",
                "to_state": WORKFLOW.initial,
                "actor": actor,
            }
            for instance_id in instance_ids
        ],
    )
    bulk_insert(
        session,
        FOLDERS,
        [
            {
                "instance_id": instance_id,
                "certifier_id": certifier_id,
                "partnership_id": partnership_id,
                "folder_number": folder.folder_number,
                **_columns(folder, codes[folder.certification_code]),
                "created_at": now,
                "updated_at": now,
            }
            for instance_id, folder in zip(instance_ids, folders, strict=True)
        ],
    )


def bulk_insert(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT many rows in the session's transaction: `session.execute(insert(table), rows)`.

    On SQLite the rows go straight to the DB-API's executemany, with each column's bind
    processing (UTC datetimes, dates) done once per distinct value rather than once per row
    and column: about twice as fast, which matters at 100,000 folders a run.
    """
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    names = list(rows[0])
    # inline(): no RETURNING of the new ids (they are read back by reference).
    compiled = insert(table).inline().compile(dialect=dialect, column_keys=names)
    if not compiled.positional or compiled.positiontup is None:
        # PostgreSQL: psycopg adapts JSON itself and SQLAlchemy batches the rows already.
        session.execute(insert(table), list(rows))
        return
    processors = {
        name: table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    }

    def column(name: str) -> list[Any]:
        values = [row[name] for row in rows]
        process = processors[name]
        if process is None:
            return values
        try:
            distinct = {value: process(value) for value in set(values) if value is not None}
        except TypeError:  # unhashable values (JSON documents): each processed on its own
            return [None if value is None else process(value) for value in values]
        return [None if value is None else distinct[value] for value in values]

    parameters = list(zip(*(column(name) for name in compiled.positiontup), strict=True))
    connection.exec_driver_sql(compiled.string, parameters)


def update_folders(
    session: Session,
    updates: Sequence[tuple[Stored, TrainingFolder]],
    codes: dict[str, int],
    now: datetime,
) -> None:
    if not updates:
        return
    statement = (
        update(FOLDERS)
        .where(FOLDERS.c.id == bindparam("folder_id"))
        .values({name: bindparam(name) for name in _columns_names()} | {"updated_at": now})
    )
    session.execute(
        statement,
        [
            {"folder_id": stored.id, **_columns(folder, codes[folder.certification_code])}
            for stored, folder in updates
        ],
        execution_options={"synchronize_session": False},
    )


def _columns_names() -> tuple[str, ...]:
    return (
        "certification_id",
        "attendee_last_name",
        "attendee_first_name",
        "attendee_email",
        "attendee_phone",
        "session_start",
        "session_end",
        "training_state",
        "training_state_on",
        "fingerprint",
    )


# ------------------------------------------------------------------- reads


@dataclass(frozen=True)
class FolderRow:
    reference: str
    folder_number: str
    state: str
    state_label: str
    certification_code: str
    organisation_id: int
    organisation_name: str
    partnership_id: int
    attendee_last_name: str
    attendee_first_name: str
    training_state: str
    session_start: date | None
    session_end: date | None
    updated_at: datetime


@dataclass(frozen=True)
class FolderDetail:
    row: FolderRow
    attendee_email: str | None
    attendee_phone: str | None
    training_state_on: date | None
    certification_title: str
    created_at: datetime
    history: tuple[HistoryEntry, ...]


def _base_query(certifier_id: int) -> Any:
    return (
        select(CertificationFolder, WorkflowInstance, Certification, Organisation)
        .join(WorkflowInstance, WorkflowInstance.id == CertificationFolder.instance_id)
        .join(Certification, Certification.id == CertificationFolder.certification_id)
        .join(Partnership, Partnership.id == CertificationFolder.partnership_id)
        .join(Organisation, Organisation.id == Partnership.organisation_id)
        .where(
            CertificationFolder.certifier_id == certifier_id,
            WorkflowInstance.certifier_id == certifier_id,
        )
    )


def _row(
    folder: CertificationFolder,
    instance: WorkflowInstance,
    certification: Certification,
    organisation: Organisation,
) -> FolderRow:
    return FolderRow(
        reference=instance.public_id,
        folder_number=folder.folder_number,
        state=instance.state,
        state_label=STATE_LABELS["fr"].get(instance.state, instance.state),
        certification_code=certification.code,
        organisation_id=organisation.id,
        organisation_name=organisation.name,
        partnership_id=folder.partnership_id,
        attendee_last_name=folder.attendee_last_name,
        attendee_first_name=folder.attendee_first_name,
        training_state=folder.training_state,
        session_start=folder.session_start,
        session_end=folder.session_end,
        updated_at=folder.updated_at,
    )


def list_folders(
    session: Session,
    certifier_id: int,
    *,
    organisation_id: int | None = None,
    state: str | None = None,
    certification_code: str | None = None,
    limit: int | None = None,
) -> list[FolderRow]:
    """The certifier's folders, newest first; other certifiers' folders are never read."""
    if state is not None:
        check_state(state)
    query = _base_query(certifier_id)
    if organisation_id is not None:
        query = query.where(Partnership.organisation_id == organisation_id)
    if state is not None:
        query = query.where(WorkflowInstance.state == state)
    if certification_code is not None:
        query = query.where(Certification.code == certification_code)
    query = query.order_by(CertificationFolder.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [_row(*row) for row in session.execute(query)]


def _find(session: Session, certifier_id: int, reference: str) -> tuple[Any, ...]:
    """By « DC-… » reference or by training folder number, within one certifier only."""
    wanted = reference.strip()
    query = _base_query(certifier_id)
    if wanted.upper().startswith(f"{WORKFLOW.reference_prefix}-"):
        query = query.where(WorkflowInstance.public_id == wanted.upper())
    else:
        query = query.where(CertificationFolder.folder_number == wanted)
    rows = list(session.execute(query.limit(2)))
    if not rows:
        raise NotFound(
            f"dossier de certification « {wanted} » introuvable pour ce certificateur. "
            "`cordee folders list` affiche ses dossiers."
        )
    if len(rows) > 1:
        raise Conflict(
            f"plusieurs organismes ont un dossier n° {wanted} : désignez-le par sa référence "
            "DC-… (`cordee folders list`)."
        )
    return tuple(rows[0])


def folder_detail(session: Session, certifier_id: int, reference: str) -> FolderDetail:
    folder, instance, certification, organisation = _find(session, certifier_id, reference)
    history = tuple(
        HistoryEntry(entry.at, entry.from_state, entry.event, entry.to_state, entry.actor)
        for entry in session.scalars(
            select(TransitionLog)
            .where(TransitionLog.instance_id == instance.id)
            .order_by(TransitionLog.id)
        )
    )
    return FolderDetail(
        row=_row(folder, instance, certification, organisation),
        attendee_email=folder.attendee_email,
        attendee_phone=folder.attendee_phone,
        training_state_on=folder.training_state_on,
        certification_title=certification.title,
        created_at=folder.created_at,
        history=history,
    )


def check_state(state: str) -> str:
    if state not in {s.value for s in State}:
        raise InvalidInput(
            f"état inconnu « {state} » : choisissez parmi {', '.join(s.value for s in State)}."
        )
    return state


# --------------------------------------------------------------- set-state


async def set_folder_state(
    services: SyncServices, certifier_id: int, reference: str, target: str, *, actor: str
) -> FolderDetail:
    """Move a folder to `target`; a result (success, failed) is told to the organisation."""
    check_state(target)

    def work(session: Session) -> FolderDetail:
        folder, instance, certification, organisation = _find(session, certifier_id, reference)
        event = event_towards(instance.state, target)
        if event is None:
            raise Conflict(_impossible(instance.state, target, instance.public_id))
        if target in (State.SUCCESS, State.FAILED):
            instance.data = {
                **instance.data,
                **_message_data(session, folder, instance, certification, organisation, target),
            }
        services.engine.fire_in(session, instance.public_id, event, actor=actor)
        return folder_detail(session, certifier_id, instance.public_id)

    detail = await services.db.run(work)
    await services.engine.deliver()
    return detail


def _impossible(state: str, target: str, reference: str) -> str:
    labels = STATE_LABELS["fr"]
    possible = sorted(
        {labels[t.target] for t in WORKFLOW.transitions if t.source == state}, key=str
    )
    if not possible:
        return (
            f"le dossier {reference} est « {labels[state]} » : c'est un état final, "
            "il ne change plus."
        )
    return (
        f"le dossier {reference} est « {labels[state]} » : il ne peut pas passer à "
        f"« {labels[target]} » (états possibles : {', '.join(possible)})."
    )


def _message_data(
    session: Session,
    folder: CertificationFolder,
    instance: WorkflowInstance,
    certification: Certification,
    organisation: Organisation,
    target: str,
) -> dict[str, Any]:
    """What the result mail and the staff notice say, gathered when the result is recorded."""
    certifier = session.get(Certifier, folder.certifier_id)
    assert certifier is not None  # noqa: S101 - foreign key
    tally: dict[str, int] = dict(
        session.execute(
            select(WorkflowInstance.state, func.count())
            .join(CertificationFolder, CertificationFolder.instance_id == WorkflowInstance.id)
            .where(
                CertificationFolder.certifier_id == folder.certifier_id,
                CertificationFolder.certification_id == folder.certification_id,
                WorkflowInstance.state.in_((State.SUCCESS, State.FAILED)),
                WorkflowInstance.id != instance.id,
            )
            .group_by(WorkflowInstance.state)
        ).all()
    )
    return {
        "contact_id": contact_of(session, organisation.id),
        "certifier_name": certifier.name,
        "certifier_contact_email": certifier.contact_email,
        "organisation_name": organisation.name,
        "folder_number": folder.folder_number,
        "attendee_name": f"{folder.attendee_first_name} {folder.attendee_last_name}",
        "certification": {"code": certification.code, "title": certification.title},
        "tally": {
            "success": tally.get(State.SUCCESS, 0) + (target == State.SUCCESS),
            "failed": tally.get(State.FAILED, 0) + (target == State.FAILED),
        },
    }


def count_by_state(session: Session, certifier_id: int) -> dict[str, int]:
    return dict(
        session.execute(
            select(WorkflowInstance.state, func.count())
            .join(CertificationFolder, CertificationFolder.instance_id == WorkflowInstance.id)
            .where(CertificationFolder.certifier_id == certifier_id)
            .group_by(WorkflowInstance.state)
        ).all()
    )


def numbers_of(folders: Iterable[TrainingFolder]) -> list[str]:
    return [folder.folder_number for folder in folders]
