"""SMTP delivery against a real aiosmtpd server on 127.0.0.1: reuse, retries, refusals, STARTTLS."""

from __future__ import annotations

import asyncio
import email
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import SMTP as SMTPServer
from sqlalchemy import select

from bot.access_requests import send_request
from bot.app import App, build_app
from bot.channels.memory import MemoryChannel
from bot.channels.smtp import SmtpChannel
from bot.clock import FrozenClock
from bot.config import Settings
from bot.store.models import OutboxMessage
from tests.support.builders import seed_partnership


@dataclass
class Recorder:
    """An aiosmtpd handler that records what it accepts and answers what it is told to."""

    answer: str = "250 OK"
    messages: list[EmailMessage] = field(default_factory=list)
    connections: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.answer.startswith("250"):
            parsed = email.message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            self.messages.append(parsed)
        return self.answer


@dataclass
class SmtpServer:
    recorder: Recorder
    port: int
    server: asyncio.Server

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def start_server(
    recorder: Recorder, *, port: int = 0, tls: ssl.SSLContext | None = None
) -> SmtpServer:
    def factory() -> SMTPServer:
        recorder.connections += 1
        return SMTPServer(
            recorder, hostname="smtp.test", tls_context=tls, require_starttls=tls is not None
        )

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", port)
    bound = server.sockets[0].getsockname()[1]
    return SmtpServer(recorder, bound, server)


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = await start_server(Recorder())
    yield server
    await server.stop()


def smtp_app(settings: Settings, clock: FrozenClock, channel: SmtpChannel) -> App:
    return build_app(
        settings, clock=clock, channels={"mail": channel, "staff": MemoryChannel("staff")}
    )


async def send_one(app: App, clock: FrozenClock) -> str:
    seed = seed_partnership(app.db, now=clock.now())
    view = await send_request(
        app.engine, certifier=str(seed.certifier_id), partner=str(seed.organisation_id)
    )
    return view.public_id


def outbox_rows(app: App) -> list[OutboxMessage]:
    return app.db.run_sync(
        lambda s: list(s.scalars(select(OutboxMessage).where(OutboxMessage.channel == "mail")))
    )


async def test_mails_go_out_multipart_over_one_reused_connection(
    settings: Settings, clock: FrozenClock, smtp: SmtpServer
) -> None:
    channel = SmtpChannel(
        "127.0.0.1", smtp.port, security="none", mail_from="Cordée <cordee@example.org>"
    )
    app = smtp_app(settings, clock, channel)
    try:
        reference = await send_one(app, clock)
        await app.engine.fire(reference, "authorise", actor="partner_contact:web")
        message_ids = [row.message_id for row in outbox_rows(app)]
    finally:
        await app.close()
    request, confirmation = smtp.recorder.messages
    assert smtp.recorder.connections == 1
    assert request["To"] == "claire.martin@formations-sud.example"
    assert request["From"] == "Cordée <cordee@example.org>"
    assert request["Auto-Submitted"] == "auto-generated"
    # Replies route back to this request; settings has no reply domain: the From domain.
    assert request["Reply-To"].startswith(f"reply+{reference.lower()}-")
    assert request["Reply-To"].endswith("@cordee.localhost")
    assert [request["Message-ID"], confirmation["Message-ID"]] == message_ids
    assert {part.get_content_type() for part in request.walk()} >= {"text/plain", "text/html"}
    plain = confirmation.get_body(("plain",))
    assert plain is not None
    assert "/lien/" in plain.get_content()


async def test_a_temporary_refusal_is_retried_and_delivered_once(
    settings: Settings, clock: FrozenClock, smtp: SmtpServer
) -> None:
    smtp.recorder.answer = "451 4.3.0 Try again later"
    channel = SmtpChannel("127.0.0.1", smtp.port, security="none", mail_from="cordee@example.org")
    app = smtp_app(settings, clock, channel)
    try:
        await send_one(app, clock)
        [row] = outbox_rows(app)
        assert (row.status, row.attempts) == ("pending", 1)
        assert row.last_error is not None
        assert "451" in row.last_error
        smtp.recorder.answer = "250 OK"
        assert await app.engine.deliver(clock.advance(timedelta(minutes=2))) == 1
        assert await app.engine.deliver(clock.advance(timedelta(hours=2))) == 0
        [row] = outbox_rows(app)
        assert row.status == "sent"
    finally:
        await app.close()
    assert len(smtp.recorder.messages) == 1


async def test_a_permanent_refusal_marks_the_message_failed_and_tells_the_staff(
    settings: Settings, clock: FrozenClock, smtp: SmtpServer
) -> None:
    smtp.recorder.answer = "550 5.1.1 No such user"
    channel = SmtpChannel("127.0.0.1", smtp.port, security="none", mail_from="cordee@example.org")
    staff = MemoryChannel("staff")
    app = build_app(settings, clock=clock, channels={"mail": channel, "staff": staff})
    try:
        await send_one(app, clock)
        [row] = outbox_rows(app)
        assert row.status == "failed"
        assert row.last_error is not None
        assert "550" in row.last_error
        assert await app.engine.deliver(clock.advance(timedelta(days=1))) == 0
    finally:
        await app.close()
    assert smtp.recorder.messages == []
    _sent, failed = staff.sent
    assert "Courriel non remis à Formations <Sud>" in failed.subject
    assert "claire.martin@formations-sud.example" in failed.text
    assert "550 5.1.1 No such user" in failed.text


async def test_a_server_outage_keeps_the_message_until_the_server_is_back(
    settings: Settings, clock: FrozenClock
) -> None:
    recorder = Recorder()
    server = await start_server(recorder)
    port = server.port
    await server.stop()
    channel = SmtpChannel(
        "127.0.0.1", port, security="none", mail_from="cordee@example.org", timeout=5
    )
    app = smtp_app(settings, clock, channel)
    try:
        await send_one(app, clock)
        [row] = outbox_rows(app)
        assert row.status == "pending"
        assert row.last_error is not None
        assert "injoignable" in row.last_error
        revived = await start_server(recorder, port=port)
        try:
            assert await app.engine.deliver(clock.advance(timedelta(minutes=2))) == 1
        finally:
            await revived.stop()
    finally:
        await app.close()
    assert len(recorder.messages) == 1


async def test_starttls_with_a_verified_certificate(settings: Settings, clock: FrozenClock) -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    server = await start_server(Recorder(), tls=server_context)
    channel = SmtpChannel(
        "127.0.0.1",
        server.port,
        security="starttls",
        mail_from="cordee@example.org",
        tls_context=client_context,
    )
    app = smtp_app(settings, clock, channel)
    try:
        await send_one(app, clock)
        [row] = outbox_rows(app)
        assert row.status == "sent"
    finally:
        await app.close()
        await server.stop()
    assert len(server.recorder.messages) == 1


def test_smtp_settings_select_the_smtp_channel(settings: Settings) -> None:
    configured = settings.model_copy(
        update={"smtp_host": "smtp.example.org", "smtp_security": "tls", "smtp_port": 0}
    )
    app = build_app(configured)
    try:
        channel = app.channels["mail"]
        assert isinstance(channel, SmtpChannel)
        assert (channel.host, channel.port) == ("smtp.example.org", 465)
    finally:
        app.db.dispose()
