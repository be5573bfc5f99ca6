"""Staff notices to the certifier's linked Slack channels: Block Kit with a text fallback."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.channels.base import Channel, Dispatch
from bot.errors import ChannelUnavailable, DeliveryFailed
from bot.events import Outbound, Receipt
from bot.render import escape_mrkdwn
from bot.slack.tenancy import slack_error

log = logging.getLogger("cordee.slack")

# Slack's own limit on a message's text is 40,000 characters; the fallback never needs that much.
FALLBACK_LIMIT = 3000
# The bot is not (or no longer) where it should post: only a person can fix that.
FOR_GOOD = {
    "channel_not_found": "le canal Slack n'existe plus",
    "not_in_channel": "Cordée n'est pas membre du canal : invitez-la avec /invite @Cordée",
    "is_archived": "le canal Slack est archivé",
    "invalid_blocks": "message Slack mal formé",
    "msg_too_long": "message Slack trop long",
    "user_not_found": "le membre Slack n'existe plus",
    "cannot_dm_bot": "le destinataire est un bot Slack",
}


class SlackChannel:
    """Posts each staff notice in the certifier's linked channels (chat.postMessage).

    A certifier with no linked channel gets the notice on `fallback` (the console). Slack's
    rate limits are waited out by the client (Retry-After); what still fails comes back to the
    outbox as retryable, except the errors only a person can fix (FOR_GOOD).
    """

    name = "staff"

    def __init__(
        self,
        client: AsyncWebClient,
        channels_for: Callable[[int], Awaitable[list[str]]],
        fallback: Channel | None = None,
    ) -> None:
        self.client = client
        self.channels_for = channels_for
        self.fallback = fallback

    async def send(self, outbound: Outbound) -> Receipt:
        certifier_id = outbound.certifier_id
        channels = await self.channels_for(certifier_id) if certifier_id is not None else []
        if not channels:
            if self.fallback is not None:
                return await self.fallback.send(outbound)
            raise DeliveryFailed(
                "aucun canal Slack n'est relié à ce certificateur : cordee slack link "
                f"--certifier {outbound.certifier_id} --channel C…"
            )
        text = f"{outbound.subject}\n\n{outbound.text.strip()}"[:FALLBACK_LIMIT]
        blocks = json.loads(outbound.blocks) if outbound.blocks else default_blocks(outbound)
        posted = [await post_message(self.client, channel, text, blocks) for channel in channels]
        return Receipt(self.name, outbound.message_id, ", ".join(posted))

    async def start(self, dispatch: Dispatch) -> None:
        return None

    async def stop(self) -> None:
        return None


async def post_message(
    client: AsyncWebClient, channel: str, text: str, blocks: list[dict[str, Any]] | None = None
) -> str:
    """chat.postMessage, its failures sorted for the outbox; `channel@ts` once posted.

    What only a person can fix (FOR_GOOD) fails the message; anything else, a retry later.
    """
    try:
        answer = await client.chat_postMessage(
            channel=channel, text=text, blocks=blocks, unfurl_links=False, unfurl_media=False
        )
    except SlackApiError as error:
        code = slack_error(error)
        log.error("slack: chat.postMessage to %s failed: %s", channel, code)
        if code in FOR_GOOD:
            raise DeliveryFailed(f"{FOR_GOOD[code]} ({channel})") from error
        raise ChannelUnavailable(f"Slack a répondu « {code} »") from error
    except (aiohttp.ClientError, TimeoutError) as error:
        log.warning("slack: chat.postMessage to %s: Slack unreachable: %s", channel, error)
        raise ChannelUnavailable(f"Slack injoignable : {error}") from error
    return f"{channel}@{answer.get('ts')}"


def default_blocks(outbound: Outbound) -> list[dict[str, Any]]:
    """A notice without a Slack template: its subject in bold, then its text."""
    body = f"*{escape_mrkdwn(outbound.subject)}*\n{escape_mrkdwn(outbound.text.strip())}"
    return [{"type": "section", "text": {"type": "mrkdwn", "text": body[:FALLBACK_LIMIT]}}]


class SlackDirectChannel:
    """Direct messages to one Slack member (a trainer invited through Slack): their id is the
    recipient. Errors are sorted as for the staff notices (post_message)."""

    name = "slack_dm"

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def send(self, outbound: Outbound) -> Receipt:
        text = f"*{escape_mrkdwn(outbound.subject)}*\n\n{escape_mrkdwn(outbound.text.strip())}"
        posted = await post_message(self.client, outbound.recipient, text[:FALLBACK_LIMIT])
        return Receipt(self.name, outbound.message_id, posted)

    async def start(self, dispatch: Dispatch) -> None:
        return None

    async def stop(self) -> None:
        return None
