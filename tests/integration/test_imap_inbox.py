"""IMAP intake against real local servers: aioimaplib's bundled server and Dovecot."""

from __future__ import annotations

import asyncio
import email
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aioimaplib.imap_testing_server import Mail, MockImapServer

from bot.app import App
from bot.channels.imap_inbox import ImapInbox, parse_fetch
from bot.channels.memory import MemoryChannel
from bot.errors import ChannelUnavailable
from bot.store.models import MailboxCursor, ProcessedMail
from tests.integration.test_mail_intake import reply, start
from tests.support.builders import Seed
from tests.support.dovecot import (
    BOT,
    PASSWORD,
    Dovecot,
    deliver_by_lmtp,
)

# -- aioimaplib's bundled server ---------------------------------------------------------------


@pytest.fixture
async def imap_server() -> AsyncIterator[tuple[MockImapServer, int]]:
    server = MockImapServer()
    listening = await server.run_server(host="127.0.0.1", port=0)
    try:
        yield server, listening.sockets[0].getsockname()[1]
    finally:
        server.reset()
        listening.close()
        await listening.wait_closed()


def inbox_for(app: App, port: int, **options: object) -> ImapInbox:
    return ImapInbox(
        "127.0.0.1",
        port,
        security="none",
        username=BOT,
        password=PASSWORD,
        db=app.db,
        **options,  # type: ignore[arg-type]
    )


def deliver(server: MockImapServer, raw: bytes) -> None:
    server.receive(Mail(email.message_from_bytes(raw)), imap_user=BOT)


async def test_a_reply_in_the_folder_is_applied_exactly_once(
    app: App, seed: Seed, mail: MemoryChannel, imap_server: tuple[MockImapServer, int]
) -> None:
    server, port = imap_server
    reference, message_id = await start(app, seed, mail)
    inbox = inbox_for(app, port)
    assert await inbox.poll(app.handle_mail) == 0  # empty folder

    answer = reply(message_id, "Oui, j'autorise.", message_id="<reply-1@formations-sud.example>")
    deliver(server, answer)
    assert await inbox.poll(app.handle_mail) == 1
    assert (await app.engine.view(reference)).state == "authorised"
    sent = len(mail.sent)
    assert await inbox.poll(app.handle_mail) == 0

    # A fresh process on the same database: the cursor and the Message-IDs were kept.
    assert await inbox_for(app, port).poll(app.handle_mail) == 0

    # The same reply delivered again (new UID, same Message-ID) is not handled again.
    deliver(server, answer)
    assert await inbox_for(app, port).poll(app.handle_mail) == 0
    assert len(mail.sent) == sent
    view = await app.engine.view(reference, history=True)
    assert [entry.event for entry in view.history].count("authorise") == 1

    processed = app.db.run_sync(lambda s: s.query(ProcessedMail.message_id).all())
    assert [row[0] for row in processed] == ["<reply-1@formations-sud.example>"]
    cursor = app.db.run_sync(lambda s: s.query(MailboxCursor.last_uid).one())
    assert cursor[0] == 2


async def test_a_message_the_handler_rejects_is_not_retried(
    app: App, seed: Seed, mail: MemoryChannel, imap_server: tuple[MockImapServer, int]
) -> None:
    server, port = imap_server
    reference, message_id = await start(app, seed, mail)
    calls: list[bytes] = []

    async def failing(raw: bytes) -> object:
        calls.append(raw)
        raise ValueError("unreadable")

    deliver(server, reply(message_id, "Oui, j'autorise."))
    inbox = inbox_for(app, port)
    assert await inbox.poll(failing) == 1
    assert await inbox.poll(failing) == 0
    assert len(calls) == 1
    assert (await app.engine.view(reference)).state == "pending"


async def test_the_background_loop_survives_a_server_restart(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    reference, message_id = await start(app, seed, mail)
    server = MockImapServer()
    listening = await server.run_server(host="127.0.0.1", port=0)
    port = listening.sockets[0].getsockname()[1]
    handled = asyncio.Event()

    async def handler(raw: bytes) -> object:
        outcome = await app.handle_mail(raw)
        handled.set()
        return outcome

    inbox = inbox_for(app, port, poll_seconds=0.05)
    await inbox.start(handler)
    try:
        # The server goes away and comes back on the same port.
        server.reset()
        listening.close()
        await listening.wait_closed()
        server = MockImapServer()
        listening = await server.run_server(host="127.0.0.1", port=port)
        deliver(server, reply(message_id, "D'accord."))
        await asyncio.wait_for(handled.wait(), 30)
    finally:
        await inbox.stop()
        server.reset()
        listening.close()
        await listening.wait_closed()
    assert (await app.engine.view(reference)).state == "authorised"


def test_fetch_answers_are_parsed_whichever_side_the_uid_is() -> None:
    lines = [
        b"1 FETCH (UID 7 BODY[] {5}",
        bytearray(b"hello"),
        b")",
        b"2 FETCH (BODY[] {3}",
        bytearray(b"abc"),
        b" UID 9)",
        b"3 FETCH (FLAGS (\\Seen) UID 9)",
        b"FETCH completed.",
    ]
    assert [(m.uid, m.raw) for m in parse_fetch(lines)] == [(7, b"hello"), (9, b"abc")]


# -- Dovecot ---------------------------------------------------------------------------------


# Other test modules import it under this name.
_deliver_by_lmtp = deliver_by_lmtp


class TestDovecot:
    @pytest.fixture
    def db_url(self, tmp_path: Path) -> str:
        """SQLite is enough here: both backends are covered with aioimaplib's server."""
        return f"sqlite:///{tmp_path / 'cordee.db'}"

    async def test_a_reply_delivered_by_lmtp_is_applied_end_to_end(
        self, app: App, seed: Seed, mail: MemoryChannel, dovecot: Dovecot
    ) -> None:
        reference, message_id = await start(app, seed, mail)
        answer = reply(message_id, "Bon pour accord.", sender=seed.contact_email)

        await asyncio.to_thread(_deliver_by_lmtp, dovecot, seed.contact_email, answer)
        inbox = ImapInbox(
            "127.0.0.1",
            dovecot.imap_port,
            security="none",
            username=BOT,
            password=PASSWORD,
            db=app.db,
        )
        intruder = ImapInbox(
            "127.0.0.1",
            dovecot.imap_port,
            security="none",
            username=BOT,
            password="wrong",
            db=app.db,
        )
        with pytest.raises(ChannelUnavailable, match="mot de passe IMAP refusé"):
            await intruder.poll(app.handle_mail)
        assert await inbox.poll(app.handle_mail) == 1
        assert (await app.engine.view(reference)).state == "authorised"
        confirmation = mail.sent[-1]
        assert confirmation.recipient == seed.contact_email
        assert "/lien/" in confirmation.text
        # Dovecot answers `n:*` with the last message even when nothing is newer.
        assert await inbox.poll(app.handle_mail) == 0

    async def test_the_background_loop_picks_a_reply_up_through_idle(
        self, app: App, seed: Seed, mail: MemoryChannel, dovecot: Dovecot
    ) -> None:
        reference, message_id = await start(app, seed, mail)
        handled = asyncio.Event()

        async def handler(raw: bytes) -> object:
            outcome = await app.handle_mail(raw)
            handled.set()
            return outcome

        # A long poll interval: only an IDLE push can bring the reply in time.
        inbox = ImapInbox(
            "127.0.0.1",
            dovecot.imap_port,
            security="none",
            username=BOT,
            password=PASSWORD,
            db=app.db,
            poll_seconds=3600,
        )
        stranger = reply("<unknown@example.org>", "Bonjour", sender=seed.contact_email)
        await asyncio.to_thread(_deliver_by_lmtp, dovecot, seed.contact_email, stranger)
        await inbox.start(handler)
        try:
            await asyncio.wait_for(handled.wait(), 10)  # the first read is done
            handled.clear()
            answer = reply(message_id, "Oui, j'autorise.", sender=seed.contact_email)
            answer = answer.replace(b"<reply-1@", b"<reply-2@")
            await asyncio.to_thread(_deliver_by_lmtp, dovecot, seed.contact_email, answer)
            await asyncio.wait_for(handled.wait(), 10)  # only an IDLE push can bring it
        finally:
            await inbox.stop()
        assert (await app.engine.view(reference)).state == "authorised"

    @pytest.mark.parametrize("security", ["starttls", "tls"])
    async def test_tls_is_verified_against_the_given_authority(
        self, app: App, seed: Seed, mail: MemoryChannel, dovecot: Dovecot, security: str
    ) -> None:
        reference, message_id = await start(app, seed, mail)
        answer = reply(message_id, "Non merci.", sender=seed.contact_email)
        await asyncio.to_thread(_deliver_by_lmtp, dovecot, seed.contact_email, answer)
        port = dovecot.imaps_port if security == "tls" else dovecot.imap_port

        def inbox(context: ssl.SSLContext | None) -> ImapInbox:
            return ImapInbox(
                "127.0.0.1",
                port,
                security=security,  # type: ignore[arg-type]
                username=BOT,
                password=PASSWORD,
                db=app.db,
                tls_context=context,
            )

        with pytest.raises(ChannelUnavailable, match="SSLCertVerificationError"):
            await inbox(None).poll(app.handle_mail)  # the system's authorities: refused
        assert (await app.engine.view(reference)).state == "pending"
        assert await inbox(dovecot.client_context()).poll(app.handle_mail) == 1
        assert (await app.engine.view(reference)).state == "refused"
