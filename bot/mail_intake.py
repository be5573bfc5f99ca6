"""Replies by email: correlate a message to its request, check the sender, and apply it."""

from __future__ import annotations

import logging
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.engine import Engine
from bot.errors import InvalidTransition
from bot.fsm import Role
from bot.replies import parse_message
from bot.store.models import OutboxMessage, WorkflowInstance
from workflows.access_request import Event

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
    WRONG_SENDER = "wrong_sender"


def _correlate(session: Session, message_ids: tuple[str, ...]) -> tuple[str, str] | None:
    """(request reference, invited address) of the mail this one answers, by our Message-ID."""
    if not message_ids:
        return None
    row = session.execute(
        select(WorkflowInstance.public_id, OutboxMessage.recipient)
        .join(WorkflowInstance, WorkflowInstance.id == OutboxMessage.instance_id)
        .where(
            OutboxMessage.message_id.in_(message_ids),
            OutboxMessage.role == Role.PARTNER_CONTACT.value,
        )
        .order_by(OutboxMessage.id.desc())
        .limit(1)
    ).first()
    return (row[0], row[1]) if row else None


async def handle_reply(engine: Engine, raw: bytes) -> Intake:
    """Apply one reply. Only a clear answer from the invited address decides anything."""
    parsed = parse_message(raw)
    if parsed.bounce:
        if parsed.bounce_permanent and parsed.bounced_recipient:
            await engine.report_bounce(
                parsed.bounced_recipient, "adresse refusée (avis de non-remise)"
            )
            return _logged(Intake.HARD_BOUNCE)
        return _logged(Intake.BOUNCE)
    if parsed.auto_reply:
        return _logged(Intake.AUTO_REPLY)
    ids = parsed.in_reply_to + parsed.references
    match = await engine.db.run(lambda s: _correlate(s, ids))
    if match is None:
        return _logged(Intake.UNMATCHED)
    reference, invited = match
    if parsed.from_address is None or parsed.from_address.lower() != invited.lower():
        return _logged(Intake.WRONG_SENDER, reference)
    if parsed.decision is None:
        return _logged(await _help_once(engine, reference), reference)
    event = Event.AUTHORISE if parsed.decision == "authorise" else Event.REFUSE
    try:
        await engine.fire(reference, event, actor=ACTOR)
    except InvalidTransition:
        return _logged(Intake.ALREADY_DECIDED, reference)
    return _logged(Intake.APPLIED, reference)


async def _help_once(engine: Engine, reference: str) -> Intake:
    """One help mail per pending request: a second unclear reply gets no second help."""
    try:
        helped = await engine.fire_unless_recent(
            reference, Event.UNCLEAR_REPLY, actor=ACTOR, within=None
        )
    except InvalidTransition:
        return Intake.ALREADY_DECIDED
    return Intake.UNCLEAR if helped else Intake.UNCLEAR_ALREADY_HELPED


def _logged(outcome: Intake, reference: str | None = None) -> Intake:
    log.info("incoming mail: %s%s", outcome.value, f" ({reference})" if reference else "")
    return outcome
