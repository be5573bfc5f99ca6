"""The engine: load, pure step, persist state + audit trail + outbox in one transaction, deliver."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.channels.base import Channel, as_pipelining
from bot.channels.mail import new_message_id
from bot.clock import Clock
from bot.errors import (
    ChannelUnavailable,
    Conflict,
    CordeeError,
    DeliveryFailed,
    InvalidInput,
    InvalidTransition,
    NotFound,
)
from bot.events import HistoryEntry, InstanceView, Outbound, Outcome
from bot.fsm import Effect, Role, Send, SetSharing, Workflow, next_timer, step
from bot.links import LinkSigner
from bot.processed_mail import IN_CHUNK
from bot.render import Renderer
from bot.reply_address import ReplyAddresses
from bot.store.db import Database
from bot.store.models import (
    Certifier,
    Contact,
    OutboxMessage,
    PartnershipCertification,
    TransitionLog,
    WorkflowInstance,
)

log = logging.getLogger("cordee.engine")

REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
DELIVERY_LEASE = timedelta(minutes=5)
MAX_DELIVERY_ATTEMPTS = 12
DELIVERY_BATCH = 100
# Told to the certifier's staff when a message to a person could not be delivered.
FAILURE_TEMPLATE = "delivery/staff/failed"
# Runs once per mail sent: built once, without loading the rows.
# One row per (partnership, certification) whose sharing a transition switches: executemany.
SET_SHARING = (
    update(PartnershipCertification)
    .where(
        PartnershipCertification.partnership_id == bindparam("partnership"),
        PartnershipCertification.certification_id == bindparam("certification"),
    )
    .values(sharing_enabled=bindparam("enabled"), sharing_changed_at=bindparam("at"))
)
RECORD_SENT = (
    update(OutboxMessage)
    .where(OutboxMessage.id.in_(bindparam("ids", expanding=True)))
    .values(
        status="sent",
        attempts=OutboxMessage.attempts + 1,
        last_error=None,
        sent_at=bindparam("now"),
    )
)


@dataclass(frozen=True)
class StartSpec:
    """What a workflow instance starts with, computed inside the starting transaction."""

    certifier_id: int | None
    data: dict[str, Any]
    partnership_id: int | None = None
    # The tenant when it is a training organisation (trainer invitations).
    organisation_id: int | None = None
    # At most one live instance per key (e.g. one open access request per partnership).
    active_key: str | None = None


@dataclass(frozen=True)
class Firing:
    """One event to fire on one instance (Engine.fire_many_in)."""

    public_id: str
    event: str
    actor: str
    reply_sender: str | None = None


@dataclass(frozen=True)
class Recipient:
    channel: str
    address: str
    language: str
    name: str


class Engine:
    def __init__(
        self,
        db: Database,
        workflows: Mapping[str, Workflow],
        renderer: Renderer,
        links: LinkSigner,
        channels: Mapping[str, Channel],
        clock: Clock,
        message_domain: str,
        reply_addresses: ReplyAddresses | None = None,
        extra_context: Mapping[str, Callable[[WorkflowInstance], dict[str, Any]]] | None = None,
    ) -> None:
        self.db = db
        self.workflows = workflows
        self.renderer = renderer
        self.links = links
        self.channels = channels
        self.clock = clock
        self.message_domain = message_domain
        self.reply_addresses = reply_addresses
        # Per workflow: more for its templates (the trainer invitation's single-use link).
        self.extra_context = dict(extra_context or {})

    def workflow(self, name: str) -> Workflow:
        try:
            return self.workflows[name]
        except KeyError:
            raise NotFound(f"workflow inconnu « {name} »") from None

    # ----------------------------------------------------------------- commands

    async def start(
        self, workflow: str, prepare: Callable[[Session], StartSpec], actor: str
    ) -> InstanceView:
        definition = self.workflow(workflow)
        view = await self.db.run(lambda s: self._start_tx(s, definition, prepare, actor))
        await self.deliver()
        return view

    async def fire(
        self,
        public_id: str,
        event: str,
        *,
        actor: str,
        certifier_id: int | None = None,
        reply_sender: str | None = None,
        also: Callable[[Session], None] | None = None,
    ) -> Outcome:
        """Apply a person's event. Raises InvalidTransition when the instance has moved on.

        `reply_sender` is the address messages to Role.REPLY_SENDER go to, for this event only.
        `also` runs in the same transaction (e.g. recording the mail that caused the event).
        """

        def work(session: Session) -> Outcome:
            outcome = self._fire_tx(
                session, public_id, event, actor, certifier_id, None, reply_sender
            )
            if also is not None:
                also(session)
            return outcome

        outcome = await self.db.run(work)
        await self.deliver()
        return outcome

    def fire_in(
        self,
        session: Session,
        public_id: str,
        event: str,
        *,
        actor: str,
        certifier_id: int | None = None,
        reply_sender: str | None = None,
    ) -> Outcome:
        """fire() inside the caller's transaction (batch work: folder sync, mail intake).

        The state, audit trail and outbox rows commit with the caller's other writes; the
        caller calls deliver() once the transaction is committed.
        """
        return self._fire_tx(session, public_id, event, actor, certifier_id, None, reply_sender)

    def fire_many_in(
        self, session: Session, firings: Sequence[Firing]
    ) -> list[Outcome | InvalidTransition]:
        """fire_in() for several events, in order, inside the caller's transaction.

        Same effects as firing them one by one (an event the state no longer allows gives its
        InvalidTransition instead of an outcome), in a few set-based statements for the whole
        list instead of a handful per event: a backlog of emailed replies. Anything else that
        goes wrong raises, and the caller rolls the whole list back.
        """
        instances = self._load_all(session, {firing.public_id for firing in firings})
        pairs = []
        for firing in firings:
            instance = instances.get(firing.public_id)
            if instance is None:
                raise NotFound(f"demande « {firing.public_id} » introuvable")
            pairs.append((instance, firing))
        return self._fire_loaded(session, pairs, None)

    def fire_unless_recent_in(
        self,
        session: Session,
        public_id: str,
        event: str,
        *,
        actor: str,
        within: timedelta | None,
        also: Callable[[Session], None] | None = None,
    ) -> bool:
        """fire_unless_recent() inside the caller's transaction; the caller delivers after."""
        return self._fire_unless_recent_tx(session, public_id, event, actor, within, also)

    async def fire_unless_recent(
        self,
        public_id: str,
        event: str,
        *,
        actor: str,
        within: timedelta | None,
        also: Callable[[Session], None] | None = None,
    ) -> bool:
        """Fire `event` unless the audit trail already has it within `within` (None: ever).

        The check and the firing share one locked transaction, so two racing callers cannot
        both fire. Returns whether it fired; raises InvalidTransition like fire().
        """
        fired = await self.db.run(
            partial(
                self._fire_unless_recent_tx,
                public_id=public_id,
                event=event,
                actor=actor,
                within=within,
                also=also,
            )
        )
        if fired:
            await self.deliver()
        return fired

    async def tick(self, now: datetime | None = None) -> int:
        """Fire every due timer, then deliver. Returns the number of timers fired."""
        instant = now or self.clock.now()
        due = await self.db.run(lambda s: self._due_instances(s, instant))
        fired = 0
        for public_id in due:
            try:
                await self.db.run(partial(self._timer_tx, public_id=public_id, now=instant))
                fired += 1
            except CordeeError as error:
                log.warning("timer of instance %s failed: %s", public_id, error)
                await self.db.run(partial(self._record_error, public_id=public_id, error=error))
        await self.deliver(instant)
        return fired

    async def deliver(self, now: datetime | None = None) -> int:
        """Send what the outbox holds and is due; returns how many were delivered."""
        delivered = 0
        while True:
            instant = now or self.clock.now()
            batch = await self.db.run(partial(self._claim_due, now=instant))
            if not batch:
                return delivered
            went_out = await self._deliver_batch(batch)
            delivered += went_out
            # A failure may have enqueued a notice, and a full batch may leave more behind. Else
            # nothing due is left (retried rows wait in the future; rows written meanwhile are
            # delivered by the command that wrote them): no need for one more, empty, claim.
            if went_out == len(batch) and len(batch) < DELIVERY_BATCH:
                return delivered

    async def view(
        self, public_id: str, *, certifier_id: int | None = None, history: bool = False
    ) -> InstanceView:
        return await self.db.run(lambda s: self.view_in(s, public_id, certifier_id, history))

    # ------------------------------------------------------------ transactions

    def _start_tx(
        self,
        session: Session,
        workflow: Workflow,
        prepare: Callable[[Session], StartSpec],
        actor: str,
    ) -> InstanceView:
        spec = prepare(session)
        now = self.clock.now()
        instance = WorkflowInstance(
            public_id=self._new_reference(session, workflow),
            workflow=workflow.name,
            certifier_id=spec.certifier_id,
            organisation_id=spec.organisation_id,
            partnership_id=spec.partnership_id,
            state=workflow.initial,
            active_key=spec.active_key,
            data=spec.data,
            state_entered_at=now,
            created_at=now,
            updated_at=now,
        )
        self._schedule(workflow, instance, after=None)
        session.add(instance)
        try:
            session.flush()
        except IntegrityError as error:
            raise Conflict("une demande est déjà en cours pour ce partenariat") from error
        [entry_id] = self._log(session, [_log_row(instance, None, "start", actor, now)])
        self._apply(session, workflow, instance, workflow.start_effects, entry_id, now)
        return self._to_view(session, instance, history=False)

    def _fire_tx(
        self,
        session: Session,
        public_id: str,
        event: str,
        actor: str,
        certifier_id: int | None,
        now: datetime | None,
        reply_sender: str | None = None,
    ) -> Outcome:
        instance = self._load(session, public_id, certifier_id, lock=True)
        firing = Firing(public_id, event, actor, reply_sender)
        [outcome] = self._fire_loaded(session, [(instance, firing)], now)
        if isinstance(outcome, InvalidTransition):
            raise outcome
        return outcome

    def _fire_loaded(
        self,
        session: Session,
        firings: Sequence[tuple[WorkflowInstance, Firing]],
        now: datetime | None,
    ) -> list[Outcome | InvalidTransition]:
        """Fire events on locked instances, in order: states first, then one write per table."""
        instant = now or self.clock.now()
        outcomes: list[Outcome | InvalidTransition] = []
        entries: list[dict[str, Any]] = []
        fired: list[tuple[WorkflowInstance, Workflow, tuple[Effect, ...], str | None]] = []
        for instance, firing in firings:
            workflow = self.workflow(instance.workflow)
            previous = instance.state
            try:
                result = step(workflow, previous, firing.event, instance.data)
            except InvalidTransition as error:
                outcomes.append(error)
                continue
            self._enter(workflow, instance, result.target, instant)
            entries.append(_log_row(instance, previous, firing.event, firing.actor, instant))
            fired.append((instance, workflow, result.effects, firing.reply_sender))
            outcomes.append(Outcome(self._to_view(session, instance, history=False), previous))
        sharing: list[dict[str, Any]] = []
        mails: list[dict[str, Any]] = []
        for (instance, workflow, effects, reply_sender), entry_id in zip(
            fired, self._log(session, entries), strict=True
        ):
            self._effects(
                session,
                workflow,
                instance,
                effects,
                entry_id,
                instant,
                reply_sender,
                sharing,
                mails,
            )
        self._write_effects(session, sharing, mails)
        session.flush()
        return outcomes

    def _enter(
        self, workflow: Workflow, instance: WorkflowInstance, target: str, instant: datetime
    ) -> None:
        """Move an instance to `target` (possibly its own state) and reschedule its timers."""
        previous = instance.state
        instance.state = target
        instance.updated_at = instant
        instance.last_error = None
        if target != previous:
            instance.state_entered_at = instant
            self._schedule(workflow, instance, after=None)
        else:
            self._schedule(workflow, instance, after=instant)
        if target in workflow.terminal:
            instance.active_key = None

    def _fire_unless_recent_tx(
        self,
        session: Session,
        public_id: str,
        event: str,
        actor: str,
        within: timedelta | None,
        also: Callable[[Session], None] | None = None,
    ) -> bool:
        instance = self._load(session, public_id, None, lock=True)
        earlier = select(TransitionLog.id).where(
            TransitionLog.instance_id == instance.id, TransitionLog.event == event
        )
        if within is not None:
            earlier = earlier.where(TransitionLog.at > self.clock.now() - within)
        if also is not None:
            also(session)
        if session.scalar(earlier.limit(1)) is not None:
            return False
        self._fire_tx(session, public_id, event, actor, None, None)
        return True

    def _timer_tx(self, session: Session, public_id: str, now: datetime) -> None:
        instance = self._load(session, public_id, None, lock=True)
        if instance.due_at is None or instance.due_at > now:
            return  # another worker fired it, or it was rescheduled meanwhile
        workflow = self.workflow(instance.workflow)
        # After a long stop, only the latest overdue timer fires: no reminder after expiry.
        overdue = [
            (instance.state_entered_at + timer.after, timer.event)
            for timer in workflow.timers
            if timer.state == instance.state and instance.state_entered_at + timer.after <= now
        ]
        if not overdue:
            self._schedule(workflow, instance, after=now)
            return
        _, event = max(overdue)
        self._fire_tx(session, public_id, event, "timer", None, now)

    def _due_instances(self, session: Session, now: datetime) -> list[str]:
        query = (
            select(WorkflowInstance.public_id)
            .where(WorkflowInstance.due_at.is_not(None), WorkflowInstance.due_at <= now)
            .order_by(WorkflowInstance.due_at)
            .limit(1000)
        )
        return list(session.scalars(query))

    def _record_error(self, session: Session, public_id: str, error: Exception) -> None:
        session.execute(
            update(WorkflowInstance)
            .where(WorkflowInstance.public_id == public_id)
            .values(last_error=str(error)[:2000], due_at=None)
        )

    # ---------------------------------------------------------------- helpers

    def _load(
        self, session: Session, public_id: str, certifier_id: int | None, *, lock: bool
    ) -> WorkflowInstance:
        # People may type the numeric id shown in listings; links always carry the reference.
        key = (
            WorkflowInstance.id == int(public_id)
            if public_id.isdigit()
            else WorkflowInstance.public_id == public_id
        )
        query = select(WorkflowInstance).where(key)
        if certifier_id is not None:
            query = query.where(WorkflowInstance.certifier_id == certifier_id)
        if lock:
            query = query.with_for_update()
        instance = session.scalars(query).one_or_none()
        if instance is None:
            raise NotFound(f"demande « {public_id} » introuvable")
        return instance

    def _load_all(self, session: Session, public_ids: set[str]) -> dict[str, WorkflowInstance]:
        """Lock instances by reference, in id order (two batches never wait on each other)."""
        found: dict[str, WorkflowInstance] = {}
        ordered = sorted(public_ids)
        for start in range(0, len(ordered), IN_CHUNK):
            query = (
                select(WorkflowInstance)
                .where(WorkflowInstance.public_id.in_(ordered[start : start + IN_CHUNK]))
                .order_by(WorkflowInstance.id)
                .with_for_update()
            )
            found.update((instance.public_id, instance) for instance in session.scalars(query))
        return found

    def _new_reference(self, session: Session, workflow: Workflow) -> str:
        while True:
            code = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(10))
            reference = f"{workflow.reference_prefix}-{code}"
            exists = session.scalar(
                select(WorkflowInstance.id).where(WorkflowInstance.public_id == reference)
            )
            if exists is None:
                return reference

    def _schedule(
        self, workflow: Workflow, instance: WorkflowInstance, *, after: datetime | None
    ) -> None:
        upcoming = next_timer(workflow, instance.state, instance.state_entered_at, after)
        instance.due_at, instance.due_event = upcoming if upcoming else (None, None)

    @staticmethod
    def _log(session: Session, entries: list[dict[str, Any]]) -> list[int]:
        """Append transitions to the audit log; their ids, in order (part of the mails' keys).

        A Core INSERT … RETURNING: the log is never read back in the same session, and the
        ORM's unit of work for write-only rows costs more than the statement itself.
        """
        if not entries:
            return []
        statement = insert(TransitionLog).returning(TransitionLog.id, sort_by_parameter_order=True)
        return [int(entry_id) for entry_id in session.scalars(statement, entries)]

    def _apply(
        self,
        session: Session,
        workflow: Workflow,
        instance: WorkflowInstance,
        effects: tuple[Effect, ...],
        entry_id: int,
        now: datetime,
        reply_sender: str | None = None,
    ) -> None:
        sharing: list[dict[str, Any]] = []
        mails: list[dict[str, Any]] = []
        self._effects(
            session, workflow, instance, effects, entry_id, now, reply_sender, sharing, mails
        )
        self._write_effects(session, sharing, mails)

    def _effects(
        self,
        session: Session,
        workflow: Workflow,
        instance: WorkflowInstance,
        effects: tuple[Effect, ...],
        entry_id: int,
        now: datetime,
        reply_sender: str | None,
        sharing: list[dict[str, Any]],
        mails: list[dict[str, Any]],
    ) -> None:
        """The rows one transition's effects write, added to `sharing` and `mails`."""
        links: dict[str, str] | None = None  # signed once, shared by every mail of the step
        for index, effect in enumerate(effects):
            if isinstance(effect, SetSharing):
                if instance.partnership_id is None:
                    continue
                sharing += (
                    {
                        "partnership": instance.partnership_id,
                        "certification": int(certification_id),
                        "enabled": effect.enabled,
                        "at": now,
                    }
                    for certification_id in instance.data.get("certification_ids", [])
                )
            elif isinstance(effect, Send):
                links = links or self._links(workflow, instance)
                key = f"{instance.public_id}:{entry_id}:{index}"
                mails.append(
                    self._mail(session, workflow, instance, effect, key, now, reply_sender, links)
                )

    def _write_effects(
        self, session: Session, sharing: list[dict[str, Any]], mails: list[dict[str, Any]]
    ) -> None:
        if sharing:
            # Straight to the connection: a transition's session never reads the
            # PartnershipCertification objects (sharing is read in transactions of its own,
            # bot.sync.sharing), so the ORM has nothing to synchronise.
            session.connection().execute(SET_SHARING, sharing)
        self._add_outbox(session, mails)

    def _recipient(
        self,
        session: Session,
        instance: WorkflowInstance,
        role: Role,
        reply_sender: str | None = None,
    ) -> Recipient:
        if role in (Role.PARTNER_CONTACT, Role.REPLY_SENDER):
            contact = session.get(Contact, int(instance.data["contact_id"]))
            if contact is None:
                raise NotFound("le contact de l'organisme n'existe plus")
            if role is Role.REPLY_SENDER:
                if reply_sender is None:
                    raise InvalidInput("aucune adresse d'expéditeur pour ce message")
                # A colleague of the contact: same organisation, so the contact's language.
                return Recipient("mail", reply_sender, contact.language, "")
            return Recipient("mail", contact.email, contact.language, contact.name)
        if role is Role.TRAINER:
            data = instance.data
            language, name = str(data.get("language", "fr")), str(data["first_name"])
            if data.get("slack_user"):
                return Recipient("slack_dm", str(data["slack_user"]), language, name)
            return Recipient("mail", str(data["email"]), language, name)
        if role is Role.INVITER_STAFF and instance.certifier_id is None:
            # A training organisation invited: its contact hears of it by email.
            contact = session.scalar(
                select(Contact)
                .where(Contact.organisation_id == instance.organisation_id)
                .order_by(Contact.id)
                .limit(1)
            )
            if contact is None:
                raise NotFound("l'organisme n'a pas de contact à prévenir")
            return Recipient("mail", contact.email, contact.language, contact.name)
        certifier = session.get(Certifier, instance.certifier_id)
        if certifier is None:
            raise NotFound("certificateur introuvable")
        return Recipient("staff", str(certifier.id), certifier.language, certifier.name)

    def message_context(
        self,
        workflow: Workflow,
        instance: WorkflowInstance,
        recipient_name: str,
        now: datetime,
        links: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        return {
            "reference": instance.public_id,
            "state": instance.state,
            "data": instance.data,
            "recipient_name": recipient_name,
            "links": links if links is not None else self._links(workflow, instance),
            "created_at": instance.created_at,
            "deadline": _deadline(workflow, instance),
            "now": now,
            "public_url": self.links.public_url,
        } | (extra(instance) if (extra := self.extra_context.get(instance.workflow)) else {})

    def _links(self, workflow: Workflow, instance: WorkflowInstance) -> dict[str, str]:
        return {
            action: self.links.url(workflow.name, instance.public_id, action)
            for action in workflow.link_actions
        }

    def _mail(
        self,
        session: Session,
        workflow: Workflow,
        instance: WorkflowInstance,
        effect: Send,
        key: str,
        now: datetime,
        reply_sender: str | None = None,
        links: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        recipient = self._recipient(session, instance, effect.to, reply_sender)
        context = self.message_context(workflow, instance, recipient.name, now, links)
        if reply_sender is not None:
            context["reply_sender"] = reply_sender
        return self._outbox_row(instance, recipient, effect.to, effect.template, context, key, now)

    def _outbox_row(
        self,
        instance: WorkflowInstance,
        recipient: Recipient,
        role: Role,
        template: str,
        context: dict[str, Any],
        key: str,
        now: datetime,
    ) -> dict[str, Any]:
        """One rendered mail, as the outbox row that will carry it."""
        rendered = self.renderer.message(template, recipient.language, context)
        reply_to = None
        # Only the invited contact gets a reply address: it is bound to their address.
        if role is Role.PARTNER_CONTACT and self.reply_addresses is not None:
            reply_to = self.reply_addresses.address_for(instance.public_id, recipient.address)
        return {
            "idempotency_key": key,
            "certifier_id": instance.certifier_id,
            "organisation_id": instance.organisation_id,
            "instance_id": instance.id,
            "channel": recipient.channel,
            "role": role.value,
            "recipient": recipient.address,
            "template": template,
            "language": recipient.language,
            "subject": rendered.subject,
            "body_text": rendered.text,
            "body_html": rendered.html,
            "body_blocks": rendered.blocks,
            "message_id": new_message_id(self.message_domain),
            "reply_to": reply_to,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }

    @staticmethod
    def _add_outbox(session: Session, rows: list[dict[str, Any]]) -> None:
        """Queue mails in one Core INSERT: the outbox is read back only by later claims."""
        if rows:
            session.execute(insert(OutboxMessage), rows)

    def _fail(self, session: Session, row: OutboxMessage, reason: str) -> None:
        """Give up on a message; when a person was not reached, tell the certifier's staff."""
        row.status = "failed"
        row.last_error = reason[:2000]
        if row.role != Role.PARTNER_CONTACT or row.instance_id is None:
            return
        instance = session.get(WorkflowInstance, row.instance_id)
        if instance is None:
            return
        now = self.clock.now()
        staff = self._recipient(session, instance, Role.CERTIFIER_STAFF)
        workflow = self.workflow(instance.workflow)
        context = self.message_context(workflow, instance, staff.name, now) | {
            "failed_address": row.recipient,
            "failed_subject": row.subject,
            "failure": reason[:300],
        }
        key = f"delivery-failed:{row.id}"
        notice = self._outbox_row(
            instance, staff, Role.CERTIFIER_STAFF, FAILURE_TEMPLATE, context, key, now
        )
        self._add_outbox(session, [notice])

    def _claim_due(self, session: Session, now: datetime) -> list[tuple[int, Outbound]]:
        query = (
            select(OutboxMessage)
            .where(
                or_(OutboxMessage.status == "pending", OutboxMessage.status == "sending"),
                OutboxMessage.next_attempt_at <= now,
            )
            .order_by(OutboxMessage.id)
            .limit(DELIVERY_BATCH)
            .with_for_update(skip_locked=True)
        )
        claimed = []
        for row in session.scalars(query):
            row.status = "sending"
            row.next_attempt_at = now + DELIVERY_LEASE
            claimed.append((row.id, _outbound(row)))
        return claimed

    async def _deliver_batch(self, batch: list[tuple[int, Outbound]]) -> int:
        """Send a claimed batch in order, overlapping each mail's database work with the wire.

        While a mail is on the wire the next one is built (Pipelining.prepare); while the next
        one's envelope is exchanged, this one is recorded as sent, and the channel waits for
        that record before handing the next one over. A process killed at any moment thus
        leaves at most the mail in flight unrecorded: it goes again once its lease ends.
        Channels for which a second delivery changes nothing (`idempotent`: the Maildir file
        named after the Message-ID) get one record per batch instead.
        """
        went_out = 0
        recording: asyncio.Task[None] | None = None
        unrecorded: list[int] = []
        try:
            for index, (message_id, outbound) in enumerate(batch):
                channel = self.channels.get(outbound.channel)
                idempotent = getattr(channel, "idempotent", False) is True
                following = batch[index + 1][1] if index + 1 < len(batch) else None
                ahead = self._prepare_ahead(following)
                try:
                    wait = None if idempotent else recording
                    sent = await self._attempt(channel, message_id, outbound, after=wait)
                finally:
                    if ahead is not None:
                        await ahead
                if not sent:
                    continue
                went_out += 1
                if idempotent:
                    unrecorded.append(message_id)
                    continue
                if recording is not None:
                    await recording
                recording = asyncio.create_task(self._record_sent([message_id]))
        finally:
            if recording is not None:
                await recording
            if unrecorded:
                await self._record_sent(unrecorded)
        return went_out

    def _prepare_ahead(self, outbound: Outbound | None) -> asyncio.Task[None] | None:
        """Let a pipelining channel build a mail when the event loop is idle.

        The task runs at the first await of the current send: while the server answers.
        """
        if outbound is None:
            return None
        channel = as_pipelining(self.channels.get(outbound.channel))
        if channel is None:
            return None

        async def prepare() -> None:
            channel.prepare(outbound)

        return asyncio.create_task(prepare())

    async def _attempt(
        self,
        channel: Channel | None,
        message_id: int,
        outbound: Outbound,
        *,
        after: Awaitable[None] | None,
    ) -> bool:
        """Hand one mail to its channel once `after` is done; failures are recorded here."""
        try:
            if channel is None:
                raise DeliveryFailed(f"aucun canal « {outbound.channel} » n'est configuré")
            pipelining = as_pipelining(channel)
            if pipelining is not None:
                await pipelining.send(outbound, after=after)
            else:
                if after is not None:
                    await after
                await channel.send(outbound)
        except ChannelUnavailable as error:
            reason = str(error)
            log.warning("outbox %s: channel unavailable, will retry: %s", message_id, reason)
            await self.db.run(lambda s: self._mark_retry(s, message_id, reason))
            return False
        except DeliveryFailed as error:
            reason = str(error)
            log.error("outbox %s: delivery failed for good: %s", message_id, reason)
            await self.db.run(lambda s: self._mark_failed(s, message_id, reason))
            return False
        return True

    async def _record_sent(self, message_ids: list[int]) -> None:
        await self.db.execute(RECORD_SENT, {"ids": message_ids, "now": self.clock.now()})

    def _mark_failed(self, session: Session, message_id: int, reason: str) -> None:
        row = session.get(OutboxMessage, message_id)
        if row is None:
            return
        row.attempts += 1
        self._fail(session, row, reason)

    def _mark_retry(self, session: Session, message_id: int, error: str) -> None:
        row = session.get(OutboxMessage, message_id)
        if row is None:
            return
        row.attempts += 1
        row.last_error = error[:2000]
        if row.attempts >= MAX_DELIVERY_ATTEMPTS:
            self._fail(session, row, f"abandon après {row.attempts} tentatives : {error}")
            return
        row.status = "pending"
        backoff = min(30 * 2 ** (row.attempts - 1), 3600)
        jitter = random.uniform(0, backoff / 4)  # noqa: S311 - spreading retries, not security
        row.next_attempt_at = self.clock.now() + timedelta(seconds=backoff + jitter)

    async def report_bounce(
        self, address: str, reason: str, *, also: Callable[[Session], None] | None = None
    ) -> bool:
        """A permanent bounce: the address is undeliverable and the last mail to it failed.

        Returns True when this bounce was news (the staff are told once per message).
        `also` runs in the same transaction.
        """

        def work(session: Session) -> bool:
            news = self._bounce_tx(session, address.lower(), reason)
            if also is not None:
                also(session)
            return news

        news = await self.db.run(work)
        await self.deliver()
        return news

    def report_bounce_in(self, session: Session, address: str, reason: str) -> bool:
        """report_bounce() inside the caller's transaction; the caller delivers after."""
        return self._bounce_tx(session, address.lower(), reason)

    def _bounce_tx(self, session: Session, address: str, reason: str) -> bool:
        session.execute(
            update(Contact).where(func.lower(Contact.email) == address).values(undeliverable=True)
        )
        last = session.scalars(
            select(OutboxMessage)
            .where(
                func.lower(OutboxMessage.recipient) == address,
                OutboxMessage.role == Role.PARTNER_CONTACT.value,
                OutboxMessage.status == "sent",
            )
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        ).one_or_none()
        if last is None:
            return False
        self._fail(session, last, reason)
        return True

    # ------------------------------------------------------------------ views

    def view_in(
        self, session: Session, public_id: str, certifier_id: int | None, history: bool
    ) -> InstanceView:
        instance = self._load(session, public_id, certifier_id, lock=False)
        return self._to_view(session, instance, history=history)

    def _to_view(
        self, session: Session, instance: WorkflowInstance, *, history: bool
    ) -> InstanceView:
        workflow = self.workflow(instance.workflow)
        entries: tuple[HistoryEntry, ...] = ()
        if history:
            rows = session.scalars(
                select(TransitionLog)
                .where(TransitionLog.instance_id == instance.id)
                .order_by(TransitionLog.id)
            )
            entries = tuple(
                HistoryEntry(r.at, r.from_state, r.event, r.to_state, r.actor) for r in rows
            )
        return InstanceView(
            id=instance.id,
            public_id=instance.public_id,
            workflow=instance.workflow,
            certifier_id=instance.certifier_id,
            partnership_id=instance.partnership_id,
            state=instance.state,
            data=dict(instance.data),
            created_at=instance.created_at,
            state_entered_at=instance.state_entered_at,
            due_at=instance.due_at,
            due_event=instance.due_event,
            deadline=_deadline(workflow, instance),
            terminal=instance.state in workflow.terminal,
            history=entries,
        )


def _log_row(
    instance: WorkflowInstance, previous: str | None, event: str, actor: str, at: datetime
) -> dict[str, Any]:
    return {
        "instance_id": instance.id,
        "at": at,
        "from_state": previous,
        "event": event,
        "to_state": instance.state,
        "actor": actor,
    }


def _deadline(workflow: Workflow, instance: WorkflowInstance) -> datetime | None:
    """The last timer of the current state: when the state ends by itself."""
    delays = [t.after for t in workflow.timers if t.state == instance.state]
    return instance.state_entered_at + max(delays) if delays else None


def _outbound(row: OutboxMessage) -> Outbound:
    return Outbound(
        channel=row.channel,
        recipient=row.recipient,
        language=row.language,
        subject=row.subject,
        text=row.body_text,
        html=row.body_html,
        message_id=row.message_id,
        idempotency_key=row.idempotency_key,
        certifier_id=row.certifier_id,
        created_at=row.created_at,
        reply_to=row.reply_to,
        blocks=row.body_blocks,
    )


__all__ = ["Engine", "InvalidTransition", "Recipient", "StartSpec"]
