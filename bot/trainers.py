"""Trainer invitations: who invites, inviting, re-sending, revoking, and the single-use link.

An inviter is a training organisation (`org:<id>`) or a certifier (`cert:<id>`). A trainer is
one row per inviter and email; once they accept, the row points at their account, the same
for every inviter that used that email. The invitation itself is a `trainer_invitation`
workflow instance: its link is signed, expires with the invitation, names a nonce that a
re-send replaces, and stops working once accepted.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.directory import check_email, find_certifier, find_organisation
from bot.engine import Engine, StartSpec
from bot.errors import Conflict, InvalidInput, NotFound, TokenExpired, TokenInvalid
from bot.events import InstanceView
from bot.links import LinkSigner
from bot.store.models import InvitationText, Trainer, TrainerAccount, WorkflowInstance
from workflows.trainer_invitation import DEFAULT_EXPIRY, NAME, Event, State

INVITATION_PATH = "/formateur/invitation/"
ACCEPT_ACTION = "accept:"


@dataclass(frozen=True)
class Inviter:
    """Who invites: a training organisation or a certifier (exactly one of the two ids)."""

    key: str
    name: str
    language: str
    organisation_id: int | None = None
    certifier_id: int | None = None


def find_inviter(
    session: Session, *, org: str | None = None, certifier: str | None = None
) -> Inviter:
    """The inviter named by an organisation's or a certifier's id or SIRET."""
    if (org is None) == (certifier is None):
        raise InvalidInput("indiquez l'organisme (--org) ou le certificateur, l'un des deux.")
    if org is not None:
        organisation = find_organisation(session, org)
        return Inviter(
            f"org:{organisation.id}", organisation.name, "fr", organisation_id=organisation.id
        )
    found = find_certifier(session, str(certifier))
    return Inviter(f"cert:{found.id}", found.name, found.language, certifier_id=found.id)


def active_key(trainer_id: int) -> str:
    return f"trainer:{trainer_id}"


# ------------------------------------------------------------------ listing


@dataclass(frozen=True)
class TrainerRow:
    id: int
    email: str
    first_name: str
    last_name: str
    # not_invited | invited | accepted | expired | revoked
    state: str
    reference: str | None
    since: datetime | None
    has_account: bool


def list_trainers(session: Session, inviter: Inviter) -> list[TrainerRow]:
    """Each trainer of the inviter with the state of their latest invitation."""
    trainers = list(
        session.scalars(
            select(Trainer)
            .where(Trainer.inviter_key == inviter.key)
            .order_by(Trainer.last_name, Trainer.email)
        )
    )
    latest = _latest_instances(session, inviter, [t.id for t in trainers])
    rows = []
    for trainer in trainers:
        instance = latest.get(trainer.id)
        rows.append(
            TrainerRow(
                id=trainer.id,
                email=trainer.email,
                first_name=trainer.first_name,
                last_name=trainer.last_name,
                state=instance.state if instance else "not_invited",
                reference=instance.public_id if instance else None,
                since=instance.state_entered_at if instance else None,
                has_account=trainer.account_id is not None,
            )
        )
    return rows


def _latest_instances(
    session: Session, inviter: Inviter, trainer_ids: list[int]
) -> dict[int, WorkflowInstance]:
    if not trainer_ids:
        return {}
    found: dict[int, WorkflowInstance] = {}
    # Only this inviter's invitations: its tenant's rows, never another's.
    tenant = (
        WorkflowInstance.organisation_id == inviter.organisation_id
        if inviter.organisation_id is not None
        else WorkflowInstance.certifier_id == inviter.certifier_id
    )
    query = (
        select(WorkflowInstance)
        .where(WorkflowInstance.workflow == NAME, tenant)
        .order_by(WorkflowInstance.id)
    )
    wanted = set(trainer_ids)
    for instance in session.scalars(query):
        trainer_id = int(instance.data.get("trainer_id", 0))
        if trainer_id in wanted:
            found[trainer_id] = instance  # ordered by id: the latest wins
    return found


def find_trainer(session: Session, inviter: Inviter, reference: str) -> Trainer:
    """A trainer of this inviter, by id or email."""
    query = select(Trainer).where(Trainer.inviter_key == inviter.key)
    if reference.isdigit():
        query = query.where(Trainer.id == int(reference))
    else:
        query = query.where(func.lower(Trainer.email) == reference.strip().lower())
    trainer = session.scalar(query)
    if trainer is None:
        raise NotFound(
            f"formateur « {reference} » introuvable pour {inviter.name} : "
            "`cordee trainer list` donne leurs numéros."
        )
    return trainer


# ------------------------------------------------------------------ inviting


@dataclass(frozen=True)
class InviteResult:
    trainer_id: int
    # invited | already_invited | already_accepted
    outcome: str
    reference: str | None


async def invite(
    engine: Engine,
    inviter: Inviter,
    *,
    email: str,
    first_name: str = "",
    last_name: str = "",
    language: str | None = None,
    actor: str,
    slack_user: str | None = None,
) -> InviteResult:
    """Invite a trainer; an accepted one is not invited again (offer a sign-in link instead).

    With `slack_user` (their member id in the workspace), the invitation and its reminders go
    to them as a Slack direct message instead of an email.
    """
    if not email.strip():
        raise InvalidInput("adresse électronique manquante : rien n'a été envoyé.")
    address = check_email(email).lower()
    now = engine.clock.now()

    def existing(session: Session) -> tuple[Trainer, WorkflowInstance | None]:
        trainer = session.scalar(
            select(Trainer).where(Trainer.inviter_key == inviter.key, Trainer.email == address)
        )
        if trainer is None:
            trainer = Trainer(
                inviter_key=inviter.key,
                organisation_id=inviter.organisation_id,
                certifier_id=inviter.certifier_id,
                email=address,
                first_name=first_name.strip(),
                last_name=last_name.strip(),
                created_at=now,
            )
            session.add(trainer)
            session.flush()
        else:
            trainer.first_name = first_name.strip() or trainer.first_name
            trainer.last_name = last_name.strip() or trainer.last_name
        live = session.scalar(
            select(WorkflowInstance).where(WorkflowInstance.active_key == active_key(trainer.id))
        )
        return trainer, live

    trainer, live = await engine.db.run(existing)
    if live is not None:
        outcome = "already_accepted" if live.state == State.ACCEPTED else "already_invited"
        return InviteResult(trainer.id, outcome, live.public_id)

    def prepare(session: Session) -> StartSpec:
        text = session.scalar(
            select(InvitationText).where(
                InvitationText.inviter_key == inviter.key,
                InvitationText.language == (language or inviter.language),
            )
        )
        return StartSpec(
            certifier_id=inviter.certifier_id,
            organisation_id=inviter.organisation_id,
            active_key=active_key(trainer.id),
            data={
                "trainer_id": trainer.id,
                "inviter_key": inviter.key,
                "inviter_name": inviter.name,
                # The mail layout's footer names who the message is sent for.
                "certifier_name": inviter.name,
                "email": trainer.email,
                "first_name": trainer.first_name,
                "last_name": trainer.last_name,
                "language": language or inviter.language,
                "nonce": secrets.token_urlsafe(12),
                "slack_user": slack_user,
                "custom": {"subject": text.subject, "body": text.body} if text else None,
            },
        )

    view = await engine.start(NAME, prepare, actor)
    return InviteResult(trainer.id, "invited", view.public_id)


async def resend(engine: Engine, inviter: Inviter, trainer_ref: str, *, actor: str) -> InstanceView:
    """A new link by email; the previous one stops working."""

    def work(session: Session) -> str:
        instance = _live(session, inviter, trainer_ref)
        if instance.state != State.INVITED:
            raise Conflict(_not_pending(instance))
        instance.data = {**instance.data, "nonce": secrets.token_urlsafe(12)}
        session.flush()
        engine.fire_in(session, instance.public_id, Event.RESEND, actor=actor)
        return instance.public_id

    reference = await engine.db.run(work)
    await engine.deliver()
    return await engine.view(reference)


async def revoke(engine: Engine, inviter: Inviter, trainer_ref: str, *, actor: str) -> InstanceView:
    """Withdraw an invitation or an accepted trainer's access to this inviter's space."""

    def work(session: Session) -> str:
        instance = _live(session, inviter, trainer_ref)
        engine.fire_in(session, instance.public_id, Event.REVOKE, actor=actor)
        return instance.public_id

    reference = await engine.db.run(work)
    await engine.deliver()
    return await engine.view(reference)


def _live(session: Session, inviter: Inviter, trainer_ref: str) -> WorkflowInstance:
    trainer = find_trainer(session, inviter, trainer_ref)
    instance = session.scalar(
        select(WorkflowInstance).where(WorkflowInstance.active_key == active_key(trainer.id))
    )
    if instance is None:
        raise Conflict(
            f"{trainer.email} n'a pas d'invitation en cours : invitez-le avec "
            "`cordee trainer invite`."
        )
    return instance


def _not_pending(instance: WorkflowInstance) -> str:
    if instance.state == State.ACCEPTED:
        return (
            "ce formateur a déjà accepté : envoyez-lui plutôt un lien de connexion "
            "(`cordee trainer login-link`)."
        )
    return f"l'invitation {instance.public_id} n'est plus en cours ({instance.state})."


# ------------------------------------------------------------------ the link


def invitation_token(links: LinkSigner, public_id: str, nonce: str) -> str:
    return links.token(NAME, public_id, ACCEPT_ACTION + nonce)


def invitation_context(links: LinkSigner) -> Callable[[WorkflowInstance], dict[str, Any]]:
    """What the invitation mails need besides the engine's context: the link, the tag values."""

    def context(instance: WorkflowInstance) -> dict[str, Any]:
        data = instance.data
        url = (
            links.public_url
            + INVITATION_PATH
            + invitation_token(links, instance.public_id, str(data.get("nonce", "")))
        )
        return {"invitation_url": url}

    return context


class InvitationUnusable(TokenInvalid):
    """The link is genuine but cannot be used: `kind` says why (expired, replaced, used…)."""

    def __init__(self, kind: str, message: str, invitation: Invitation | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.invitation = invitation


@dataclass(frozen=True)
class Invitation:
    """A valid, still pending invitation, as its page shows it."""

    reference: str
    trainer_id: int
    inviter_name: str
    email: str
    first_name: str
    last_name: str
    language: str
    deadline: datetime | None


def read_invitation(engine: Engine, session: Session, token: str) -> Invitation:
    """The invitation behind a link, or InvitationUnusable / TokenInvalid saying why not."""
    workflow = engine.workflow(NAME)
    expiry = max(
        (t.after for t in workflow.timers if t.event == Event.EXPIRE), default=DEFAULT_EXPIRY
    )
    try:
        claim = engine.links.verify(token, expiry)
    except TokenExpired as error:
        raise InvitationUnusable("expired", "invitation expirée") from error
    if claim.workflow != NAME or not claim.action.startswith(ACCEPT_ACTION):
        raise TokenInvalid("lien invalide")
    instance = session.scalar(
        select(WorkflowInstance).where(WorkflowInstance.public_id == claim.public_id)
    )
    if instance is None:
        raise TokenInvalid("lien invalide")
    data = instance.data
    invitation = Invitation(
        reference=instance.public_id,
        trainer_id=int(data["trainer_id"]),
        inviter_name=str(data["inviter_name"]),
        email=str(data["email"]),
        first_name=str(data.get("first_name", "")),
        last_name=str(data.get("last_name", "")),
        language=str(data.get("language", "fr")),
        # As the mails say it: the reminders come first as due timers, the expiry stays fixed.
        deadline=instance.state_entered_at + expiry if instance.state == State.INVITED else None,
    )
    if instance.state == State.ACCEPTED:
        raise InvitationUnusable("used", "invitation déjà acceptée", invitation)
    if instance.state == State.EXPIRED:
        raise InvitationUnusable("expired", "invitation expirée", invitation)
    if instance.state == State.REVOKED:
        raise InvitationUnusable("revoked", "invitation retirée", invitation)
    if claim.action != ACCEPT_ACTION + str(data.get("nonce", "")):
        raise InvitationUnusable("replaced", "un lien plus récent a été envoyé", invitation)
    return invitation


def accept_in(engine: Engine, session: Session, token: str) -> int:
    """Accept (POST only): the trainer's account, created on first acceptance; its id."""
    invitation = read_invitation(engine, session, token)
    trainer = session.get(Trainer, invitation.trainer_id)
    if trainer is None:
        raise TokenInvalid("lien invalide")
    now = engine.clock.now()
    account = session.scalar(
        select(TrainerAccount).where(func.lower(TrainerAccount.email) == trainer.email.lower())
    )
    if account is None:
        account = TrainerAccount(
            email=trainer.email.lower(),
            first_name=trainer.first_name,
            last_name=trainer.last_name,
            phone="",
            language=invitation.language,
            created_at=now,
            updated_at=now,
        )
        session.add(account)
        session.flush()
    trainer.account_id = account.id
    engine.fire_in(session, invitation.reference, Event.ACCEPT, actor="trainer:web")
    return account.id


async def accept(engine: Engine, token: str) -> int:
    account_id = await engine.db.run(lambda session: accept_in(engine, session, token))
    await engine.deliver()
    return account_id
