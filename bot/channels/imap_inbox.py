"""Incoming mail from an IMAP folder: read by UID, each message handled once, then marked seen.

Where to start reading again is kept in the database per (host, username, folder): the folder's
UIDVALIDITY and the last UID handled. Each handled message also leaves its Message-ID in
`processed_mail`, in the same transaction as the cursor, so a UIDVALIDITY change (the folder was
rebuilt: every UID is new) rereads the folder without applying anything twice. A Batch handler
gets the new messages a chunk at a time, and the cursor moves past a chunk once it has returned;
a plain handler gets them one by one.

With a processed folder, each handled message is then moved there (UID MOVE, else UID COPY and
\\Deleted, expunged by UID only when UIDPLUS is offered). The move comes after the commit, so a
failed move leaves the message in place and never handles it twice. A message the handler
rejected stays where it is, flagged, for a person to look at.

The background loop keeps one connection: it reads what is new, then waits in IDLE when the
server offers it (renewed before the 29-minute limit of RFC 2177), else sleeps `poll_seconds`.
A lost connection is retried with capped exponential backoff and jitter. Logs never carry
addresses, subjects, Message-IDs or passwords: only UIDs, counts and error types.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import ssl
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from aioimaplib import aioimaplib  # type: ignore[import-untyped]
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from bot.channels.inbox import MailHandler, batch_size, handle_batch
from bot.errors import ChannelUnavailable
from bot.processed_mail import dedupe_key, processed_among, record_all
from bot.store.db import Database
from bot.store.models import MailboxCursor

log = logging.getLogger("cordee.inbox")

Security = Literal["none", "starttls", "tls"]

# Renew IDLE well before servers drop it (RFC 2177: at least every 29 minutes).
IDLE_RENEW_SECONDS = 25 * 60.0
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 300.0
COMMAND_TIMEOUT_SECONDS = 60.0
LOGOUT_TIMEOUT_SECONDS = 5.0
DEFAULT_PORTS: dict[str, int] = {"none": 143, "starttls": 143, "tls": 993}

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]", re.IGNORECASE)
_FETCH_WITH_LITERAL = re.compile(rb"^\d+ FETCH \(.*\{\d+\}$", re.IGNORECASE)
_UID = re.compile(rb"\bUID (\d+)", re.IGNORECASE)

# What a lost or refused connection looks like from aioimaplib and asyncio.
CONNECTION_ERRORS = (OSError, TimeoutError, ssl.SSLError, aioimaplib.AioImapException)


@dataclass(frozen=True)
class _Connection:
    client: Any  # aioimaplib.IMAP4, untyped
    uidvalidity: int
    lost: asyncio.Event
    # Set by any EXISTS announcement, even one aioimaplib itself drops (see _watch_exists).
    announced: asyncio.Event


def _watch_exists(client: Any, announced: asyncio.Event) -> None:
    """Notice every `* n EXISTS`, including those sent between two of our commands.

    aioimaplib logs such unsolicited lines as "ignored untagged response" and drops them, so
    mail arriving just before IDLE would wait for the next renewal (25 minutes). Wrapping the
    protocol's untagged-line hook is the only way to hear them; without the hook (another
    aioimaplib version) the re-read loop in _run still narrows the gap.
    """
    protocol = getattr(client, "protocol", None)
    original = getattr(protocol, "_untagged_response", None)
    if protocol is None or original is None:
        return

    def watching(line: bytes) -> Any:
        if bytes(line).rstrip().endswith(b"EXISTS"):
            announced.set()
        return original(line)

    protocol._untagged_response = watching


@dataclass(frozen=True)
class FetchedMessage:
    uid: int
    raw: bytes


def parse_fetch(lines: Sequence[Any]) -> list[FetchedMessage]:
    """(UID, bytes) of each message in a `UID FETCH … (BODY.PEEK[])` answer, in UID order.

    aioimaplib gives the line announcing a literal, the literal itself, then the rest of the
    line; the UID may be on either side of the literal depending on the server.
    """
    found: dict[int, bytes] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        if (
            isinstance(line, bytes | bytearray)
            and _FETCH_WITH_LITERAL.match(bytes(line))
            and index + 1 < len(lines)
        ):
            literal = bytes(lines[index + 1])
            tail = lines[index + 2] if index + 2 < len(lines) else b""
            uid = _UID.search(bytes(line)) or _UID.search(bytes(tail))
            if uid is not None:
                found[int(uid.group(1))] = literal
            index += 3
            continue
        index += 1
    return [FetchedMessage(uid, found[uid]) for uid in sorted(found)]


def backoff_delays(
    first: float = BACKOFF_FIRST_SECONDS, cap: float = BACKOFF_MAX_SECONDS
) -> Iterator[float]:
    """Capped exponential backoff with full jitter: 0..1, 0..2, 0..4 … 0..cap seconds."""
    ceiling = first
    while True:
        yield random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
        ceiling = min(cap, ceiling * 2)


class ImapInbox:
    """Reads one IMAP folder; same interface as MaildirInbox: poll(), start(), stop()."""

    def __init__(
        self,
        host: str,
        port: int = 0,
        *,
        security: Security = "tls",
        username: str,
        password: str,
        folder: str = "INBOX",
        db: Database,
        poll_seconds: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
        processed_folder: str = "",
    ) -> None:
        self.host = host
        self.port = port or DEFAULT_PORTS[security]
        self.security = security
        self.username = username
        self._password = password
        self.folder = folder
        self.processed_folder = processed_folder
        self.db = db
        self.poll_seconds = poll_seconds
        self.tls_context = tls_context
        self.idle_renew_seconds = IDLE_RENEW_SECONDS
        self.mailbox_key = f"imap://{username}@{host}:{self.port}/{folder}"
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never show the password
        return f"ImapInbox({self.host!r}, {self.port}, folder={self.folder!r})"

    # -- one pass --------------------------------------------------------------------------

    async def poll(self, handler: MailHandler) -> int:
        """Connect, handle every new message, disconnect; return how many were handled."""
        async with self._connected() as connection:
            return await self._read_new(connection.client, connection.uidvalidity, handler)

    # -- background loop -------------------------------------------------------------------

    async def start(self, handler: MailHandler) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(handler))

    async def stop(self) -> None:
        """Let a message being handled finish (never abandon its transaction), then stop."""
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self, handler: MailHandler) -> None:
        """Read, wait (IDLE or sleep), read again; on an outage of the server or the database,
        retry after a capped, jittered, growing delay."""
        delays = backoff_delays()
        while not self._stopping.is_set():
            try:
                async with self._connected() as connection:
                    delays = backoff_delays()  # connected: the next failure starts small again
                    client = connection.client
                    while not self._stopping.is_set():
                        # Mail arriving while a message is handled is announced (EXISTS) in
                        # the answer to one of our commands, where aioimaplib drops it: IDLE
                        # would not hear of it until renewal. Read until a pass finds nothing.
                        connection.announced.clear()
                        handled = await self._read_new(client, connection.uidvalidity, handler)
                        while (handled or connection.announced.is_set()) and (
                            not self._stopping.is_set()
                        ):
                            connection.announced.clear()
                            handled = await self._read_new(client, connection.uidvalidity, handler)
                        if client.has_capability("IDLE"):
                            await self._idle(connection)
                        else:
                            await self._sleep(self.poll_seconds)
                        if connection.lost.is_set():
                            raise ChannelUnavailable(f"{self.host} : connexion IMAP perdue")
            except (ChannelUnavailable, OperationalError) as error:
                delay = next(delays)
                cause = error.__cause__ or error
                log.warning(
                    "imap %s: unavailable (%s); retrying in %.1f s",
                    self.host,
                    type(cause).__name__,
                    delay,
                )
                await self._sleep(delay)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when asked to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _idle(self, connection: _Connection) -> None:
        """Wait in IDLE until new mail arrives, the renewal time comes, the connection drops
        or stop() is called."""
        client = connection.client
        idle = await client.idle_start(timeout=self.idle_renew_seconds)
        waiters = {
            asyncio.ensure_future(self._stopping.wait()),
            asyncio.ensure_future(connection.lost.wait()),
            # An EXISTS heard just before IDLE began: read at once.
            asyncio.ensure_future(connection.announced.wait()),
        }
        try:
            while True:
                push = asyncio.ensure_future(client.wait_server_push(self.idle_renew_seconds + 60))
                done, _ = await asyncio.wait({push, *waiters}, return_when=asyncio.FIRST_COMPLETED)
                if push not in done:
                    push.cancel()
                    break
                lines = push.result()
                if lines == aioimaplib.STOP_WAIT_SERVER_PUSH or any(
                    b"EXISTS" in bytes(line) or b"BYE" in bytes(line) for line in lines
                ):
                    break  # renewal time, new mail, or the server is leaving
        finally:
            for waiter in waiters:
                waiter.cancel()
        if not connection.lost.is_set():
            client.idle_done()
            lost = asyncio.ensure_future(connection.lost.wait())
            await asyncio.wait(
                {idle, lost}, timeout=COMMAND_TIMEOUT_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            lost.cancel()
        if not idle.done():  # the server left (BYE, restart) or never ended IDLE
            idle.cancel()
            raise ChannelUnavailable(f"{self.host} : connexion IMAP perdue")

    # -- connection ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _connected(self) -> AsyncIterator[_Connection]:
        """A logged-in client with the folder selected, and the folder's UIDVALIDITY."""
        lost = asyncio.Event()
        context = self._tls_context() if self.security == "tls" else None
        client = aioimaplib.IMAP4(
            self.host,
            self.port,
            timeout=COMMAND_TIMEOUT_SECONDS,
            conn_lost_cb=lambda _exc: lost.set(),
            ssl_context=context,
        )
        healthy = False  # logged in, and no connection error since
        try:
            await client.wait_hello_from_server()
            if self.security == "starttls":
                await starttls(client, self.host, self._tls_context())
            response = await client.login(self.username, self._password)
            if response.result != "OK":
                raise ChannelUnavailable(f"{self.host} : identifiant ou mot de passe IMAP refusé")
            healthy = True
            response = await client.select(quote_mailbox(self.folder))
            if response.result != "OK":
                raise ChannelUnavailable(f"{self.host} : dossier IMAP introuvable")
            announced = asyncio.Event()
            _watch_exists(client, announced)
            yield _Connection(client, parse_uidvalidity(response.lines), lost, announced)
        except ChannelUnavailable:
            healthy = False
            raise
        except CONNECTION_ERRORS as error:
            healthy = False
            raise ChannelUnavailable(
                f"{self.host} : serveur IMAP injoignable ({type(error).__name__})"
            ) from error
        finally:
            if healthy and not lost.is_set():
                with contextlib.suppress(*CONNECTION_ERRORS):
                    await asyncio.wait_for(client.logout(), LOGOUT_TIMEOUT_SECONDS)
            transport = client.protocol.transport
            if transport is not None:
                transport.close()

    def _tls_context(self) -> ssl.SSLContext:
        return self.tls_context or ssl.create_default_context()

    # -- reading ---------------------------------------------------------------------------

    async def _read_new(self, client: Any, uidvalidity: int, handler: MailHandler) -> int:
        async with self._lock:
            cursor = await self.db.run(self._load_cursor)
            last_uid = 0
            if cursor is not None and cursor[0] == uidvalidity:
                last_uid = cursor[1]
            elif cursor is not None:
                log.warning(
                    "imap %s: UIDVALIDITY changed; rereading the folder (Message-IDs dedupe)",
                    self.host,
                )
            response = await client.uid("fetch", f"{last_uid + 1}:*", "(BODY.PEEK[])")
            if response.result != "OK":
                raise ChannelUnavailable(f"{self.host} : lecture IMAP refusée")
            # `n:*` always includes the last message, even when it is older than n.
            fresh = [m for m in parse_fetch(response.lines) if m.uid > last_uid]
            handled = 0
            size = batch_size(handler)
            for start in range(0, len(fresh), size):
                handled += await self._handle_chunk(
                    client, uidvalidity, fresh[start : start + size], handler
                )
            return handled

    async def _handle_chunk(
        self,
        client: Any,
        uidvalidity: int,
        messages: Sequence[FetchedMessage],
        handler: MailHandler,
    ) -> int:
        """Handle the messages whose Message-ID was not handled yet; return how many."""
        keys = [dedupe_key(message.raw) for message in messages]
        seen = await self.db.run(lambda s: processed_among(s, keys))
        waiting = [index for index, key in enumerate(keys) if key not in seen]
        problems: list[str | None] = [None] * len(messages)
        answers = await handle_batch(handler, [messages[index].raw for index in waiting])
        for index, problem in zip(waiting, answers, strict=True):
            problems[index] = problem
        last_uid = max(message.uid for message in messages)
        handled_keys = [keys[index] for index in waiting]
        # One transaction: the cursor moves past the chunk and every Message-ID is kept.
        await self.db.run(lambda s: self._save(s, uidvalidity, last_uid, handled_keys))
        for message, key, problem in zip(messages, keys, problems, strict=True):
            if key in seen:
                log.info("imap %s: UID %d already handled; skipped", self.host, message.uid)
            elif problem is not None:
                log.error(
                    "imap %s: UID %d could not be handled (%s)", self.host, message.uid, problem
                )
                # For a person to look at, instead of failing again at every pass.
                await self._flag(client, message.uid, "\\Flagged")
                continue
            await self._flag(client, message.uid, "\\Seen")
            await self._file(client, message.uid)
        return len(waiting)

    async def _flag(self, client: Any, uid: int, flag: str) -> None:
        """Best effort: the cursor, not the flag, is what prevents handling a message twice."""
        try:
            # aioimaplib puts no time limit on STORE: a lost answer would wait forever.
            await asyncio.wait_for(
                client.uid("store", str(uid), "+FLAGS.SILENT", f"({flag})"),
                COMMAND_TIMEOUT_SECONDS,
            )
        except (*CONNECTION_ERRORS, TimeoutError) as error:
            log.warning("imap %s: UID %d not flagged (%s)", self.host, uid, type(error).__name__)

    async def _file(self, client: Any, uid: int) -> None:
        """Move a handled message to the processed folder, when there is one. Best effort: the
        cursor is already committed, so a failure only leaves the message where it is."""
        if not self.processed_folder:
            return
        target = quote_mailbox(self.processed_folder)
        try:
            if client.has_capability("MOVE"):
                failed = await self._command(client, "move", str(uid), target)
            else:
                failed = await self._command(client, "copy", str(uid), target)
                if not failed:
                    failed = await self._command(
                        client, "store", str(uid), "+FLAGS.SILENT", "(\\Deleted)"
                    )
                # Without UIDPLUS, EXPUNGE would also remove what others marked deleted: the
                # original stays, flagged \Deleted, for the mail client to purge.
                if not failed and client.has_capability("UIDPLUS"):
                    failed = await self._command(client, "expunge", str(uid))
        except CONNECTION_ERRORS as error:
            failed = type(error).__name__
        if failed:
            log.warning(
                "imap %s: UID %d not moved to the processed folder (%s)", self.host, uid, failed
            )

    async def _command(self, client: Any, command: str, *arguments: str) -> str:
        """Run `UID <command> …`; return "" when the server said OK, else what it said."""
        response = await asyncio.wait_for(client.uid(command, *arguments), COMMAND_TIMEOUT_SECONDS)
        return "" if response.result == "OK" else f"UID {command.upper()} {response.result}"

    # -- store -----------------------------------------------------------------------------

    def _load_cursor(self, session: Session) -> tuple[int, int] | None:
        row = session.execute(
            select(MailboxCursor.uidvalidity, MailboxCursor.last_uid).where(
                MailboxCursor.mailbox == self.mailbox_key
            )
        ).first()
        return (row[0], row[1]) if row else None

    def _save(self, session: Session, uidvalidity: int, uid: int, keys: Sequence[str]) -> None:
        """Advance the cursor and record the Message-IDs, in one transaction."""
        now = datetime.now(UTC)
        record_all(session, sorted(set(keys) - processed_among(session, keys)), now)
        cursor = session.scalars(
            select(MailboxCursor).where(MailboxCursor.mailbox == self.mailbox_key)
        ).first()
        if cursor is None:
            session.add(
                MailboxCursor(
                    mailbox=self.mailbox_key, uidvalidity=uidvalidity, last_uid=uid, updated_at=now
                )
            )
            return
        if cursor.uidvalidity != uidvalidity:
            cursor.uidvalidity, cursor.last_uid = uidvalidity, uid
        else:
            cursor.last_uid = max(cursor.last_uid, uid)
        cursor.updated_at = now


async def starttls(
    client: Any, host: str, context: ssl.SSLContext, wait_seconds: float = COMMAND_TIMEOUT_SECONDS
) -> None:
    """aioimaplib has no STARTTLS: send the command, then upgrade the same transport."""
    protocol = client.protocol
    if "STARTTLS" not in protocol.capabilities:
        raise ChannelUnavailable(f"{host} : le serveur IMAP ne propose pas STARTTLS")
    response = await asyncio.wait_for(
        protocol.execute(aioimaplib.Command("STARTTLS", protocol.new_tag())), wait_seconds
    )
    if response.result != "OK":
        raise ChannelUnavailable(f"{host} : STARTTLS refusé")
    loop = asyncio.get_running_loop()
    protocol.transport = await loop.start_tls(
        protocol.transport,
        protocol,
        context,
        server_hostname=host,
        ssl_handshake_timeout=wait_seconds,
    )
    # Capabilities announced before TLS must not be trusted (RFC 3501 §6.2.1).
    await asyncio.wait_for(protocol.capability(), wait_seconds)


def parse_uidvalidity(lines: Sequence[Any]) -> int:
    for line in lines:
        if isinstance(line, bytes | bytearray):
            match = _UIDVALIDITY.search(bytes(line))
            if match:
                return int(match.group(1))
    raise ChannelUnavailable("le serveur IMAP n'a pas donné d'UIDVALIDITY")


def quote_mailbox(folder: str) -> str:
    """A folder name as an IMAP quoted string (spaces are common: « Boîte de réception »)."""
    if re.fullmatch(r"[A-Za-z0-9._/-]+", folder):
        return folder
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
