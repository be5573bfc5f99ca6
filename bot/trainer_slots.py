"""Trainers' slots from an organisation's planning (CSV): parsed, checked, then upserted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.clock import PARIS
from bot.csv_table import read_rows
from bot.directory import check_email
from bot.errors import InvalidInput
from bot.store.models import Trainer, TrainerSlot
from bot.trainers import Inviter

COLUMNS = {
    "email": ("email", "e_mail", "courriel", "adresse", "mail"),
    "action": ("action", "action_de_formation", "formation", "action_title", "title"),
    "start": ("debut", "start", "starts_at", "date_debut"),
    "end": ("fin", "end", "ends_at", "date_fin"),
    "room": ("salle", "room", "lieu"),
    "participants": ("participants", "nombre_de_participants", "stagiaires"),
}
REQUIRED = frozenset({"email", "action", "start", "end"})
TEXT_LIMIT = 255
PARTICIPANTS_LIMIT = 10_000


@dataclass(frozen=True)
class SlotRow:
    """A checked row: times in UTC."""

    line: int
    email: str
    action_title: str
    starts_at: datetime
    ends_at: datetime
    room: str
    participants: int


@dataclass(frozen=True)
class RowError:
    line: int
    message: str


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)


def parse_when(text: str) -> datetime:
    """`JJ/MM/AAAA HH:MM` in Paris time, or ISO 8601 (Paris time unless it names an offset)."""
    value = text.strip()
    if not value:
        raise ValueError("date manquante")
    try:
        # Written in Paris time: which offset applies is settled just below.
        moment = datetime.strptime(value, "%d/%m/%Y %H:%M").replace(tzinfo=PARIS)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"date « {value} » illisible : écrivez JJ/MM/AAAA HH:MM (ex. 02/03/2027 09:00)"
            ) from None
        if moment.tzinfo is not None:
            return moment.astimezone(UTC)
    local = moment.replace(tzinfo=PARIS)
    # The hour skipped when clocks go forward does not exist: say so rather than guess.
    if local.astimezone(UTC).astimezone(PARIS).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise ValueError(f"{value} n'existe pas à Paris (passage à l'heure d'été)")
    return local.astimezone(UTC)


def parse_slots(data: bytes) -> tuple[list[SlotRow], list[RowError]]:
    """Every row checked; a file without the needed columns raises InvalidInput."""
    slots: list[SlotRow] = []
    errors: list[RowError] = []
    for row in read_rows(data, COLUMNS, REQUIRED):
        cells = row.cells
        try:
            slots.append(_slot(row.line, cells))
        except (ValueError, InvalidInput) as error:
            errors.append(RowError(row.line, str(error)))
    return slots, errors


def _slot(line: int, cells: dict[str, str]) -> SlotRow:
    if not cells["email"]:
        raise ValueError("adresse électronique manquante")
    email = check_email(cells["email"]).lower()
    title = " ".join(cells["action"].split())
    if not title:
        raise ValueError("intitulé de l'action manquant")
    if len(title) > TEXT_LIMIT:
        raise ValueError(f"intitulé de l'action trop long ({TEXT_LIMIT} caractères au plus)")
    try:
        starts_at = parse_when(cells["start"])
    except ValueError as error:
        raise ValueError(f"début : {error}") from None
    try:
        ends_at = parse_when(cells["end"])
    except ValueError as error:
        raise ValueError(f"fin : {error}") from None
    if ends_at <= starts_at:
        raise ValueError("la fin doit venir après le début")
    room = " ".join(cells.get("room", "").split())
    if len(room) > TEXT_LIMIT:
        raise ValueError(f"salle trop longue ({TEXT_LIMIT} caractères au plus)")
    count = cells.get("participants", "") or "0"
    if not count.isdigit() or int(count) > PARTICIPANTS_LIMIT:
        raise ValueError(f"nombre de participants « {count} » invalide : un entier, ex. 12")
    return SlotRow(line, email, title, starts_at, ends_at, room, int(count))


def import_slots(
    session: Session, inviter: Inviter, slots: list[SlotRow], now: datetime
) -> ImportSummary:
    """Create or update each slot of this inviter's trainers, in the caller's transaction.

    A slot is known by its trainer, start and action: importing the same planning again
    updates end, room and participants instead of adding duplicates.
    """
    summary = ImportSummary()
    emails = {slot.email for slot in slots}
    trainers = {
        trainer.email.lower(): trainer
        for trainer in session.scalars(
            select(Trainer).where(
                Trainer.inviter_key == inviter.key, func.lower(Trainer.email).in_(emails)
            )
        )
    }
    existing = {
        (slot.trainer_id, slot.starts_at, slot.action_title): slot
        for slot in session.scalars(
            select(TrainerSlot).where(TrainerSlot.trainer_id.in_([t.id for t in trainers.values()]))
        )
    }
    for slot in slots:
        trainer = trainers.get(slot.email)
        if trainer is None:
            summary.errors.append(
                RowError(
                    slot.line,
                    f"{slot.email} n'est pas un formateur de {inviter.name} : "
                    "invitez-le d'abord (cordee trainer invite).",
                )
            )
            continue
        key = (trainer.id, slot.starts_at, slot.action_title)
        found = existing.get(key)
        if found is None:
            # Kept in `existing` so that a line repeated in the file updates, not duplicates.
            existing[key] = TrainerSlot(
                trainer_id=trainer.id,
                action_title=slot.action_title,
                starts_at=slot.starts_at,
                ends_at=slot.ends_at,
                room=slot.room,
                participants=slot.participants,
                imported_at=now,
            )
            session.add(existing[key])
            summary.created += 1
        elif (found.ends_at, found.room, found.participants) == (
            slot.ends_at,
            slot.room,
            slot.participants,
        ):
            summary.unchanged += 1
        else:
            found.ends_at, found.room, found.participants = (
                slot.ends_at,
                slot.room,
                slot.participants,
            )
            found.imported_at = now
            summary.updated += 1
    session.flush()
    return summary
