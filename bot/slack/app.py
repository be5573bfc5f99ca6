"""The Bolt app behind /slack/events: the /cordee command, notice buttons, XML files shared.

Adapters only: each handler acknowledges at once (Slack wants an answer within 3 seconds),
checks that the channel is linked to a certifier and that the user is one of its members,
then hands over to bot.slack.commands or bot.slack.files and answers in Slack.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.cdc.report import ImportOutcome
from bot.engine import Engine
from bot.errors import CordeeError
from bot.render import escape_mrkdwn
from bot.slack.commands import SlackAnswer, cancel, remind_now, run_command
from bot.slack.files import validate_shared_file
from bot.slack.tenancy import Members, certifier_of_channel, first_time

log = logging.getLogger("cordee.slack")

BUTTONS: dict[str, Callable[..., Awaitable[SlackAnswer]]] = {
    "remind": remind_now,
    "resend": remind_now,  # after a bounce: the request mail goes again
    "cancel": cancel,
}


def slack_client(token: str, api_url: str) -> AsyncWebClient:
    """The Web API client: waits out rate limits (Retry-After) a couple of times itself."""
    return AsyncWebClient(
        token=token,
        base_url=api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )


@dataclass(frozen=True)
class Actor:
    """Who acts, for which certifier, in which language."""

    certifier_id: int
    user_id: str
    language: str


class SlackBot:
    """Slack's requests in, Cordée's answers out; no business rule lives here."""

    def __init__(
        self,
        engine: Engine,
        client: AsyncWebClient,
        signing_secret: str,
        *,
        language: str = "fr",
    ) -> None:
        self.engine = engine
        self.client = client
        self.language = language
        self.members = Members(client)
        # Imports a CDC processing report shared in a channel: (bytes, certifier id, actor).
        self.reports: Callable[[bytes, int, str], Awaitable[ImportOutcome]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # One workspace, one bot token (no OAuth installation store); Bolt checks it once with
        # auth.test, on the first request. Listeners only acknowledge and hand the work to a
        # task of ours (_spawn), so Slack is answered at once and shutdown can wait for it.
        self.bolt = AsyncApp(
            client=client, signing_secret=signing_secret, process_before_response=True
        )
        self.bolt.command("/cordee")(self._on_command)
        for action_id in BUTTONS:
            self.bolt.action(action_id)(self._on_button)
        self.bolt.event("message")(self._on_message)

    async def handle(self, request: web.Request) -> web.Response:
        """aiohttp handler for POST /slack/events (signature checked by Bolt)."""
        response = await self.bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def settle(self) -> None:
        """Wait for the work started after acknowledging (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ---------------------------------------------------------------- who may act

    async def _actor(self, channel_id: str, user_id: str) -> Actor | str:
        """The certifier the channel acts for, or why this user may not act here."""
        certifier = await self.engine.db.run(lambda s: certifier_of_channel(s, channel_id))
        if certifier is None:
            return self._text("refusal_unlinked", self.language, channel=channel_id)
        if not await self.members.is_member(channel_id, user_id):
            return self._text("refusal_not_member", certifier.language)
        return Actor(certifier.id, user_id, certifier.language)

    def _text(self, name: str, language: str, **context: Any) -> str:
        return self.engine.renderer.slack(name, language, context).strip()

    # ---------------------------------------------------------------- handlers

    async def _on_command(self, ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        self._spawn(self._command(body, respond))

    async def _command(self, body: dict[str, Any], respond: Any) -> None:
        actor = await self._actor(str(body.get("channel_id", "")), str(body.get("user_id", "")))
        if isinstance(actor, str):
            await respond(text=actor, response_type="ephemeral")
            return
        answer = await run_command(
            self.engine,
            certifier_id=actor.certifier_id,
            user_id=actor.user_id,
            text=str(body.get("text", "")),
            language=actor.language,
        )
        visibility = "in_channel" if answer.public else "ephemeral"
        await respond(text=answer.text, response_type=visibility)

    async def _on_button(self, ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        self._spawn(self._button(body, respond))

    async def _button(self, body: dict[str, Any], respond: Any) -> None:
        action = body["actions"][0]
        channel = str((body.get("channel") or {}).get("id", ""))
        actor = await self._actor(channel, str(body["user"]["id"]))
        if isinstance(actor, str):
            await respond(text=actor, response_type="ephemeral", replace_original=False)
            return
        answer = await BUTTONS[action["action_id"]](
            self.engine,
            certifier_id=actor.certifier_id,
            reference=str(action.get("value", "")),
            user_id=actor.user_id,
            language=actor.language,
        )
        # The buttons give way to what was done: a notice is acted on once.
        message = body.get("message") or {}
        kept = [block for block in message.get("blocks") or [] if block.get("type") != "actions"]
        done = {"type": "context", "elements": [{"type": "mrkdwn", "text": answer.text}]}
        fallback = str(message.get("text") or answer.text)
        await respond(replace_original=True, text=fallback, blocks=[*kept, done])

    async def _on_message(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        self._spawn(self._message(body, event))

    async def _message(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        files = event.get("files") or []
        if not files or event.get("subtype") not in (None, "file_share"):
            return
        key = f"event:{body.get('event_id') or event.get('ts')}"
        now = self.engine.clock.now()
        if not await self.engine.db.run(lambda s: first_time(s, key, now)):
            log.info("slack: event %s already handled (a retry); ignored", key)
            return
        channel = str(event.get("channel", ""))
        wanted = [f for f in files if _looks_like_a_deposit(f, str(event.get("text") or ""))]
        if not wanted:
            return
        actor = await self._actor(channel, str(event.get("user", "")))
        if isinstance(actor, str):
            await self.client.chat_postEphemeral(
                channel=channel, user=str(event.get("user", "")), text=actor
            )
            return
        for shared in wanted:
            self._spawn(
                validate_shared_file(
                    self.client,
                    file_id=str(shared["id"]),
                    channel=channel,
                    thread_ts=_thread_of(event),
                    renderer=self.engine.renderer,
                    language=actor.language,
                    import_report=partial(self._import_report, actor) if self.reports else None,
                )
            )

    async def _import_report(self, actor: Actor, data: bytes) -> str:
        """A processing report shared in the channel: imported for this channel's certifier."""
        assert self.reports is not None  # noqa: S101 - only passed on when set
        try:
            outcome = await self.reports(data, actor.certifier_id, f"slack:{actor.user_id}")
        except CordeeError as error:
            return self._text("report_failed", actor.language, message=escape_mrkdwn(str(error)))
        return self._text("report_imported", actor.language, outcome=outcome)

    def _spawn(self, work: Awaitable[Any]) -> None:
        """Work that goes on after Slack is answered (a validation takes up to minutes)."""

        async def run() -> None:
            try:
                await work
            except Exception:
                # Never swallowed: logged with its traceback (no payload: it holds names).
                log.exception("slack: handling a request failed")

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _thread_of(event: dict[str, Any]) -> str | None:
    """The thread to answer in: the message's own thread, else the message itself."""
    ts = event.get("thread_ts") or event.get("ts")
    return str(ts) if ts else None


def _looks_like_a_deposit(shared: dict[str, Any], text: str) -> bool:
    """An XML file, or any file sent with « valider »: other files are just conversation."""
    name = str(shared.get("name") or "").lower()
    asked = any(word in text.lower() for word in ("valider", "validate", "validation"))
    return name.endswith(".xml") or shared.get("filetype") == "xml" or asked
