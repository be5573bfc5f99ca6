"""The processed-mail folder of IMAP intake, against aioimaplib's bundled IMAP server.

The bundled server reads the numbers of `UID MOVE` and `UID COPY` as sequence numbers, and its
`UID MOVE` of a single UID fails when it also offers UIDPLUS. Each scenario is therefore built
so that a moved message's sequence number equals its UID, and each copy path runs with the
capabilities it is meant for (MOVE alone, UIDPLUS alone, neither).
"""

from __future__ import annotations

import email
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aioimaplib.imap_testing_server import CAPABILITIES, ImapProtocol, Mail, MockImapServer

from bot.app import App, build_app
from bot.channels.imap_inbox import ImapInbox
from bot.channels.memory import MemoryChannel
from bot.config import Settings
from bot.errors import ConfigError
from tests.integration.test_mail_intake import reply, start
from tests.support.builders import Seed

BOT = "bot@cordee.example"
PASSWORD = "secret"
PROCESSED = "Processed"


class _RealisticProtocol(ImapProtocol):  # type: ignore[misc]
    """Like a real server, refuses to copy or move into a folder that does not exist (the
    bundled server creates it on the fly)."""

    def copy(self, tag: str, *args: str) -> None:
        if self._refused(tag, args[-1]):
            return
        super().copy(tag, *args)

    def move(self, tag: str, *args: str) -> None:
        if self._refused(tag, args[-1]):
            return
        super().move(tag, *args)

    def _refused(self, tag: str, mailbox: str) -> bool:
        if self.server_state.has_mailbox(self.user_login, mailbox):
            return False
        self.send_tagged_line(tag, "NO [TRYCREATE] Mailbox doesn't exist")
        return True


class ImapServer(MockImapServer):  # type: ignore[misc]
    def run_server(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        fetch_chunk_size: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Any:
        def create_protocol() -> ImapProtocol:
            protocol = _RealisticProtocol(
                self._server_state, fetch_chunk_size, self.capabilities, self.loop
            )
            self._connections.append(protocol)
            return protocol

        return self.loop.create_server(create_protocol, host, port, ssl=ssl_context)

    def deliver(self, raw: bytes, folder: str = "INBOX") -> None:
        self.receive(Mail(email.message_from_bytes(raw)), imap_user=BOT, mailbox=folder)

    def folder(self, name: str) -> list[Any]:
        """The messages of one of the bot's folders, as the server holds them."""
        return list(self._server_state.get_mailbox_messages(BOT, name) or [])

    def has_folder(self, name: str) -> bool:
        return bool(self._server_state.has_mailbox(BOT, name))


@asynccontextmanager
async def imap_server(capabilities: str = CAPABILITIES) -> AsyncIterator[tuple[ImapServer, int]]:
    server = ImapServer(capabilities=capabilities)
    listening = await server.run_server(host="127.0.0.1", port=0)
    try:
        yield server, listening.sockets[0].getsockname()[1]
    finally:
        server.reset()
        listening.close()
        await listening.wait_closed()


def inbox_for(app: App, port: int, processed_folder: str = PROCESSED) -> ImapInbox:
    return ImapInbox(
        "127.0.0.1",
        port,
        security="none",
        username=BOT,
        password=PASSWORD,
        db=app.db,
        processed_folder=processed_folder,
    )


def message_ids(messages: list[Any]) -> list[str]:
    return [str(message.email["Message-ID"]) for message in messages]


def message_id_of(raw: bytes) -> str:
    return str(email.message_from_bytes(raw)["Message-ID"])


async def handled_once(app: App, reference: str) -> None:
    view = await app.engine.view(reference, history=True)
    assert view.state == "authorised"
    assert [entry.event for entry in view.history].count("authorise") == 1


def make_folder(server: ImapServer, name: str) -> None:
    """A real folder holding one unrelated message, so that it exists before the bot logs in."""
    server.deliver(b"Message-ID: <kept@example.org>\nSubject: kept\n\nkept\n", folder=name)


async def test_a_handled_reply_is_moved_and_handled_once(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    async with imap_server(capabilities="IDLE MOVE") as (server, port):
        make_folder(server, PROCESSED)
        reference, message_id = await start(app, seed, mail)
        answer = reply(message_id, "Oui, j'autorise.")
        server.deliver(answer)

        assert await inbox_for(app, port).poll(app.handle_mail) == 1
        assert server.folder("INBOX") == []
        moved = server.folder(PROCESSED)[-1]
        assert str(moved.email["Message-ID"]) == message_id_of(answer)
        assert "\\Seen" in moved.flags  # read, for whoever opens the folder

        sent = len(mail.sent)
        assert await inbox_for(app, port).poll(app.handle_mail) == 0
        assert len(mail.sent) == sent
    await handled_once(app, reference)


async def test_with_uidplus_but_no_move_the_reply_is_copied_then_expunged_by_uid(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    """A message the handler rejects stays in the inbox, flagged, for a person to look at."""

    async def handler(raw: bytes) -> object:
        if b"Subject: illisible" in raw:
            raise ValueError("unreadable")
        return await app.handle_mail(raw)

    async with imap_server(capabilities="IDLE UIDPLUS") as (server, port):
        make_folder(server, PROCESSED)
        reference, message_id = await start(app, seed, mail)
        server.deliver(b"Message-ID: <odd@example.org>\nSubject: illisible\n\n?\n")
        answer = reply(message_id, "Oui, j'autorise.")
        server.deliver(answer)

        assert await inbox_for(app, port).poll(handler) == 2
        [rejected] = server.folder("INBOX")
        assert str(rejected.email["Message-ID"]) == "<odd@example.org>"
        assert "\\Flagged" in rejected.flags
        assert message_ids(server.folder(PROCESSED)) == [
            "<kept@example.org>",
            message_id_of(answer),
        ]
        assert await inbox_for(app, port).poll(handler) == 0
    await handled_once(app, reference)


async def test_without_uidplus_the_original_is_only_flagged_deleted(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    """No EXPUNGE at all: it would also remove mail other people marked deleted."""
    async with imap_server(capabilities="IDLE") as (server, port):
        make_folder(server, PROCESSED)
        reference, message_id = await start(app, seed, mail)
        answer = reply(message_id, "Oui, j'autorise.")
        server.deliver(answer)

        assert await inbox_for(app, port).poll(app.handle_mail) == 1
        [original] = server.folder("INBOX")
        assert {"\\Seen", "\\Deleted"} <= set(original.flags)
        assert message_ids(server.folder(PROCESSED)) == [
            "<kept@example.org>",
            message_id_of(answer),
        ]
        assert await inbox_for(app, port).poll(app.handle_mail) == 0
    await handled_once(app, reference)


async def test_without_a_processed_folder_the_reply_stays_where_it_is(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    async with imap_server() as (server, port):
        reference, message_id = await start(app, seed, mail)
        server.deliver(reply(message_id, "Oui, j'autorise."))

        assert await inbox_for(app, port, processed_folder="").poll(app.handle_mail) == 1
        [kept] = server.folder("INBOX")
        assert kept.flags == ["\\Seen"]
        assert not server.has_folder(PROCESSED)
    await handled_once(app, reference)


async def test_a_failed_move_is_logged_and_never_handles_the_reply_twice(
    app: App, seed: Seed, mail: MemoryChannel, caplog: pytest.LogCaptureFixture
) -> None:
    async with imap_server(capabilities="IDLE MOVE") as (server, port):
        reference, message_id = await start(app, seed, mail)
        server.deliver(reply(message_id, "Oui, j'autorise."))

        with caplog.at_level(logging.WARNING, logger="cordee.inbox"):
            assert await inbox_for(app, port, "Missing").poll(app.handle_mail) == 1
        assert [record.getMessage() for record in caplog.records] == [
            "imap 127.0.0.1: UID 1 not moved to the processed folder (UID MOVE NO)"
        ]
        [kept] = server.folder("INBOX")
        assert kept.flags == ["\\Seen"]

        sent = len(mail.sent)
        assert await inbox_for(app, port, "Missing").poll(app.handle_mail) == 0
        assert len(mail.sent) == sent
    await handled_once(app, reference)


# -- wiring --------------------------------------------------------------------------------------


def test_the_setting_reaches_the_imap_inbox(settings: Settings) -> None:
    configured = settings.model_copy(
        update={"imap_host": "imap.example.org", "imap_processed_folder": "Traités"}
    )
    app = build_app(configured)
    try:
        assert isinstance(app.inbox, ImapInbox)
        assert app.inbox.processed_folder == "Traités"
    finally:
        app.db.dispose()


@pytest.mark.parametrize(("watched", "processed"), [("INBOX", "inbox"), ("Replies", "Replies")])
def test_the_processed_folder_cannot_be_the_watched_folder(
    settings: Settings, watched: str, processed: str
) -> None:
    configured = settings.model_copy(
        update={
            "imap_host": "imap.example.org",
            "imap_folder": watched,
            "imap_processed_folder": processed,
        }
    )
    with pytest.raises(ConfigError, match="CORDEE_IMAP_PROCESSED_FOLDER désigne le dossier"):
        build_app(configured)
