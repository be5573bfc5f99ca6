"""Composition root: builds store, channels, engine, scheduler and web server; starts, stops."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from aiohttp import web

from bot.cdc.reminders import ReminderScheduler
from bot.cdc.report import ImportOutcome, attached_reports, import_report, import_report_mail
from bot.channels.base import Channel
from bot.channels.console import ConsoleChannel
from bot.channels.imap_inbox import ImapInbox
from bot.channels.inbox import Batch
from bot.channels.mail import MaildirChannel, ensure_maildir
from bot.channels.maildir_inbox import MaildirInbox
from bot.channels.smtp import SmtpChannel
from bot.clock import Clock, SystemClock
from bot.config import Settings, ensure_secret_key
from bot.engine import Engine
from bot.errors import ConfigError, CordeeError, TokenError, TokenExpired
from bot.links import LinkClaim, LinkSigner
from bot.mail_intake import Intake, handle_replies, handle_reply
from bot.render import Renderer, default_renderer
from bot.reply_address import ReplyAddresses
from bot.scheduler import Scheduler
from bot.store.db import Database, head_revision
from bot.sync.schedule import SyncScheduler
from bot.sync.services import SyncServices
from bot.trainers import invitation_context
from workflows import build_registry, trainer_invitation

if TYPE_CHECKING:  # Slack's SDK is imported only when Slack is set up
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.slack.app import SlackBot

log = logging.getLogger("cordee.app")

MANAGE_LINK_LIFETIME = timedelta(days=366)
# How old a genuine « manage » link may be and still ask for a fresh one by email.
RENEWAL_WINDOW = timedelta(days=3660)


@dataclass
class App:
    settings: Settings
    db: Database
    engine: Engine
    links: LinkSigner
    renderer: Renderer
    channels: Mapping[str, Channel]
    scheduler: Scheduler
    inbox: MaildirInbox | ImapInbox | None = None
    # Partner folder syncs (APScheduler, persistent job store); started by serve().
    sync_scheduler: SyncScheduler | None = None
    # CDC deposit deadline reminders (APScheduler, persistent job store); started by serve().
    deposit_reminders: ReminderScheduler | None = None
    runners: list[web.AppRunner] = field(default_factory=list)
    # Slack, when CORDEE_SLACK_BOT_TOKEN and CORDEE_SLACK_SIGNING_SECRET are set.
    slack: SlackBot | None = None
    socket_mode: AsyncSocketModeHandler | None = None

    def link_lifetime(self, action: str) -> timedelta:
        """Decision links live as long as the request; the manage link much longer."""
        if action == "manage":
            return MANAGE_LINK_LIFETIME
        return timedelta(days=self.settings.access_request_expiry_days)

    def verify_link(self, token: str) -> LinkClaim:
        """Check a link's signature, then its age against the lifetime of its action."""
        claim = self.links.verify(token, MANAGE_LINK_LIFETIME)
        if self.engine.clock.now() - claim.issued_at > self.link_lifetime(claim.action):
            raise TokenExpired("lien expiré")
        return claim

    def renewable_claim(self, token: str) -> LinkClaim | None:
        """An expired but genuine « manage » link may ask for a fresh one; nothing else may."""
        try:
            claim = self.links.verify(token, RENEWAL_WINDOW)
        except TokenError:
            return None
        return claim if claim.action == "manage" else None

    def check_database(self) -> None:
        current, head = self.db.current_revision(), head_revision()
        if current != head:
            raise ConfigError(
                "La base de données n'est pas à jour "
                f"(version {current or 'vide'}, attendue {head}) : lancez `cordee db upgrade`."
            )

    async def serve(
        self, host: str | None = None, port: int | None = None, *, scheduler: bool = True
    ) -> str:
        """Start the web server (and the scheduler); return the base URL actually listened on.

        Tests that move time themselves pass scheduler=False.
        """
        from bot.web.app import make_web_app

        runner = web.AppRunner(make_web_app(self), access_log=None)
        await runner.setup()
        site = web.TCPSite(
            runner,
            host or self.settings.host,
            self.settings.port if port is None else port,
        )
        await site.start()
        self.runners.append(runner)
        for channel in self.channels.values():
            await channel.start(self._ignore_inbound)
        if self.slack is not None and self.settings.slack_app_token is not None:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            # Socket Mode: Slack's requests come over a WebSocket, no public URL needed.
            self.socket_mode = AsyncSocketModeHandler(
                self.slack.bolt, self.settings.slack_app_token.get_secret_value()
            )
            await self.socket_mode.connect_async()  # type: ignore[no-untyped-call]
        if scheduler:
            self.scheduler.start()
            self.sync_scheduler = SyncScheduler(SyncServices.of(self))
            self.sync_scheduler.start()
            self.deposit_reminders = ReminderScheduler(SyncServices.of(self))
            self.deposit_reminders.start()
            if self.inbox is not None:
                await self.inbox.start(self.mail_handler)
        sockets = runner.addresses
        bound_host, bound_port = sockets[0][0], sockets[0][1]
        return f"http://{bound_host}:{bound_port}"

    async def _ignore_inbound(self, _inbound: object) -> None:
        return None

    async def handle_mail(self, raw: bytes) -> object:
        """One message; raises what made it unreadable or impossible to apply."""
        reports = attached_reports(raw)
        if reports:
            return await import_report_mail(SyncServices.of(self), reports)
        return await handle_reply(
            self.engine, raw, trusted_authserv_id=self.settings.trusted_authserv_id
        )

    async def handle_mails(self, raws: Sequence[bytes]) -> list[bool]:
        """Newly fetched messages, all at once; per message, whether it was handled.

        A mail carrying CDC processing reports has them imported; every other one is a reply
        to a request. A message not handled is left for a person (flagged).
        """
        reports = [attached_reports(raw) for raw in raws]
        replies = [raw for raw, attached in zip(raws, reports, strict=True) if not attached]
        outcomes = iter(
            await handle_replies(
                self.engine, replies, trusted_authserv_id=self.settings.trusted_authserv_id
            )
        )
        handled = []
        for attached in reports:
            if attached:
                handled.append(await self._import_reports(attached))
            else:
                handled.append(next(outcomes) is not Intake.REJECTED)
        return handled

    async def _import_reports(self, reports: list[bytes]) -> bool:
        try:
            imported = await import_report_mail(SyncServices.of(self), reports)
        except CordeeError as error:
            # Batch references and idFlux only: a report holds no personal data in its errors.
            log.warning("incoming mail: CDC report not imported: %s", error)
            return False
        for outcome in imported:
            log.info(
                "incoming mail: CDC report imported (%s, %s)",
                outcome.batch_reference,
                outcome.state,
            )
        return True

    @property
    def mail_handler(self) -> Batch:
        """What the inboxes are given: the whole backlog goes to the batch intake."""
        return Batch(self.handle_mails)

    async def close(self) -> None:
        if self.socket_mode is not None:
            await self.socket_mode.close_async()  # type: ignore[no-untyped-call]
            self.socket_mode = None
        if self.inbox is not None:
            await self.inbox.stop()
        if self.slack is not None:
            await self.slack.settle()
        await self.scheduler.stop()
        if self.sync_scheduler is not None:
            await self.sync_scheduler.stop()
        if self.deposit_reminders is not None:
            await self.deposit_reminders.stop()
        for channel in self.channels.values():
            await channel.stop()
        for runner in self.runners:
            await runner.cleanup()
        self.runners.clear()
        self.db.dispose()


def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    channels: Mapping[str, Channel] | None = None,
) -> App:
    settings = ensure_secret_key(settings)
    assert settings.secret_key is not None  # noqa: S101 - ensured just above
    db = Database(settings.effective_database_url)
    renderer = default_renderer()
    clock = clock or SystemClock()
    links = LinkSigner(settings.secret_key.get_secret_value(), settings.effective_public_url, clock)
    slack_client_ = _slack_client(settings)
    # What is not given (tests, benchmarks) comes from the settings.
    channels = dict(channels or {})
    if "mail" not in channels:
        channels["mail"] = _mail_channel(settings)
    if "staff" not in channels:
        staff: Channel = ConsoleChannel()
        if slack_client_ is not None:
            from bot.channels.slack import SlackChannel

            staff = SlackChannel(slack_client_, partial(_linked_channels, db), fallback=staff)
        channels["staff"] = staff
    if "slack_dm" not in channels and slack_client_ is not None:
        from bot.channels.slack import SlackDirectChannel

        channels["slack_dm"] = SlackDirectChannel(slack_client_)
    engine = Engine(
        db=db,
        workflows=build_registry(settings),
        renderer=renderer,
        links=links,
        channels=channels,
        clock=clock,
        message_domain=settings.mail_from_domain,
        reply_addresses=ReplyAddresses(
            settings.secret_key.get_secret_value(), settings.effective_reply_domain
        ),
        extra_context={trainer_invitation.NAME: invitation_context(links)},
    )
    slack = None
    if slack_client_ is not None and settings.slack_signing_secret is not None:
        from bot.slack.app import SlackBot

        slack = SlackBot(
            engine,
            slack_client_,
            settings.slack_signing_secret.get_secret_value(),
            language=settings.language,
        )
    app = App(
        settings=settings,
        db=db,
        engine=engine,
        links=links,
        renderer=renderer,
        channels=channels,
        scheduler=Scheduler(engine, settings.tick_seconds),
        inbox=_inbox(settings, db),
        slack=slack,
    )
    if slack is not None:
        slack.reports = partial(_import_shared_report, app)
    return app


async def _import_shared_report(
    app: App, data: bytes, certifier_id: int, actor: str
) -> ImportOutcome:
    """A processing report shared in a linked Slack channel, for that channel's certifier."""
    return await import_report(SyncServices.of(app), data, actor=actor, certifier_id=certifier_id)


def _slack_client(settings: Settings) -> AsyncWebClient | None:
    """The Slack Web API client when Slack is set up (bot token and signing secret)."""
    if settings.slack_bot_token is None or settings.slack_signing_secret is None:
        return None
    from bot.slack.app import slack_client

    return slack_client(settings.slack_bot_token.get_secret_value(), settings.slack_api_url)


async def _linked_channels(db: Database, certifier_id: int) -> list[str]:
    from bot.slack.tenancy import channels_of

    return await db.run(lambda session: channels_of(session, certifier_id))


def _mail_channel(settings: Settings) -> Channel:
    """SMTP when a server is configured, else the Maildir outbox of the embedded default."""
    ensure_maildir(settings.effective_inbox_dir)
    if settings.smtp_host:
        return SmtpChannel(
            settings.smtp_host,
            settings.smtp_port,
            security=settings.smtp_security,
            mail_from=settings.mail_from,
            username=settings.smtp_username or None,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        )
    ensure_maildir(settings.effective_outbox_dir)
    return MaildirChannel(settings.effective_outbox_dir, settings.mail_from)


def _inbox(settings: Settings, db: Database) -> MaildirInbox | ImapInbox:
    """IMAP when a server is configured, else the Maildir inbox of the embedded default."""
    if not settings.imap_host:
        return MaildirInbox(settings.effective_inbox_dir)
    processed, watched = settings.imap_processed_folder, settings.imap_folder
    # Moving a message into the folder it came from would give it a new UID at every pass.
    if processed == watched or processed.upper() == watched.upper() == "INBOX":
        raise ConfigError(
            "CORDEE_IMAP_PROCESSED_FOLDER désigne le dossier surveillé (CORDEE_IMAP_FOLDER) : "
            "choisissez un autre dossier, ou laissez ce réglage vide."
        )
    return ImapInbox(
        settings.imap_host,
        settings.imap_port,
        security=settings.imap_security,
        username=settings.imap_username,
        password=settings.imap_password.get_secret_value() if settings.imap_password else "",
        folder=settings.imap_folder,
        db=db,
        poll_seconds=settings.imap_poll_seconds,
        processed_folder=processed,
    )
