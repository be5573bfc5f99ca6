"""Replies by email: correlate each message to its request, check the sender, and apply it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import partial
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.auth_results import dkim_failed
from bot.engine import Engine, Firing
from bot.errors import CordeeError, InvalidTransition
from bot.events import Outcome
from bot.fsm import Role
from bot.processed_mail import IN_CHUNK, dedupe_key, processed_among, record_all
from bot.replies import ParsedReply, parse_each
from bot.reply_address import ReplyAddresses, reference_in_subject
from bot.store.models import Certifier, Contact, OutboxMessage, WorkflowInstance
from workflows.access_request import NAME, Event

log = logging.getLogger("cordee.mail")

ACTOR = "partner_contact:mail"
T = TypeVar("T")


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
    # Unreadable, or its application failed and was rolled back alone: kept for a person.
    REJECTED = "rejected"


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


# Replies applied per transaction: each commit (and its fsync) is shared by this many.
CHUNK_SIZE = 200
# What a message that cannot be read or applied raises; anything else is a bug or an outage
# and stops the batch (what was committed stays committed, the rest comes back).
REJECTIONS = (CordeeError, ValueError, UnicodeError)


@dataclass(frozen=True)
class _Reading:
    """One readable message: what it says, and its key in processed_mail."""

    parsed: ParsedReply
    key: str


def _readings(
    raws: Sequence[bytes], parsed: Sequence[ParsedReply | Exception]
) -> list[_Reading | Exception]:
    return [
        p if isinstance(p, Exception) else _Reading(p, dedupe_key(raw))
        for raw, p in zip(raws, parsed, strict=True)
    ]


class _Lookup:
    """What the replies of one chunk may refer to, fetched in a few queries.

    Correlation only reads data replies never change (requests, their contact addresses and
    the Message-IDs of mails already sent), so it is loaded once, before the chunk applies.
    """

    def __init__(
        self, session: Session, replies: Sequence[ParsedReply], addresses: ReplyAddresses | None
    ) -> None:
        self.addresses = addresses
        references: set[str] = set()
        message_ids: set[str] = set()
        for reply in replies:
            token = addresses.find(reply.recipients) if addresses is not None else None
            if token is not None:
                references.add(token.reference)
                continue
            message_ids.update(reply.in_reply_to + reply.references)
            subject_reference = reference_in_subject(reply.subject)
            if subject_reference is not None:
                references.add(subject_reference)
        self.answered = _answered_mails(session, message_ids)
        references.update(reference for _, reference, _ in self.answered.values())
        contacts, self.invited = _invited_contacts(session, references)
        # Held for the chunk: the session's identity map keeps rows only while they are
        # referenced, and the engine looks each contact and certifier up again to address mails.
        self.rows: list[object] = [*contacts, *_certifiers(session, references)]

    def correlate(self, reply: ParsedReply) -> Match:
        """Which request a reply answers: reply address, else Message-ID, else subject reference.

        Raises LookupError when nothing matches and BadToken when our reply address was altered.
        """
        addresses = self.addresses
        token = addresses.find(reply.recipients) if addresses is not None else None
        if token is not None and addresses is not None:
            invited = self.invited.get(token.reference)
            if invited is None or not addresses.verify(token, invited):
                raise BadToken(token.reference)
            return Match(token.reference, invited, MatchedBy.REPLY_ADDRESS)
        # The latest of our mails it answers, as when one query ordered them by id.
        mails = [
            self.answered[i] for i in reply.in_reply_to + reply.references if i in self.answered
        ]
        if mails:
            _, reference, recipient = max(mails)
            return Match(reference, recipient, MatchedBy.MESSAGE_ID)
        quoted = reference_in_subject(reply.subject)
        invited = self.invited.get(quoted) if quoted else None
        if quoted is None or invited is None:
            raise LookupError("no request matches")
        return Match(quoted, invited, MatchedBy.SUBJECT)


def _chunks(values: Iterable[T]) -> Iterator[list[T]]:
    listed = list(values)
    for start in range(0, len(listed), IN_CHUNK):
        yield listed[start : start + IN_CHUNK]


def _invited_contacts(
    session: Session, references: set[str]
) -> tuple[list[Contact], dict[str, str]]:
    """The contact each request was sent to, and its address by request (unknown ones left out)."""
    contact_of: dict[str, int] = {}
    for part in _chunks(references):
        rows = session.execute(
            select(WorkflowInstance.public_id, WorkflowInstance.data).where(
                WorkflowInstance.public_id.in_(part), WorkflowInstance.workflow == NAME
            )
        )
        contact_of.update((reference, int(data["contact_id"])) for reference, data in rows)
    contacts: list[Contact] = []
    for ids in _chunks(set(contact_of.values())):
        contacts += session.scalars(select(Contact).where(Contact.id.in_(ids)))
    emails = {contact.id: contact.email for contact in contacts}
    return contacts, {ref: emails[cid] for ref, cid in contact_of.items() if cid in emails}


def _certifiers(session: Session, references: set[str]) -> list[Certifier]:
    found: list[Certifier] = []
    for part in _chunks(references):
        found += session.scalars(
            select(Certifier)
            .join(WorkflowInstance, WorkflowInstance.certifier_id == Certifier.id)
            .where(WorkflowInstance.public_id.in_(part))
            .distinct()
        )
    return found


def _answered_mails(session: Session, message_ids: set[str]) -> dict[str, tuple[int, str, str]]:
    """Our mails to partner contacts among `message_ids`: (outbox id, request, recipient)."""
    found: dict[str, tuple[int, str, str]] = {}
    for part in _chunks(message_ids):
        rows = session.execute(
            select(
                OutboxMessage.message_id,
                OutboxMessage.id,
                WorkflowInstance.public_id,
                OutboxMessage.recipient,
            )
            .join(WorkflowInstance, WorkflowInstance.id == OutboxMessage.instance_id)
            .where(
                OutboxMessage.message_id.in_(part),
                OutboxMessage.role == Role.PARTNER_CONTACT.value,
                WorkflowInstance.workflow == NAME,
            )
        )
        for message_id, row_id, reference, recipient in rows:
            found[message_id] = max(
                found.get(message_id, (row_id, reference, recipient)),
                (row_id, reference, recipient),
            )
    return found


async def handle_reply(engine: Engine, raw: bytes, *, trusted_authserv_id: str = "") -> Intake:
    """Apply one reply. Only a clear answer from the invited address decides anything.

    `trusted_authserv_id` names our receiving host: its Authentication-Results are believed.
    Raises what made the message unreadable or its application fail (nothing was applied).
    """
    [outcome] = await _intake(engine, [raw], trusted_authserv_id)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


async def handle_replies(
    engine: Engine,
    raws: Sequence[bytes],
    *,
    trusted_authserv_id: str = "",
    chunk_size: int = CHUNK_SIZE,
) -> list[Intake]:
    """Apply a batch of replies (an inbox's backlog); one outcome per message, in order.

    Same decisions as handle_reply, message by message, but applied `chunk_size` per
    transaction: each reply inside its own savepoint, so one that fails (REJECTED) is rolled
    back alone; its Message-ID is recorded with its effect, so a crash at any point neither
    applies a reply twice nor loses one. The resulting mails go out after each commit.
    """
    outcomes = await _intake(engine, raws, trusted_authserv_id, chunk_size)
    return [Intake.REJECTED if isinstance(o, Exception) else o for o in outcomes]


async def _intake(
    engine: Engine, raws: Sequence[bytes], trusted: str, chunk_size: int = CHUNK_SIZE
) -> list[Intake | Exception]:
    chunks = [raws[start : start + chunk_size] for start in range(0, len(raws), chunk_size)]
    outcomes: list[Intake | Exception] = []
    for chunk in chunks:
        parsed = await asyncio.to_thread(parse_each, chunk)  # CPU work, off the event loop
        outcomes += await _apply(engine, _readings(chunk, parsed), trusted)
    return outcomes


async def _apply(
    engine: Engine, readings: Sequence[_Reading | Exception], trusted: str
) -> list[Intake | Exception]:
    now = engine.clock.now()
    outcomes = await engine.db.run(
        partial(_apply_tx, engine=engine, readings=readings, trusted=trusted, now=now)
    )
    await engine.deliver()
    return outcomes


def _apply_tx(
    session: Session,
    engine: Engine,
    readings: Sequence[_Reading | Exception],
    trusted: str,
    now: datetime,
) -> list[Intake | Exception]:
    readable = [r for r in readings if isinstance(r, _Reading)]
    done = processed_among(session, [r.key for r in readable])
    lookup = _Lookup(
        session, [r.parsed for r in readable if r.key not in done], engine.reply_addresses
    )
    outcomes: list[Intake | Exception] = []
    handled: list[str] = []
    decisions = _Decisions(session, engine, outcomes, done, handled)
    for reading in readings:
        if isinstance(reading, Exception):
            _logged(Intake.REJECTED, error=reading)
            outcomes.append(reading)
            continue
        if reading.key in decisions.keys:  # the same message twice: settle the first one
            decisions.flush()
        if reading.key in done:  # handled before, or earlier in this batch
            outcomes.append(_logged(Intake.DUPLICATE))
            continue
        record = _Record()
        try:
            outcome = _decide(session, engine, lookup, reading.parsed, trusted, record, decisions)
        except REJECTIONS as error:  # its savepoint is rolled back: the others still apply
            _logged(Intake.REJECTED, error=error)
            outcomes.append(error)
            continue
        if isinstance(outcome, _Pending):
            decisions.add(len(outcomes), reading.key, outcome)
            outcomes.append(Intake.APPLIED)  # until settled by decisions.flush()
            continue
        if record.done:
            done.add(reading.key)
            handled.append(reading.key)
        outcomes.append(outcome)
    decisions.flush()
    # One INSERT for the chunk: same transaction as the effects, and only for the replies
    # whose savepoint held.
    record_all(session, handled, now)
    return outcomes


@dataclass(frozen=True)
class _Pending:
    """A clear answer from the invited address, to apply with the others (_Decisions)."""

    firing: Firing
    by: MatchedBy


class _Decisions:
    """The clear answers of a chunk, applied together: Engine.fire_many_in, in one savepoint.

    They wait only until another reply needs the session (a help mail, a bounce…) or the
    chunk ends, so everything still happens in the order of the messages. Should the batch
    fail, each answer is applied again alone, in its own savepoint: only a faulty one is then
    rejected, exactly as when they are applied one by one.
    """

    def __init__(
        self,
        session: Session,
        engine: Engine,
        outcomes: list[Intake | Exception],
        done: set[str],
        handled: list[str],
    ) -> None:
        self.session = session
        self.engine = engine
        self.outcomes = outcomes
        self.done = done
        self.handled = handled
        self.keys: set[str] = set()
        self._waiting: list[tuple[int, str, _Pending]] = []

    def add(self, slot: int, key: str, pending: _Pending) -> None:
        self._waiting.append((slot, key, pending))
        self.keys.add(key)

    def flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        self.keys.clear()
        if not waiting:
            return
        firings = [pending.firing for _, _, pending in waiting]
        results: Sequence[Outcome | Exception]
        try:
            with self.session.begin_nested():
                results = self.engine.fire_many_in(self.session, firings)
        except REJECTIONS:
            results = [self._alone(firing) for firing in firings]
        for (slot, key, pending), result in zip(waiting, results, strict=True):
            self._settle(slot, key, pending, result)

    def _alone(self, firing: Firing) -> Outcome | Exception:
        try:
            with self.session.begin_nested():
                return self.engine.fire_in(
                    self.session, firing.public_id, firing.event, actor=firing.actor
                )
        except REJECTIONS as error:  # InvalidTransition included
            return error

    def _settle(self, slot: int, key: str, pending: _Pending, result: Outcome | Exception) -> None:
        reference = pending.firing.public_id
        if isinstance(result, InvalidTransition):
            self.outcomes[slot] = _logged(Intake.ALREADY_DECIDED, reference, pending.by)
        elif isinstance(result, Exception):
            _logged(Intake.REJECTED, error=result)
            self.outcomes[slot] = result
        else:
            self.outcomes[slot] = _logged(Intake.APPLIED, reference, pending.by)
            self.done.add(key)
            self.handled.append(key)


class _Record:
    """Marks one message as handled; written with the chunk, in the transaction of its effect.

    A crash before the inbox moves on makes the message come back; it is then a duplicate.
    """

    def __init__(self) -> None:
        self.done = False

    def __call__(self, _session: Session) -> None:
        self.done = True


def _decide(
    session: Session,
    engine: Engine,
    lookup: _Lookup,
    parsed: ParsedReply,
    trusted: str,
    record: _Record,
    decisions: _Decisions,
) -> Intake | _Pending:
    """One reply. Only a clear answer from the invited address decides anything.

    That answer is returned to be applied with the chunk's others; the other replies that
    write something first let those pending answers apply (decisions.flush), to keep order.
    """
    if parsed.bounce:
        if parsed.bounce_permanent and parsed.bounced_recipient:
            address = parsed.bounced_recipient

            def bounce() -> Intake:
                engine.report_bounce_in(session, address, "adresse refusée (avis de non-remise)")
                record(session)
                return Intake.HARD_BOUNCE

            decisions.flush()
            return _logged(_in_savepoint(session, bounce, record))
        return _logged(Intake.BOUNCE)
    if parsed.auto_reply:
        return _logged(Intake.AUTO_REPLY)
    try:
        match = lookup.correlate(parsed)
    except BadToken as error:
        return _logged(Intake.ALTERED_ADDRESS, str(error))
    except LookupError:
        return _logged(Intake.UNMATCHED)
    reference = match.reference
    from_invited = parsed.from_address is not None and (
        parsed.from_address.lower() == match.invited.lower()
    )
    if dkim_failed(parsed.authentication_results, trusted):
        # Possibly forged: decide nothing, but give the real contact the links to answer.
        if from_invited:
            help_once = partial(_help_once, session, engine, reference, record)
            decisions.flush()
            _in_savepoint(session, help_once, record)
        return _logged(Intake.UNAUTHENTICATED, reference, match.by)
    if from_invited and parsed.decision is not None:
        event = Event.AUTHORISE if parsed.decision == "authorise" else Event.REFUSE
        return _Pending(Firing(reference, event, ACTOR), match.by)
    if not from_invited:
        work = partial(_tell_other_sender, session, engine, reference, parsed, record)
    else:
        work = partial(_help_once, session, engine, reference, record)
    decisions.flush()
    return _logged(_in_savepoint(session, work, record), reference, match.by)


def _in_savepoint(session: Session, work: Callable[[], Intake], record: _Record) -> Intake:
    """Run one reply's effects in a savepoint: a failure undoes them alone, record included."""
    try:
        with session.begin_nested():
            return work()
    except InvalidTransition:
        record.done = False
        return Intake.ALREADY_DECIDED
    except BaseException:
        record.done = False
        raise


def _tell_other_sender(
    session: Session,
    engine: Engine,
    reference: str,
    parsed: ParsedReply,
    record: _Record,
) -> Intake:
    """A colleague answered: they get the links, the staff are told; nothing is decided."""
    sender = parsed.from_address
    # Never answer ourselves (a loop) nor an address we cannot read.
    if sender is None or _is_ours(engine, sender):
        return Intake.WRONG_SENDER
    engine.fire_in(session, reference, Event.OTHER_SENDER_REPLY, actor=ACTOR, reply_sender=sender)
    record(session)
    return Intake.WRONG_SENDER


def _is_ours(engine: Engine, address: str) -> bool:
    domain = address.rpartition("@")[2].lower()
    ours = {engine.message_domain.lower()}
    if engine.reply_addresses is not None:
        ours.add(engine.reply_addresses.domain)
    return domain in ours


def _help_once(session: Session, engine: Engine, reference: str, record: _Record) -> Intake:
    """One help mail per pending request: a second unclear reply gets no second help."""
    helped = engine.fire_unless_recent_in(
        session, reference, Event.UNCLEAR_REPLY, actor=ACTOR, within=None, also=record
    )
    return Intake.UNCLEAR if helped else Intake.UNCLEAR_ALREADY_HELPED


def _logged(
    outcome: Intake,
    reference: str | None = None,
    by: MatchedBy | None = None,
    *,
    error: Exception | None = None,
) -> Intake:
    where = f" ({reference}{', ' + by.value if by else ''})" if reference else ""
    if error is not None:  # its type only: the message may quote the mail
        where = f" ({type(error).__name__})"
    log.info("incoming mail: %s%s", outcome.value, where)
    return outcome
