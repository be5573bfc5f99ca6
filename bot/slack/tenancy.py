"""Which Slack channel acts for which certifier, and who may act there (membership, cached)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.directory import find_certifier
from bot.errors import Conflict, InvalidInput
from bot.store.models import Certifier, SlackChannelLink, SlackEvent

log = logging.getLogger("cordee.slack")

MEMBERS_TTL_SECONDS = 300.0


def slack_error(error: SlackApiError) -> str:
    """Slack's error code (`invalid_auth`…), or the HTTP status when the answer is not JSON."""
    data = error.response.data
    if isinstance(data, dict):
        return str(data.get("error") or "erreur inconnue")
    return f"HTTP {error.response.status_code}"


def check_channel_id(value: str) -> str:
    """A Slack conversation id: C… (public), G… (private) or D… (direct message)."""
    channel = value.strip().upper()
    if len(channel) < 9 or channel[0] not in "CGD" or not channel.isalnum():
        raise InvalidInput(
            f"« {value} » n'est pas un identifiant de canal Slack : il commence par C ou G et se "
            "lit dans Slack, en bas des détails du canal (par ex. C0123ABCDEF)."
        )
    return channel


def link_channel(session: Session, certifier_ref: str, channel: str, now: datetime) -> Certifier:
    """Link a channel to a certifier: its members then act for that certifier."""
    certifier = find_certifier(session, certifier_ref)
    channel_id = check_channel_id(channel)
    existing = session.scalar(
        select(SlackChannelLink).where(SlackChannelLink.channel_id == channel_id)
    )
    if existing is not None:
        if existing.certifier_id == certifier.id:
            return certifier
        raise Conflict(
            f"le canal {channel_id} est déjà relié à un autre certificateur : un canal n'agit "
            "que pour un seul certificateur. Créez un canal par certificateur."
        )
    session.add(SlackChannelLink(certifier_id=certifier.id, channel_id=channel_id, linked_at=now))
    session.flush()
    return certifier


def certifier_of_channel(session: Session, channel_id: str) -> Certifier | None:
    return session.scalar(
        select(Certifier)
        .join(SlackChannelLink, SlackChannelLink.certifier_id == Certifier.id)
        .where(SlackChannelLink.channel_id == channel_id)
    )


def channels_of(session: Session, certifier_id: int) -> list[str]:
    return list(
        session.scalars(
            select(SlackChannelLink.channel_id)
            .where(SlackChannelLink.certifier_id == certifier_id)
            .order_by(SlackChannelLink.id)
        )
    )


def first_time(session: Session, key: str, now: datetime) -> bool:
    """Record a Slack event or button press by key; False when it was already handled."""
    try:
        with session.begin_nested():
            session.add(SlackEvent(event_key=key[:255], received_at=now))
    except IntegrityError:
        return False
    return True


class Members:
    """Members of linked channels, from conversations.members, kept a few minutes.

    Slack is asked again once the entry is stale, so someone who left the channel loses the
    right to act within MEMBERS_TTL_SECONDS.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        ttl: float = MEMBERS_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def is_member(self, channel_id: str, user_id: str) -> bool:
        cached = self._cache.get(channel_id)
        if cached is None or self.clock() - cached[0] > self.ttl:
            cached = (self.clock(), await self._fetch(channel_id))
            self._cache[channel_id] = cached
        return user_id in cached[1]

    async def _fetch(self, channel_id: str) -> frozenset[str]:
        members: set[str] = set()
        cursor = None
        try:
            while True:
                page = await self.client.conversations_members(
                    channel=channel_id, cursor=cursor, limit=1000
                )
                members.update(str(member) for member in page.get("members") or [])
                cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    return frozenset(members)
        except SlackApiError as error:
            # Refuse rather than guess: without the member list, nobody may act.
            log.error(
                "slack: conversations.members failed for %s: %s", channel_id, slack_error(error)
            )
            return frozenset()


async def member_by_email(client: AsyncWebClient, email: str) -> str:
    """The workspace member id of an address (users.lookupByEmail), or InvalidInput saying why."""
    try:
        answer = await client.users_lookupByEmail(email=email)
    except SlackApiError as error:
        code = slack_error(error)
        if code == "users_not_found":
            raise InvalidInput(
                f"aucun membre de l'espace Slack n'a l'adresse {email} : invitez-le par "
                "courriel (--via email)."
            ) from error
        log.error("slack: users.lookupByEmail failed: %s", code)
        raise InvalidInput(
            f"Slack n'a pas pu chercher cette adresse ({code}) : l'application a-t-elle la "
            "permission users:read.email ? Sinon, invitez par courriel."
        ) from error
    user = answer.get("user") or {}
    return str(user.get("id"))
