"""Trainer accounts: passwordless sign-in links, sessions, memberships, profile and email change.

Why passwordless: a trainer signs in a few times a month at most, so a password would be
forgotten and reset by email anyway; the email address is already their identity and their
recovery channel, so a link sent there proves exactly what a password reset would. With no
password there is nothing to leak, reuse elsewhere or brute-force. Links are random (32 bytes),
single-use and live 20 minutes; only their SHA-256 is stored, as for the session cookie, so a
copy of the database signs nobody in. Requests are rate-limited per address and per client.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.channels.mail import new_message_id
from bot.directory import check_email
from bot.engine import Engine
from bot.errors import CordeeError, InvalidInput, TokenInvalid
from bot.fsm import Role
from bot.store.models import (
    Certifier,
    Organisation,
    OutboxMessage,
    RateLimitHit,
    Trainer,
    TrainerAccount,
    TrainerSession,
    TrainerToken,
    TrainerUnavailability,
    WorkflowInstance,
)
from bot.trainers import Invitation, Inviter, active_key, find_inviter, resend
from workflows.trainer_invitation import State

SPACE_PATH = "/formateur"
LOGIN_PATH = "/formateur/connexion/"
EMAIL_PATH = "/formateur/adresse/"
LOGIN_LIFETIME = timedelta(minutes=20)
EMAIL_LIFETIME = timedelta(hours=24)
SESSION_LIFETIME = timedelta(hours=12)
RATE_WINDOW = timedelta(hours=1)
RATE_LIMIT = 5
LANGUAGES = ("fr", "en")
LOGIN, EMAIL = "login", "email"
# Loose on purpose: people write numbers in many ways; only the digits' count is checked.
PHONE = re.compile(r"^\+?[0-9 .()\-/]{6,25}$")
MAX_UNAVAILABILITY = timedelta(days=366)


class RateLimited(CordeeError):
    """Too many attempts in the window: the caller answers « try again later »."""


class TokenUnusable(TokenInvalid):
    """A sign-in or email link that cannot be used: `kind` is unknown, expired or used."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"lien {kind}")
        self.kind = kind


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


# ------------------------------------------------------------------ rate limits


def hit(session: Session, bucket: str, now: datetime, limit: int = RATE_LIMIT) -> None:
    """Count one attempt in `bucket`; raise RateLimited past `limit` within the window."""
    since = now - RATE_WINDOW
    session.execute(
        delete(RateLimitHit).where(RateLimitHit.bucket == bucket, RateLimitHit.at < since)
    )
    count = session.scalar(
        select(func.count()).select_from(RateLimitHit).where(RateLimitHit.bucket == bucket)
    )
    session.add(RateLimitHit(bucket=bucket, at=now))
    if (count or 0) >= limit:
        raise RateLimited("trop de demandes, réessayez plus tard")


def bucket(kind: str, value: str) -> str:
    """A rate-limit bucket that never stores the address or IP itself."""
    return f"{kind}:{digest(value.strip().lower())[:32]}"


def check_limits(session: Session, now: datetime, *buckets: str) -> None:
    """Count the attempt in every bucket, then refuse if any one is over its limit."""
    refused = False
    for name in buckets:
        try:
            hit(session, name, now)
        except RateLimited:
            refused = True
    if refused:
        raise RateLimited("trop de demandes, réessayez plus tard")


# ------------------------------------------------------------------ one-off mails


def _queue_mail(
    engine: Engine,
    session: Session,
    *,
    to: str,
    template: str,
    language: str,
    context: dict[str, Any],
    account_id: int,
    now: datetime,
) -> None:
    """Write a mail to the outbox in the caller's transaction; engine.deliver() sends it."""
    # The mail layout's footer names who the message is sent for: the trainer's organisations.
    names = [space.inviter_name for space in memberships(session, account_id)]
    on_behalf = ", ".join(dict.fromkeys(name for name in names if name)) or "Cordée"
    rendered = engine.renderer.message(
        template, language, {"data": {"certifier_name": on_behalf}, **context}
    )
    session.add(
        OutboxMessage(
            idempotency_key=f"{template}:{secrets.token_hex(16)}",
            certifier_id=None,
            organisation_id=None,
            instance_id=None,
            channel="mail",
            role=Role.TRAINER.value,
            recipient=to,
            template=template,
            language=language,
            subject=rendered.subject,
            body_text=rendered.text,
            body_html=rendered.html,
            body_blocks=None,
            message_id=new_message_id(engine.message_domain),
            reply_to=None,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


def _new_token(
    session: Session,
    account_id: int,
    purpose: str,
    now: datetime,
    lifetime: timedelta,
    new_email: str | None = None,
) -> str:
    raw = secrets.token_urlsafe(32)
    session.add(
        TrainerToken(
            token_hash=digest(raw),
            purpose=purpose,
            account_id=account_id,
            new_email=new_email,
            created_at=now,
            expires_at=now + lifetime,
            used_at=None,
        )
    )
    return raw


# ------------------------------------------------------------------ sign-in links


def language_of(value: str | None) -> str:
    return value if value in LANGUAGES else "fr"


def queue_login_link(
    engine: Engine, session: Session, account: TrainerAccount, now: datetime
) -> None:
    """A sign-in link by email to the account's own address (also for staff tools)."""
    raw = _new_token(session, account.id, LOGIN, now, LOGIN_LIFETIME)
    language = language_of(account.language)
    _queue_mail(
        engine,
        session,
        to=account.email,
        template="trainer_account/login_link",
        language=language,
        context={
            "first_name": account.first_name,
            "login_url": engine.links.public_url + LOGIN_PATH + raw,
            "expires_at": now + LOGIN_LIFETIME,
            "minutes": int(LOGIN_LIFETIME.total_seconds() // 60),
        },
        account_id=account.id,
        now=now,
    )


async def request_login_link(
    engine: Engine, email: str, language: str, client_ip: str | None = None
) -> None:
    """Email a sign-in link if the address has an active account; the same outcome otherwise.

    `language` is only the form's: the mail goes out in the account's own language.

    The caller shows one answer whatever happened, so the form tells nobody who has an
    account; RateLimited is raised alike for known and unknown addresses.
    """
    address = email.strip().lower()
    now = engine.clock.now()

    def work(session: Session) -> None:
        buckets = [bucket("login-email", address)]
        if client_ip:
            buckets.append(bucket("login-ip", client_ip))
        check_limits(session, now, *buckets)
        try:
            check_email(address)
        except InvalidInput:
            return
        account = session.scalar(
            select(TrainerAccount).where(func.lower(TrainerAccount.email) == address)
        )
        # An account without any space left (every organisation revoked it) gets no link.
        if account is None or not memberships(session, account.id):
            return
        queue_login_link(engine, session, account, now)

    await engine.db.run(work)
    await engine.deliver()


def check_token(session: Session, raw: str, purpose: str, now: datetime) -> TrainerToken:
    """The stored token behind a link, still usable, or TokenUnusable saying why not."""
    token = session.scalar(
        select(TrainerToken).where(
            TrainerToken.token_hash == digest(raw), TrainerToken.purpose == purpose
        )
    )
    if token is None:
        raise TokenUnusable("unknown")
    if token.used_at is not None:
        raise TokenUnusable("used")
    if token.expires_at <= now:
        raise TokenUnusable("expired")
    return token


def use_login_token(session: Session, raw: str, now: datetime) -> int:
    """Consume a sign-in link (single use); the account's id."""
    token = check_token(session, raw, LOGIN, now)
    token.used_at = now
    return token.account_id


# ------------------------------------------------------------------ memberships


@dataclass(frozen=True)
class Membership:
    """One organisation's (or certifier's) space the account may enter."""

    trainer_id: int
    inviter_name: str


def memberships(session: Session, account_id: int) -> list[Membership]:
    """The account's spaces: Trainer rows whose invitation is accepted and not revoked.

    A revoked (or expired) invitation leaves the workflow's terminal state and frees its
    active key, so only a live, accepted instance keyed on the trainer counts.
    """
    trainers = list(
        session.scalars(
            select(Trainer).where(Trainer.account_id == account_id).order_by(Trainer.id)
        )
    )
    if not trainers:
        return []
    accepted = set(
        session.scalars(
            select(WorkflowInstance.active_key).where(
                WorkflowInstance.active_key.in_([active_key(t.id) for t in trainers]),
                WorkflowInstance.state == State.ACCEPTED,
            )
        )
    )
    found = []
    for trainer in trainers:
        if active_key(trainer.id) in accepted:
            found.append(Membership(trainer.id, _inviter_name(session, trainer)))
    return found


def _inviter_name(session: Session, trainer: Trainer) -> str:
    if trainer.organisation_id is not None:
        organisation = session.get(Organisation, trainer.organisation_id)
        return organisation.name if organisation else ""
    if trainer.certifier_id is not None:
        certifier = session.get(Certifier, trainer.certifier_id)
        return certifier.name if certifier else ""
    return ""


# ------------------------------------------------------------------ sessions


@dataclass(frozen=True)
class SignedIn:
    """A live session: who, its CSRF token, and the space being looked at (if any left)."""

    session_id: int
    account_id: int
    csrf_token: str
    trainer_id: int | None
    spaces: tuple[Membership, ...]


def open_session(
    session: Session, account_id: int, now: datetime, trainer_id: int | None = None
) -> tuple[str, str]:
    """A new session; returns the cookie value and the CSRF token (only the cookie's hash is
    kept). It opens on `trainer_id`'s space when that is one of the account's, else the first."""
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    spaces = memberships(session, account_id)
    ids = [space.trainer_id for space in spaces]
    if trainer_id in ids:
        ids.insert(0, trainer_id)
    session.add(
        TrainerSession(
            session_hash=digest(cookie),
            account_id=account_id,
            csrf_token=csrf,
            trainer_id=ids[0] if ids else None,
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    session.flush()
    return cookie, csrf


def session_for(session: Session, cookie: str | None, now: datetime) -> SignedIn | None:
    """The session behind a cookie, with its space re-checked on every request."""
    if not cookie:
        return None
    row = session.scalar(
        select(TrainerSession).where(TrainerSession.session_hash == digest(cookie))
    )
    if row is None or row.expires_at <= now:
        return None
    spaces = tuple(memberships(session, row.account_id))
    allowed = {space.trainer_id for space in spaces}
    # The organisation may have revoked the space being looked at since the last request.
    if row.trainer_id not in allowed:
        row.trainer_id = spaces[0].trainer_id if spaces else None
    return SignedIn(row.id, row.account_id, row.csrf_token, row.trainer_id, spaces)


def close_session(session: Session, cookie: str | None) -> None:
    if cookie:
        session.execute(delete(TrainerSession).where(TrainerSession.session_hash == digest(cookie)))


def switch_space(session: Session, signed: SignedIn, trainer_id: int) -> None:
    """Look at another of the account's spaces; anything else is refused."""
    if trainer_id not in {space.trainer_id for space in signed.spaces}:
        raise InvalidInput("espace inconnu")
    row = session.get(TrainerSession, signed.session_id)
    if row is not None:
        row.trainer_id = trainer_id


# ------------------------------------------------------------------ profile


def update_profile(
    session: Session,
    account_id: int,
    *,
    first_name: str,
    last_name: str,
    phone: str,
    language: str,
    now: datetime,
) -> None:
    phone = " ".join(phone.split())
    digits = sum(ch.isdigit() for ch in phone)
    if phone and (not PHONE.match(phone) or not 6 <= digits <= 15):
        raise InvalidInput("phone")
    if len(first_name.strip()) > 100 or len(last_name.strip()) > 100:
        raise InvalidInput("name")
    account = session.get(TrainerAccount, account_id)
    if account is None:
        raise InvalidInput("account")
    account.first_name = first_name.strip()
    account.last_name = last_name.strip()
    account.phone = phone
    account.language = language_of(language)
    account.updated_at = now


def set_language(session: Session, account_id: int, language: str, now: datetime) -> None:
    account = session.get(TrainerAccount, account_id)
    if account is not None and language in LANGUAGES:
        account.language = language
        account.updated_at = now


# ------------------------------------------------------------------ unavailabilities


def add_unavailability(
    session: Session, account_id: int, starts_on: date, ends_on: date, note: str, now: datetime
) -> None:
    if ends_on < starts_on:
        raise InvalidInput("order")
    if ends_on - starts_on > MAX_UNAVAILABILITY:
        raise InvalidInput("length")
    if len(note.strip()) > 255:
        raise InvalidInput("note")
    session.add(
        TrainerUnavailability(
            account_id=account_id,
            starts_on=starts_on,
            ends_on=ends_on,
            note=note.strip(),
            created_at=now,
        )
    )


def delete_unavailability(session: Session, account_id: int, unavailability_id: int) -> bool:
    """Delete one of the account's own periods; another account's id deletes nothing."""
    result = session.execute(
        delete(TrainerUnavailability).where(
            TrainerUnavailability.id == unavailability_id,
            TrainerUnavailability.account_id == account_id,
        )
    )
    return bool(getattr(result, "rowcount", 0))


# ------------------------------------------------------------------ email change


async def request_email_change(
    engine: Engine, account_id: int, new_email: str, client_ip: str | None = None
) -> None:
    """Send a single-use confirmation link to the NEW address; nothing changes until it is used.

    An address another account already uses gets no mail, and the caller says the same thing
    as when one went out: the form reveals nobody's account.
    """
    address = check_email(new_email).lower()
    now = engine.clock.now()

    def work(session: Session) -> None:
        check_limits(session, now, bucket("email-change", str(account_id)))
        account = session.get(TrainerAccount, account_id)
        if account is None or account.email == address:
            return
        taken = session.scalar(
            select(TrainerAccount.id).where(func.lower(TrainerAccount.email) == address)
        )
        if taken is not None:
            return
        raw = _new_token(session, account_id, EMAIL, now, EMAIL_LIFETIME, new_email=address)
        _queue_mail(
            engine,
            session,
            to=address,
            template="trainer_account/email_change",
            language=language_of(account.language),
            context={
                "first_name": account.first_name,
                "new_email": address,
                "confirm_url": engine.links.public_url + EMAIL_PATH + raw,
                "expires_at": now + EMAIL_LIFETIME,
            },
            account_id=account_id,
            now=now,
        )

    await engine.db.run(work)
    await engine.deliver()


def confirm_email_change(session: Session, raw: str, now: datetime) -> str:
    """Use a confirmation link: the account's login changes, never an organisation's records.

    Returns the new address; InvalidInput if another account took it in the meantime.
    """
    token = check_token(session, raw, EMAIL, now)
    address = str(token.new_email or "")
    taken = session.scalar(
        select(TrainerAccount.id).where(
            func.lower(TrainerAccount.email) == address, TrainerAccount.id != token.account_id
        )
    )
    if taken is not None or not address:
        raise InvalidInput("taken")
    account = session.get(TrainerAccount, token.account_id)
    if account is None:
        raise TokenUnusable("unknown")
    token.used_at = now
    account.email = address
    account.updated_at = now
    session.flush()
    # Other pending changes of this account are now moot.
    session.execute(
        delete(TrainerToken).where(
            TrainerToken.account_id == account.id,
            TrainerToken.purpose == EMAIL,
            TrainerToken.used_at.is_(None),
        )
    )
    return address


# ------------------------------------------------------------------ invitation links


async def renew_invitation(
    engine: Engine, invitation: Invitation, client_ip: str | None = None
) -> None:
    """From a replaced link: e-mail a fresh one for a still pending invitation (rate-limited).

    The mail goes to the address the organisation invited, never to one given on the page.
    Raises Conflict when the invitation is no longer pending.
    """
    now = engine.clock.now()

    def prepare(session: Session) -> Inviter:
        buckets = [bucket("invitation", invitation.reference)]
        if client_ip:
            buckets.append(bucket("invitation-ip", client_ip))
        check_limits(session, now, *buckets)
        trainer = session.get(Trainer, invitation.trainer_id)
        if trainer is None:
            raise TokenUnusable("unknown")
        if trainer.organisation_id is not None:
            return find_inviter(session, org=str(trainer.organisation_id))
        return find_inviter(session, certifier=str(trainer.certifier_id))

    inviter = await engine.db.run(prepare)
    await resend(engine, inviter, str(invitation.trainer_id), actor="trainer:web")
