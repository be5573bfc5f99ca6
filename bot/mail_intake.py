"""Replies by email: correlate a message to its request, check the sender, and apply it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.auth_results import dkim_failed
from bot.engine import Engine
from bot.errors import InvalidTransition
from bot.fsm import Role
from bot.processed_mail import already_processed, dedupe_key, record_processed
from bot.replies import ParsedReply, parse_message
from bot.reply_address import ReplyAddresses, reference_in_subject
from bot.store.models import Contact, OutboxMessage, WorkflowInstance
from workflows.access_request import NAME, Event

log = logging.getLogger("cordee.mail")

ACTOR = "partner_contact:mail"


class Intake(StrEnum):
    """What became of one incoming message (logged; never its content)."""

    APPLIED = "applied"
    UNCLEAR = "unclear"
    UNCLEAR_ALREADY_HELPED = "unclear_already_helped"
    ALREADY_DECIDED = "already_decided"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    HARD_BOUNCE = "hard_bounce"
    UNMATCHED = "unmatched"
    ALTERED_ADDRESS = "altered_reply_address"
    WRONG_SENDER = "wrong_sender"
    UNAUTHENTICATED = "unauthenticated"
    DUPLICATE = "duplicate"


class MatchedBy(StrEnum):
    REPLY_ADDRESS = "reply_address"
    MESSAGE_ID = "message_id"
    SUBJECT = "subject"


@dataclass(frozen=True)
class Match:
    reference: str
    invited: str
    by: MatchedBy


class BadToken(Exception):
    """Our reply address, but its MAC does not fit the request: altered or forged."""


def _invited_address(session: Session, reference: str) -> str | None:
    """The contact address a request was sent to, or None when no such request exists."""
    instance = session.scalars(
        select(WorkflowInstance).where(
            WorkflowInstance.public_id == reference, WorkflowInstance.workflow == NAME
        )
    ).one_or_none()
    if instance is None:
        return None
    contact = session.get(Contact, int(instance.data["contact_id"]))
    return contact.email if contact is not None else None


def _by_message_id(session: Session, message_ids: tuple[str, ...]) -> Match | None:
    """The request whose mail this one answers, by our Message-ID in In-Reply-To/References."""
    if not message_ids:
        return None
    row = session.execute(
        select(WorkflowInstance.public_id, OutboxMessage.recipient)
        .join(WorkflowInstance, WorkflowInstance.id == OutboxMessage.instance_id)
        .where(
            OutboxMessage.message_id.in_(message_ids),
            OutboxMessage.role == Role.PARTNER_CONTACT.value,
            WorkflowInstance.workflow == NAME,
        )
        .order_by(OutboxMessage.id.desc())
        .limit(1)
    ).first()
    return Match(row[0], row[1], MatchedBy.MESSAGE_ID) if row else None


def _correlate(session: Session, reply: ParsedReply, addresses: ReplyAddresses | None) -> Match:
    """Which request a reply answers: reply address, else Message-ID, else subject reference.

    Raises LookupError when nothing matches and BadToken when our reply address was altered.
    """
    token = addresses.find(reply.recipients) if addresses is not None else None
    if token is not None and addresses is not None:
        invited = _invited_address(session, token.reference)
        if invited is None or not addresses.verify(token, invited):
            raise BadToken(token.reference)
        return Match(token.reference, invited, MatchedBy.REPLY_ADDRESS)
    match = _by_message_id(session, reply.in_reply_to + reply.references)
    if match is not None:
        return match
    reference = reference_in_subject(reply.subject)
    invited = _invited_address(session, reference) if reference else None
    if reference is None or invited is None:
        raise LookupError("no request matches")
    return Match(reference, invited, MatchedBy.SUBJECT)


async def handle_reply(engine: Engine, raw: bytes, *, trusted_authserv_id: str = "") -> Intake:
    """Apply one reply. Only a clear answer from the invited address decides anything.

    `trusted_authserv_id` names our receiving host: its Authentication-Results are believed.
    """
    parsed = parse_message(raw)
    key = dedupe_key(raw)
    if await engine.db.run(lambda s: already_processed(s, key)):
        return _logged(Intake.DUPLICATE)
    # Whatever this message changes commits with the record of its Message-ID: a crash
    # before the inbox moves on makes it come back, and it is then seen as a duplicate.
    record = partial(record_processed, key=key, now=engine.clock.now())
    if parsed.bounce:
        if parsed.bounce_permanent and parsed.bounced_recipient:
            await engine.report_bounce(
                parsed.bounced_recipient, "adresse refusée (avis de non-remise)", also=record
            )
            return _logged(Intake.HARD_BOUNCE)
        return _logged(Intake.BOUNCE)
    if parsed.auto_reply:
        return _logged(Intake.AUTO_REPLY)
    try:
        match = await engine.db.run(lambda s: _correlate(s, parsed, engine.reply_addresses))
    except BadToken as error:
        return _logged(Intake.ALTERED_ADDRESS, str(error))
    except LookupError:
        return _logged(Intake.UNMATCHED)
    reference = match.reference
    from_invited = parsed.from_address is not None and (
        parsed.from_address.lower() == match.invited.lower()
    )
    if dkim_failed(parsed.authentication_results, trusted_authserv_id):
        # Possibly forged: decide nothing, but give the real contact the links to answer.
        if from_invited:
            await _help_once(engine, reference, record)
        return _logged(Intake.UNAUTHENTICATED, reference, match.by)
    if not from_invited:
        outcome = await _tell_other_sender(engine, reference, parsed, record)
        return _logged(outcome, reference, match.by)
    if parsed.decision is None:
        return _logged(await _help_once(engine, reference, record), reference, match.by)
    event = Event.AUTHORISE if parsed.decision == "authorise" else Event.REFUSE
    try:
        await engine.fire(reference, event, actor=ACTOR, also=record)
    except InvalidTransition:
        return _logged(Intake.ALREADY_DECIDED, reference, match.by)
    return _logged(Intake.APPLIED, reference, match.by)


async def _tell_other_sender(
    engine: Engine, reference: str, parsed: ParsedReply, record: Callable[[Session], None]
) -> Intake:
    """A colleague answered: they get the links, the staff are told; nothing is decided."""
    sender = parsed.from_address
    # Never answer ourselves (a loop) nor an address we cannot read.
    if sender is None or _is_ours(engine, sender):
        return Intake.WRONG_SENDER
    try:
        await engine.fire(
            reference, Event.OTHER_SENDER_REPLY, actor=ACTOR, reply_sender=sender, also=record
        )
    except InvalidTransition:
        return Intake.ALREADY_DECIDED
    return Intake.WRONG_SENDER


def _is_ours(engine: Engine, address: str) -> bool:
    domain = address.rpartition("@")[2].lower()
    ours = {engine.message_domain.lower()}
    if engine.reply_addresses is not None:
        ours.add(engine.reply_addresses.domain)
    return domain in ours


async def _help_once(engine: Engine, reference: str, record: Callable[[Session], None]) -> Intake:
    """One help mail per pending request: a second unclear reply gets no second help."""
    try:
        helped = await engine.fire_unless_recent(
            reference, Event.UNCLEAR_REPLY, actor=ACTOR, within=None, also=record
        )
    except InvalidTransition:
        return Intake.ALREADY_DECIDED
    return Intake.UNCLEAR if helped else Intake.UNCLEAR_ALREADY_HELPED


def _logged(outcome: Intake, reference: str | None = None, by: MatchedBy | None = None) -> Intake:
    where = f" ({reference}{', ' + by.value if by else ''})" if reference else ""
    log.info("incoming mail: %s%s", outcome.value, where)
    return outcome
