"""The `/cordee` slash command: parsing, then answers rendered from templates, without Slack."""

from __future__ import annotations

import difflib
import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeAlias, assert_never

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bot.access_requests import STATE_LABELS, cancel_request, send_request
from bot.cdc.passages import deposit_status
from bot.clock import paris
from bot.directory import CERTIFICATION_CODE, check_certification_code, check_siret
from bot.engine import Engine
from bot.errors import Conflict, CordeeError, InvalidInput, InvalidTransition, NotFound
from bot.events import InstanceView
from bot.render import LANGUAGES, escape_mrkdwn
from bot.store.models import (
    Organisation,
    Partnership,
    PartnershipCertification,
    WorkflowInstance,
)
from bot.sync.status import list_status
from bot.trainers import find_inviter, invite
from workflows.access_request import NAME, Event, State

log = logging.getLogger("cordee.slack.commands")

SLASH = "/cordee"
# A second manual reminder within this interval sends nothing: a double click, or two
# colleagues pressing the same button, must not flood the organisation's contact.
REMIND_INTERVAL = timedelta(hours=1)
# Longer lists end with « … et N autres »: a Slack answer must stay readable.
LIST_CAP = 10
SUGGESTIONS = 3
# Below this similarity a name is not worth proposing.
SIMILARITY_CUTOFF = 0.45
# What a person typed, echoed back in an answer: enough to recognise it, never a wall of text.
ECHO_LIMIT = 60
ERROR_LIMIT = 300


# ------------------------------------------------------------------ commands


@dataclass(frozen=True)
class RequestAccess:
    """`demande-acces`: `partner` is a compact SIRET or a name ("" when missing)."""

    partner: str
    codes: tuple[str, ...] = ()

    @property
    def is_siret(self) -> bool:
        return len(self.partner) == 14 and self.partner.isdigit()


@dataclass(frozen=True)
class Status:
    pass


@dataclass(frozen=True)
class Remind:
    reference: str


@dataclass(frozen=True)
class Cancel:
    reference: str


@dataclass(frozen=True)
class Validate:
    pass


@dataclass(frozen=True)
class Help:
    unknown: str | None = None


@dataclass(frozen=True)
class InviteTrainer:
    """Invite a trainer to the certifier's trainer space: an email, then maybe a name."""

    email: str
    first_name: str = ""
    last_name: str = ""


Command: TypeAlias = RequestAccess | Status | Remind | Cancel | Validate | Help | InviteTrainer


@dataclass(frozen=True)
class SlackAnswer:
    text: str  # Slack mrkdwn, data escaped (bot.render.escape_mrkdwn)
    public: bool = False  # True: visible in the channel; False: only to the user (ephemeral)


_VERBS = {
    "demande-acces": "request",
    "request-access": "request",
    "statut": "status",
    "status": "status",
    "relancer": "remind",
    "remind": "remind",
    "annuler": "cancel",
    "cancel": "cancel",
    "valider": "validate",
    "validate": "validate",
    "aide": "help",
    "help": "help",
    "inviter": "invite",
    "invite": "invite",
}
_DASHES = re.compile(r"[_\u2010-\u2015\u2212]")
_CODE_PREFIXES = ("RNCP", "RS")
# Punctuation people copy around a reference (code formatting, quotes, a final full stop).
_REFERENCE_TRIM = "`*_.,;:!?()[]{}<>«»\"'\u2019 "
_SEPARATORS = ",;()"


def _fold(text: str) -> str:
    """Lower case, without accents: « Demande-Accès » and « demande-acces » are one word."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _verb(word: str) -> str | None:
    return _VERBS.get(_DASHES.sub("-", _fold(word)))


def _code(word: str) -> str | None:
    normalised = word.upper()
    if CERTIFICATION_CODE.fullmatch(normalised) is None:
        return None
    return check_certification_code(normalised)[1]


def _codes_of(word: str) -> list[str] | None:
    """The codes of « RNCP34567,RS5875 » (None when the word is not only codes)."""
    parts = [part for part in re.split(r"[,;()]", word) if part]
    codes = [_code(part) for part in parts]
    if not parts or any(code is None for code in codes):
        return None
    return [code for code in codes if code is not None]


def _partner_and_codes(words: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    name: list[str] = []
    codes: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        bare = word.strip(_SEPARATORS)
        following = words[index + 1].strip(_SEPARATORS) if index + 1 < len(words) else ""
        # « RS 5875 »: the prefix and the number typed apart, as check_certification_code allows.
        if bare.upper() in _CODE_PREFIXES and following.isdigit() and len(following) <= 6:
            joined = _code(bare + following)
            if joined is not None:
                codes.append(joined)
                index += 2
                continue
        found = _codes_of(word)
        if found is None:
            name.append(word)
        else:
            codes.extend(found)
        index += 1
    partner = " ".join(name)
    compact = partner.replace(" ", "")
    if len(compact) == 14 and compact.isdigit():
        partner = compact
    return partner, tuple(dict.fromkeys(codes))


def _reference(words: Sequence[str]) -> str:
    # The first word that is not only punctuation: « DA-… » may come with spaced quotes.
    found = (word.strip(_REFERENCE_TRIM) for word in words)
    return next((word.upper() for word in found if word), "")


def parse_command(text: str) -> Command:
    """What a person typed after `/cordee`; anything not understood is a Help."""
    words = text.split()
    if not words:
        return Help()
    verb, rest = _verb(words[0]), words[1:]
    if verb == "request":
        partner, codes = _partner_and_codes(rest)
        return RequestAccess(partner, codes)
    if verb == "status":
        return Status()
    if verb == "remind":
        return Remind(_reference(rest))
    if verb == "cancel":
        return Cancel(_reference(rest))
    if verb == "validate":
        return Validate()
    if verb == "help":
        return Help()
    if verb == "invite":
        email = next((w.strip("<>,;") for w in rest if "@" in w), "")
        # Slack turns a typed address into <mailto:a@b|a@b>: keep the address itself.
        email = email.removeprefix("mailto:").split("|")[0]
        names = [w for w in rest if "@" not in w]
        return InviteTrainer(email, names[0] if names else "", " ".join(names[1:]))
    return Help(unknown=_echo(words[0]))


# ------------------------------------------------------------------ answers


def _echo(text: str, limit: int = ECHO_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _language(language: str) -> str:
    return language if language in LANGUAGES else "fr"


def _user(user_id: str) -> str | None:
    """A Slack user id, mentioned as <@U…>; anything else is not put into a mention."""
    return user_id if re.fullmatch(r"[UW][A-Z0-9]{2,20}", user_id) else None


def _escaped(value: Any) -> Any:
    """Every string of the context made inert for mrkdwn, so that no template can forget one."""
    if isinstance(value, str):
        return escape_mrkdwn(value)
    if isinstance(value, Mapping):
        return {key: _escaped(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped(item) for item in value]
    return value


def _answer(
    engine: Engine, name: str, language: str, public: bool = False, **context: Any
) -> SlackAnswer:
    context.setdefault("command", SLASH)
    text = engine.renderer.slack(f"command_{name}", language, _escaped(context))
    return SlackAnswer(text=text.strip(), public=public)


def format_siret(siret: str) -> str:
    """« 443 061 841 00047 »: SIREN by threes, then the NIC, as on a Sirene notice."""
    if len(siret) != 14:
        return siret
    return f"{siret[:3]} {siret[3:6]} {siret[6:9]} {siret[9:]}"


def _state_label(state: str, language: str) -> str:
    try:
        return STATE_LABELS[language][State(state)]
    except ValueError:
        return state


async def run_command(
    engine: Engine, *, certifier_id: int, user_id: str, text: str, language: str
) -> SlackAnswer:
    """Answer `/cordee <text>` for a user already allowed to act for the certifier."""
    language = _language(language)
    command = parse_command(text)
    log.info("slash command %s for certifier %s", type(command).__name__, certifier_id)
    try:
        match command:
            case RequestAccess():
                return await _request_access(engine, certifier_id, user_id, command, language)
            case Status():
                return await _status(engine, certifier_id, language)
            case Remind(reference=reference):
                if not reference:
                    return _answer(engine, "missing", language, what="remind")
                return await remind_now(
                    engine,
                    certifier_id=certifier_id,
                    reference=reference,
                    user_id=user_id,
                    language=language,
                )
            case Cancel(reference=reference):
                if not reference:
                    return _answer(engine, "missing", language, what="cancel")
                return await cancel(
                    engine,
                    certifier_id=certifier_id,
                    reference=reference,
                    user_id=user_id,
                    language=language,
                )
            case Validate():
                return _answer(engine, "validate", language)
            case Help(unknown=unknown):
                return _answer(engine, "help", language, unknown=unknown)
            case InviteTrainer():
                return await _invite_trainer(engine, certifier_id, user_id, command, language)
            case _:
                assert_never(command)
    except CordeeError as error:
        # A rule of the store or the workflow said no: the person reads why, nothing changed.
        log.info("slash command %s refused: %s", type(command).__name__, type(error).__name__)
        return _answer(engine, "error", language, message=_echo(str(error), ERROR_LIMIT))


# ------------------------------------------------------------ trainers


async def _invite_trainer(
    engine: Engine, certifier_id: int, user_id: str, command: InviteTrainer, language: str
) -> SlackAnswer:
    """The certifier invites one of its trainers (jury, assessor) to its trainer space."""
    if not command.email:
        return _answer(engine, "missing", language, what="invite")
    inviter = await engine.db.run(lambda s: find_inviter(s, certifier=str(certifier_id)))
    result = await invite(
        engine,
        inviter,
        email=command.email,
        first_name=command.first_name,
        last_name=command.last_name,
        actor=f"slack:{user_id}",
    )
    return _answer(
        engine,
        "invite",
        language,
        public=result.outcome == "invited",
        outcome=result.outcome,
        email=command.email.lower(),
        reference=result.reference or "",
        user=_user(user_id),
    )


# ------------------------------------------------------------ request access


@dataclass(frozen=True)
class _Partner:
    organisation_id: int
    name: str
    siret: str
    covered: tuple[str, ...]
    reachable: bool  # at least one contact whose address did not bounce
    folded: str  # the name as compared (_folded_name)


def _folded_name(name: str) -> str:
    """Compared without case, accents or punctuation: « Formations <Sud> » is « formations sud »."""
    return " ".join(re.sub(r"[^\w]+", " ", _fold(name)).split())


def _partners(session: Session, certifier_id: int) -> list[_Partner]:
    partnerships = session.scalars(
        select(Partnership)
        .where(Partnership.certifier_id == certifier_id)
        .options(
            selectinload(Partnership.organisation).selectinload(Organisation.contacts),
            selectinload(Partnership.certifications).selectinload(
                PartnershipCertification.certification
            ),
        )
        .order_by(Partnership.id)
    )
    return [
        _Partner(
            organisation_id=p.organisation.id,
            name=p.organisation.name,
            siret=p.organisation.siret,
            covered=tuple(sorted(link.certification.code for link in p.certifications)),
            reachable=any(not contact.undeliverable for contact in p.organisation.contacts),
            folded=_folded_name(p.organisation.name),
        )
        for p in partnerships
    ]


def _matches(partners: Sequence[_Partner], name: str) -> list[_Partner]:
    """Same name first; else the names holding every word typed (« sud » for « Formations Sud »)."""
    wanted = _folded_name(name)
    same = [p for p in partners if p.folded == wanted]
    if same or not wanted:
        return same
    words = wanted.split()
    return [p for p in partners if all(word in p.folded.split() for word in words)]


def _closest(partners: Sequence[_Partner], query: str, *, siret: bool) -> list[_Partner]:
    def key(partner: _Partner) -> str:
        return partner.siret if siret else partner.folded

    target = query if siret else _folded_name(query)
    # A SIRET with a wrong digit is close; two different SIRETs share many digits anyway.
    cutoff = 0.85 if siret else SIMILARITY_CUTOFF
    scored = [
        (difflib.SequenceMatcher(None, target, key(partner)).ratio(), partner)
        for partner in partners
    ]
    return [
        partner for score, partner in sorted(scored, key=lambda pair: -pair[0]) if score >= cutoff
    ][:SUGGESTIONS]


def _organisation(partner: _Partner) -> dict[str, str]:
    return {"name": partner.name, "siret": format_siret(partner.siret)}


async def _request_access(
    engine: Engine, certifier_id: int, user_id: str, command: RequestAccess, language: str
) -> SlackAnswer:
    if not command.partner:
        return _answer(engine, "missing", language, what="request-access")
    query = _echo(command.partner)
    if command.is_siret:
        try:
            check_siret(command.partner)
        except InvalidInput:
            return _answer(
                engine,
                "request_refused",
                language,
                reason="invalid_siret",
                siret=format_siret(command.partner),
            )
    partners = await engine.db.run(lambda s: _partners(s, certifier_id))
    if command.is_siret:
        found = [p for p in partners if p.siret == command.partner]
    else:
        found = _matches(partners, command.partner)
    if not found:
        return _answer(
            engine,
            "request_not_found",
            language,
            query=format_siret(query) if command.is_siret else query,
            is_siret=command.is_siret,
            digits=command.partner.replace(" ", "").isdigit(),
            suggestions=[
                _organisation(p)
                for p in _closest(partners, command.partner, siret=command.is_siret)
            ],
        )
    if len(found) > 1:
        return _answer(
            engine,
            "request_ambiguous",
            language,
            query=query,
            candidates=[_organisation(p) for p in found[:LIST_CAP]],
            more=max(0, len(found) - LIST_CAP),
        )
    [partner] = found
    missing = [code for code in command.codes if code not in partner.covered]
    if missing:
        return _answer(
            engine,
            "request_refused",
            language,
            reason="not_covered",
            organisation=_organisation(partner),
            missing=missing,
            covered=partner.covered,
        )
    if not partner.reachable:
        return _answer(
            engine,
            "request_refused",
            language,
            reason="no_contact",
            organisation=_organisation(partner),
        )
    try:
        view = await send_request(
            engine,
            certifier=str(certifier_id),
            partner=str(partner.organisation_id),
            certifications=command.codes,
            actor=f"slack:{user_id}",
        )
    except Conflict:
        live = await engine.db.run(
            lambda s: _live_request(s, certifier_id, partner.organisation_id)
        )
        if live is None:
            raise  # not the « one request at a time » rule: the generic answer tells why
        return _answer(
            engine,
            "request_refused",
            language,
            reason="live",
            organisation=_organisation(partner),
            reference=live.public_id,
            state=live.state,
            state_label=_state_label(live.state, language),
        )
    workflow = engine.workflow(NAME)
    reminders = sorted(
        t.after.days
        for t in workflow.timers
        if t.state == State.PENDING and t.event == Event.REMIND and t.after.days > 0
    )
    return _answer(
        engine,
        "request_sent",
        language,
        public=True,
        user=_user(user_id),
        reference=view.public_id,
        organisation=_organisation(partner),
        codes=[str(c["code"]) for c in view.data["certifications"]],
        deadline=view.deadline,
        reminder_days=reminders,
    )


def _live_request(
    session: Session, certifier_id: int, organisation_id: int
) -> WorkflowInstance | None:
    """The pending or authorised request that keeps a new one from starting."""
    return session.scalars(
        select(WorkflowInstance)
        .join(Partnership, Partnership.id == WorkflowInstance.partnership_id)
        .where(
            WorkflowInstance.workflow == NAME,
            WorkflowInstance.certifier_id == certifier_id,
            Partnership.organisation_id == organisation_id,
            WorkflowInstance.active_key.is_not(None),
        )
        .limit(1)
    ).one_or_none()


# ------------------------------------------------------------------- status


def _cap(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    # Not "items": in a template, `list.items` would be the dict method.
    return {"rows": list(items[:LIST_CAP]), "more": max(0, len(items) - LIST_CAP)}


def _noon(day: date) -> datetime:
    """A calendar date as an instant the `date` filter shows as that same day in Paris."""
    return datetime.combine(day, time(12), tzinfo=UTC)


def _status_context(
    session: Session, certifier_id: int, pending_for: timedelta, now: datetime
) -> dict[str, Any]:
    requests = session.scalars(
        select(WorkflowInstance)
        .where(
            WorkflowInstance.workflow == NAME,
            WorkflowInstance.certifier_id == certifier_id,
            WorkflowInstance.state.in_((State.PENDING, State.AUTHORISED)),
        )
        .order_by(WorkflowInstance.state_entered_at, WorkflowInstance.id)
    ).all()
    pending = [
        {
            "reference": r.public_id,
            "organisation": str(r.data["organisation_name"]),
            "deadline": r.state_entered_at + pending_for,
        }
        for r in requests
        if r.state == State.PENDING
    ]
    authorised = [
        {
            "reference": r.public_id,
            "organisation": str(r.data["organisation_name"]),
            "since": r.state_entered_at,
            "codes": [str(c["code"]) for c in r.data["certifications"]],
        }
        for r in requests
        if r.state == State.AUTHORISED
    ]
    syncs = [
        {
            "organisation": s.organisation_name,
            "source": s.source_kind,
            "last_run": s.last_finished_at or s.last_started_at,
            "outcome": s.last_outcome,
            "created": s.created,
            "updated": s.updated,
            "rejected": s.rejected,
            "failures": s.consecutive_failures,
            "error": _echo(s.last_error, ERROR_LIMIT) if s.last_error else None,
            "shared": [c.code for c in s.sharing if c.shared],
            "paused": [c.code for c in s.sharing if c.authorised and c.paused_at is not None],
        }
        for s in list_status(session, certifier_id)
    ]
    deposits = deposit_status(session, certifier_id, now)
    deadline = deposits.next_deadline
    return {
        "pending": _cap(pending),
        "authorised": _cap(authorised),
        "syncs": _cap(syncs),
        "deposits": {
            "awaiting": deposits.awaiting_deposit,
            "overdue": deposits.overdue,
            "due_soon": deposits.due_soon,
            "incomplete": deposits.incomplete,
            "next_deadline": _noon(deadline) if deadline else None,
            "deadline_passed": deadline is not None and deadline < paris(now).date(),
        },
    }


async def _status(engine: Engine, certifier_id: int, language: str) -> SlackAnswer:
    workflow = engine.workflow(NAME)
    pending_for = max(
        (t.after for t in workflow.timers if t.state == State.PENDING), default=timedelta(0)
    )
    now = engine.clock.now()
    context = await engine.db.run(lambda s: _status_context(s, certifier_id, pending_for, now))
    return _answer(engine, "status", language, **context)


# ------------------------------------------------------------ remind, cancel


def _normalise(reference: str) -> str:
    return reference.strip(_REFERENCE_TRIM).upper()


async def _own_request(engine: Engine, certifier_id: int, reference: str) -> InstanceView | None:
    """The certifier's access request, or None: another certifier's is as unknown as a typo."""
    if not reference:
        return None
    try:
        view = await engine.view(reference, certifier_id=certifier_id)
    except NotFound:
        return None
    # Other workflows (CDC batches…) have references and « remind » events of their own.
    return view if view.workflow == NAME else None


def _about(view: InstanceView) -> dict[str, Any]:
    return {
        "reference": view.public_id,
        "organisation": str(view.data.get("organisation_name", "")),
    }


async def remind_now(
    engine: Engine, *, certifier_id: int, reference: str, user_id: str, language: str
) -> SlackAnswer:
    """Email the organisation's contact again now, at most once an hour (slash command, button)."""
    language = _language(language)
    wanted = _normalise(reference)
    view = await _own_request(engine, certifier_id, wanted)
    if view is None:
        return _answer(engine, "reference_unknown", language, reference=_echo(wanted))
    if view.state != State.PENDING:
        return _answer(
            engine,
            "remind",
            language,
            outcome="decided",
            state=view.state,
            state_label=_state_label(view.state, language),
            **_about(view),
        )
    try:
        fired = await engine.fire_unless_recent(
            view.public_id, Event.REMIND, actor=f"slack:{user_id}", within=REMIND_INTERVAL
        )
    except InvalidTransition as error:
        # Decided between the look and the firing.
        return _answer(
            engine,
            "remind",
            language,
            outcome="decided",
            state=error.state,
            state_label=_state_label(error.state, language),
            **_about(view),
        )
    except CordeeError as error:
        # Buttons call this directly: the person reads why, as with the slash command.
        return _answer(engine, "error", language, message=_echo(str(error), ERROR_LIMIT))
    if not fired:
        return _answer(engine, "remind", language, outcome="recent", **_about(view))
    return _answer(
        engine,
        "remind",
        language,
        public=True,
        outcome="sent",
        user=_user(user_id),
        deadline=view.deadline,
        **_about(view),
    )


async def cancel(
    engine: Engine, *, certifier_id: int, reference: str, user_id: str, language: str
) -> SlackAnswer:
    """Cancel a pending request; pressing twice is harmless (the second one only says so)."""
    language = _language(language)
    wanted = _normalise(reference)
    view = await _own_request(engine, certifier_id, wanted)
    if view is None:
        return _answer(engine, "reference_unknown", language, reference=_echo(wanted))
    if view.state == State.PENDING:
        try:
            await cancel_request(
                engine, view.public_id, actor=f"slack:{user_id}", certifier_id=certifier_id
            )
        except Conflict:
            # Decided or cancelled meanwhile: answer from the state it is in now.
            view = await engine.view(view.public_id, certifier_id=certifier_id)
        except CordeeError as error:
            return _answer(engine, "error", language, message=_echo(str(error), ERROR_LIMIT))
        else:
            return _answer(
                engine,
                "cancel",
                language,
                public=True,
                outcome="cancelled",
                user=_user(user_id),
                **_about(view),
            )
    outcome = "already" if view.state == State.CANCELLED else "decided"
    return _answer(
        engine,
        "cancel",
        language,
        outcome=outcome,
        state=view.state,
        state_label=_state_label(view.state, language),
        **_about(view),
    )


__all__ = [
    "Cancel",
    "Command",
    "Help",
    "Remind",
    "RequestAccess",
    "SlackAnswer",
    "Status",
    "Validate",
    "cancel",
    "format_siret",
    "parse_command",
    "remind_now",
    "run_command",
]
