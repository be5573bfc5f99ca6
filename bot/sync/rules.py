"""Sharing rules, pure: which fields may cross, which folders are shared, what they become.

A partner's training folder reaches its certifier only through this allow-list. Sources hand
over a `RawFolder` already cut down to ALLOWED_FIELDS; `parse` checks and normalises it into a
`TrainingFolder`, or explains in a `RowError` what is wrong with it (without quoting a
person's name or contact details, so errors can be shown and stored safely).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from functools import lru_cache

from bot.clock import PARIS
from workflows.certification_folder import State as FolderState
from workflows.certification_folder import event_towards


class Field(StrEnum):
    """The administrative data a certifier may receive: nothing else is ever read."""

    FOLDER_NUMBER = "folder_number"
    LAST_NAME = "last_name"
    FIRST_NAME = "first_name"
    EMAIL = "email"
    PHONE = "phone"
    CERTIFICATION_CODE = "certification_code"
    SESSION_START = "session_start"
    SESSION_END = "session_end"
    STATE = "state"
    STATE_DATE = "state_date"
    # When the partner last changed the folder: drives the incremental cursor, not stored.
    UPDATED_AT = "updated_at"


ALLOWED_FIELDS = frozenset(Field)
REQUIRED_FIELDS = (
    Field.FOLDER_NUMBER,
    Field.LAST_NAME,
    Field.FIRST_NAME,
    Field.CERTIFICATION_CODE,
    Field.STATE,
)
FIELD_LABELS = {
    Field.FOLDER_NUMBER: "N° du dossier",
    Field.LAST_NAME: "Nom",
    Field.FIRST_NAME: "Prénom",
    Field.EMAIL: "Courriel",
    Field.PHONE: "Téléphone",
    Field.CERTIFICATION_CODE: "Certification",
    Field.SESSION_START: "Date de début",
    Field.SESSION_END: "Date de fin",
    Field.STATE: "État",
    Field.STATE_DATE: "Date de l'état",
    Field.UPDATED_AT: "Date de mise à jour",
}

# Training-folder states (Wedof's names), see domain.md §3.1.
SHARED_STATES = (
    "accepted",
    "inTraining",
    "terminated",
    "serviceDoneDeclared",
    "serviceDoneValidated",
)
EARLY_STATES = ("notProcessed", "validated", "waitingAcceptation")
REFUSED_STATES = ("refusedByAttendee", "refusedByOrganism", "refusedByFinancer")
CANCELLED_STATES = (
    "canceledByAttendee",
    "canceledByAttendeeNotRealized",
    "canceledByOrganism",
    "canceledByFinancer",
    "rejectedWithoutTitulaireSuite",
)
TRAINING_STATES = SHARED_STATES + EARLY_STATES + REFUSED_STATES + CANCELLED_STATES

# French labels of EDOF and Wedof exports, as people type them (accents and case ignored).
_STATE_LABELS = {
    "Non traité": "notProcessed",
    "Validé": "validated",
    "Validé en cours d'instruction France Travail": "waitingAcceptation",
    "En cours d'instruction": "waitingAcceptation",
    "Accepté": "accepted",
    "En formation": "inTraining",
    "Sortie de formation": "terminated",
    "Service fait déclaré": "serviceDoneDeclared",
    "Service fait validé": "serviceDoneValidated",
    "Refus titulaire": "refusedByAttendee",
    "Refusé par le titulaire": "refusedByAttendee",
    "Refusé par l'organisme": "refusedByOrganism",
    "Refusé par le financeur": "refusedByFinancer",
    "Annulé par le titulaire": "canceledByAttendee",
    "Annulation titulaire non réalisé": "canceledByAttendeeNotRealized",
    "Annulation titulaire, non réalisé": "canceledByAttendeeNotRealized",
    "Annulé par l'organisme": "canceledByOrganism",
    "Annulé par le financeur": "canceledByFinancer",
    "Annulé sans suite": "rejectedWithoutTitulaireSuite",
}

MAX_NAME = 100
MAX_FOLDER_NUMBER = 64
FOLDER_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/\-]*")
# A plausibility check only: the address is used to convene the candidate, not to log in, and a
# full validator would cost more than the rest of a row (100,000 rows per run).
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHONE_KEEP = re.compile(r"[\s.()\-]")
PHONE = re.compile(r"\+?\d{6,20}")
CERTIFICATION_CODE = re.compile(r"(RNCP|RS)\d{1,6}")
ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
FRENCH_DATE = re.compile(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})")
TIME_PART = re.compile(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?")
UNUSUAL_SPACE = re.compile(r"[^\S ]")


def normalise_label(value: str) -> str:
    """« Date de début » → « date de debut »; « inTraining » → « in training »."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", value)
    plain = unicodedata.normalize("NFKD", spaced)
    plain = "".join(char for char in plain if not unicodedata.combining(char)).lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", plain).split())


STATE_ALIASES: dict[str, str] = {
    **{normalise_label(state): state for state in TRAINING_STATES},
    **{normalise_label(label): state for label, state in _STATE_LABELS.items()},
}

Value = str | date | datetime | int | float | None


@dataclass(frozen=True, slots=True)
class RawFolder:
    """A training folder as a source read it, already cut down to the allow-list."""

    line: int | None
    values: Mapping[str, Value]


@dataclass(frozen=True, slots=True)
class RowError:
    """Why a row was rejected; `line` in a file (the header is line 1), None for an API."""

    line: int | None
    folder_number: str | None
    message: str

    def describe(self) -> str:
        where = f"ligne {self.line}" if self.line is not None else "dossier"
        folder = f" (dossier {self.folder_number})" if self.folder_number else ""
        return f"{where}{folder} : {self.message}"


@dataclass(frozen=True, slots=True)
class TrainingFolder:
    """The administrative data of one training folder, checked and normalised."""

    line: int | None
    folder_number: str
    last_name: str
    first_name: str
    email: str | None
    phone: str | None
    certification_code: str
    session_start: date | None
    session_end: date | None
    state: str
    state_on: date | None
    updated_at: datetime | None
    # Digest of the source's values (see fingerprint()): unchanged rows need no work at all.
    fingerprint: str


# What a folder's digest covers: every stored field, not the « last update » stamp.
FINGERPRINTED = tuple(field for field in Field if field is not Field.UPDATED_AT)
_NOTHING = ("",) * len(FINGERPRINTED)


def fingerprint(values: Mapping[str, Value]) -> str:
    """Digest of a row's allow-listed values as the source gave them.

    Taken before any checking, so that the next run recognises an unchanged row without
    parsing it again: a re-imported file of 100,000 folders costs little more than reading it.
    """
    # map() over C callables: this runs for every row of every run.
    text = "\x1f".join(map(str, map(values.get, FINGERPRINTED, _NOTHING)))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def folder_key(values: Mapping[str, Value]) -> str:
    """The folder number as parse() will normalise it (to find a row's stored folder)."""
    return _text(values.get(Field.FOLDER_NUMBER))


def restrict(values: Mapping[str, Value]) -> dict[str, Value]:
    """Keep the allow-listed fields only: prices, funding, billing and notes never pass."""
    return {key: value for key, value in values.items() if key in ALLOWED_FIELDS}


# ------------------------------------------------------------------- parsing


def parse(raw: RawFolder, digest: str | None = None) -> TrainingFolder | RowError:
    """Check one row; every problem of the row is named in one message.

    `digest` is the row's fingerprint() when the caller has already taken it.
    """
    values = raw.values
    problems: list[str] = []
    number = _text(values.get(Field.FOLDER_NUMBER))
    if not number:
        problems.append("numéro de dossier manquant")
    elif len(number) > MAX_FOLDER_NUMBER or not FOLDER_NUMBER.fullmatch(number):
        problems.append(
            "numéro de dossier invalide (lettres, chiffres, « . », « / », « - » ; "
            f"{MAX_FOLDER_NUMBER} caractères au plus)"
        )
        number = ""
    last_name = _name(values.get(Field.LAST_NAME), "nom", problems)
    first_name = _name(values.get(Field.FIRST_NAME), "prénom", problems)
    email = _text(values.get(Field.EMAIL)) or None
    if email is not None and (len(email) > 320 or not EMAIL.fullmatch(email)):
        problems.append("adresse électronique invalide")
        email = None
    phone = _phone(values.get(Field.PHONE), problems)
    code = _certification_code(values.get(Field.CERTIFICATION_CODE), problems)
    start = _date(values.get(Field.SESSION_START), "date de début", problems)
    end = _date(values.get(Field.SESSION_END), "date de fin", problems)
    if start and end and end < start:
        problems.append(
            f"date de fin ({end:%d/%m/%Y}) antérieure à la date de début ({start:%d/%m/%Y})"
        )
    state = _state(values.get(Field.STATE), problems)
    state_on = _date(values.get(Field.STATE_DATE), "date de l'état", problems)
    updated_at = _instant(values.get(Field.UPDATED_AT), problems)
    if problems:
        return RowError(raw.line, number or None, " ; ".join(problems))
    return TrainingFolder(
        line=raw.line,
        folder_number=number,
        last_name=last_name,
        first_name=first_name,
        email=email,
        phone=phone,
        certification_code=code,
        session_start=start,
        session_end=end,
        state=state,
        state_on=state_on,
        updated_at=updated_at,
        fingerprint=digest or fingerprint(values),
    )


def _text(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        stripped = value.strip()
        if "  " not in stripped and not UNUSUAL_SPACE.search(stripped):
            return stripped  # the common case, without splitting and joining again
    elif isinstance(value, float) and value.is_integer():
        value = int(value)  # spreadsheets turn « 123456 » into 123456.0
    return " ".join(str(value).split())


def _name(value: Value, what: str, problems: list[str]) -> str:
    text = _text(value)
    if not text:
        problems.append(f"{what} manquant")
    elif len(text) > MAX_NAME:
        problems.append(f"{what} trop long ({MAX_NAME} caractères au plus)")
    return text


def _phone(value: Value, problems: list[str]) -> str | None:
    text = PHONE_KEEP.sub("", _text(value))
    if not text:
        return None
    if not PHONE.fullmatch(text):
        problems.append("numéro de téléphone invalide")
        return None
    return text


def _certification_code(value: Value, problems: list[str]) -> str:
    text = _text(value).replace(" ", "").upper()
    if not text:
        problems.append("code de certification manquant")
    elif not CERTIFICATION_CODE.fullmatch(text):
        problems.append(
            f"code de certification « {text[:20]} » invalide (attendu RNCP34567 ou RS5875)"
        )
    return text


def _state(value: Value, problems: list[str]) -> str:
    text = _text(value)
    if not text:
        problems.append("état du dossier manquant")
        return ""
    state = _state_of(text)
    if state is None:
        problems.append(
            f"état « {text[:40]} » inconnu (par ex. « Accepté », « En formation », "
            "« Sortie de formation », « Annulé par le titulaire » ou accepted, inTraining…)"
        )
        return ""
    return state


@lru_cache(maxsize=256)
def _state_of(text: str) -> str | None:
    # A file holds a handful of distinct states: normalise each spelling once.
    return STATE_ALIASES.get(normalise_label(text))


def _date(value: Value, what: str, problems: list[str]) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value)
    if not text:
        return None
    parsed = parse_date(text)
    if parsed is None:
        problems.append(f"{what} « {text[:30]} » invalide (attendu JJ/MM/AAAA ou AAAA-MM-JJ)")
    return parsed


@lru_cache(maxsize=4096)
def parse_date(text: str) -> date | None:
    """« 23/11/2026 », « 2026-11-23 », with or without a time: the calendar day, or None."""
    head, _, rest = text.replace("T", " ", 1).partition(" ")
    if rest and not TIME_PART.match(rest):
        return None
    match = ISO_DATE.fullmatch(head)
    try:
        if match:
            return date(int(match[1]), int(match[2]), int(match[3]))
        match = FRENCH_DATE.fullmatch(head)
        if match:
            return date(int(match[3]), int(match[2]), int(match[1]))
    except ValueError:
        return None  # 31/02/2026 and the like
    return None


def updated_instant(values: Mapping[str, Value]) -> datetime | None:
    """The « last update » of a row, or None when absent or unreadable."""
    return _instant(values.get(Field.UPDATED_AT), [])


def _instant(value: Value, problems: list[str]) -> datetime | None:
    """The partner's « last update »: naive values are Paris time (French exports)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        instant = value
    elif isinstance(value, date):
        instant = datetime(value.year, value.month, value.day)  # noqa: DTZ001 - zoned below
    else:
        text = _text(value)
        try:
            instant = datetime.fromisoformat(text)
        except ValueError:
            day = parse_date(text)
            if day is None:
                problems.append(f"date de mise à jour « {text[:30]} » invalide")
                return None
            instant = datetime(day.year, day.month, day.day)  # noqa: DTZ001 - zoned below
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=PARIS)
    return instant


# ------------------------------------------------------------------ decisions


class Verdict(StrEnum):
    """What one valid training folder means for its certification folder."""

    CREATE = "create"  # newly shared: a certification folder « à enregistrer » is created
    UPDATE = "update"  # already shared: its administrative data is refreshed
    UNCHANGED = "unchanged"
    IGNORE = "ignore"  # not shared (state too early, certification not covered or paused)


@dataclass(frozen=True, slots=True)
class Known:
    """What the store already holds for a folder number."""

    fingerprint: str
    folder_state: str


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    # Event for the certification folder (abort or refuse) when the training folder ended.
    event: str | None = None


def decide(folder: TrainingFolder, known: Known | None, shared_codes: Iterable[str]) -> Decision:
    """The sharing rules for one folder; pure."""
    if folder.certification_code not in shared_codes:
        return Decision(Verdict.IGNORE)
    if known is None:
        if folder.state in SHARED_STATES:
            return Decision(Verdict.CREATE)
        return Decision(Verdict.IGNORE)  # never shared: earlier, refused or cancelled
    event = exit_event(known.folder_state, folder.state)
    if event is None and known.fingerprint == folder.fingerprint:
        return Decision(Verdict.UNCHANGED)
    return Decision(Verdict.UPDATE, event)


def exit_event(folder_state: str, training_state: str) -> str | None:
    """A shared folder later refused or cancelled: the certification folder follows it.

    A refusal once the candidate is past registration reads as an abandonment; a folder with
    a result (or already closed) keeps it.
    """
    if training_state in REFUSED_STATES:
        wanted = [FolderState.REFUSED, FolderState.ABORTED]
    elif training_state in CANCELLED_STATES:
        wanted = [FolderState.ABORTED]
    else:
        return None
    for target in wanted:
        event = event_towards(folder_state, target)
        if event is not None:
            return event
    return None
