"""SMTP mail channel (aiosmtplib): a reused connection; transient and permanent failures apart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable
from email.utils import parseaddr
from typing import Literal

import aiosmtplib

from bot.channels.base import Dispatch
from bot.channels.mail import email_bytes
from bot.errors import ChannelUnavailable, DeliveryFailed
from bot.events import Outbound, Receipt

Security = Literal["none", "starttls", "tls"]
DEFAULT_PORTS: dict[str, int] = {"none": 25, "starttls": 587, "tls": 465}

log = logging.getLogger("cordee.smtp")


class SmtpChannel:
    name = "mail"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: Security,
        mail_from: str,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port or DEFAULT_PORTS[security]
        self.security = security
        self.mail_from = mail_from
        self._envelope_from = parseaddr(mail_from)[1]
        self._username = username
        self._password = password
        self._timeout = timeout
        self._tls_context = tls_context or ssl.create_default_context()
        self._client: aiosmtplib.SMTP | None = None
        # One message at a time on the shared connection.
        self._lock = asyncio.Lock()
        # The next message's bytes, built while the previous one was on the wire.
        self._prepared: tuple[str, bytes] | None = None

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self._timeout,
            use_tls=self.security == "tls",
            start_tls=self.security == "starttls",
            tls_context=self._tls_context,
            username=self._username,
            password=self._password,
        )
        await client.connect()
        if client.is_ehlo_or_helo_needed:
            # The extensions (8BITMIME, SMTPUTF8, SIZE) must be known before the first MAIL.
            await client.ehlo()
        self._client = client
        return client

    def prepare(self, outbound: Outbound) -> None:
        """Build the bytes of the message that will be sent next, ahead of its turn.

        The engine calls this while the previous message waits for the server's answers, so
        building costs no wall time. Best effort: send() builds again when this did not.
        """
        try:
            self._prepared = (outbound.message_id, email_bytes(outbound, self.mail_from))
        except Exception:  # send() builds it again and reports the error where it belongs
            self._prepared = None
            log.debug("outbox: preparing a mail ahead failed; it is built when sent")

    def _bytes_of(self, outbound: Outbound) -> bytes:
        prepared, self._prepared = self._prepared, None
        if prepared is not None and prepared[0] == outbound.message_id:
            return prepared[1]
        return email_bytes(outbound, self.mail_from)

    async def send(self, outbound: Outbound, *, after: Awaitable[None] | None = None) -> Receipt:
        """Send one mail. `after` must complete before the server takes it (see _transmit)."""
        data = self._bytes_of(outbound)
        async with self._lock:
            try:
                client = await self._connected()
                await self._transmit(client, outbound.recipient, data, after)
            except aiosmtplib.SMTPAuthenticationError as error:
                await self._drop()
                # Wrong credentials are an operator problem: keep the message and retry later.
                raise ChannelUnavailable(f"authentification SMTP refusée ({error.code})") from error
            except aiosmtplib.SMTPResponseException as error:
                await self._drop_if_broken()
                if 500 <= error.code < 600:
                    raise DeliveryFailed(_describe(error)) from error
                raise ChannelUnavailable(_describe(error)) from error
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
                await self._drop()
                raise ChannelUnavailable(f"serveur SMTP injoignable : {error}") from error
        return Receipt(self.name, outbound.message_id, f"{self.host}:{self.port}")

    async def _transmit(
        self,
        client: aiosmtplib.SMTP,
        recipient: str,
        data: bytes,
        after: Awaitable[None] | None,
    ) -> None:
        """MAIL, RCPT, then DATA: the server owns the mail once it acknowledges the data.

        The engine passes as `after` the recording of the previous mail as sent. Awaiting it
        only before DATA lets that database write overlap with the envelope's round trips while
        keeping the promise of the outbox: a process killed at any moment leaves at most the
        mail in flight unrecorded.
        """
        # Announced in MAIL FROM as RFC 6152 asks: the text part is 8bit.
        options = ["BODY=8BITMIME"] if client.supports_extension("8bitmime") else []
        encoding = "ascii"
        if not recipient.isascii():
            if not client.supports_extension("smtputf8"):
                raise DeliveryFailed(
                    "le serveur SMTP n'accepte pas les adresses accentuées (SMTPUTF8) : "
                    "corrigez l'adresse du contact ou utilisez un autre serveur"
                )
            options.append("SMTPUTF8")
            encoding = "utf-8"
        try:
            await client.mail(self._envelope_from, options=options, encoding=encoding)
            await client.rcpt(recipient, encoding=encoding)
            if after is not None:
                await after
            await client.data(data)
        except Exception:
            # Leave the connection ready for the next mail, as sendmail() would.
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                if client.is_connected:
                    await client.rset()
            raise
        except BaseException:
            # Cancelled mid-transaction: the next mail starts on a fresh connection.
            await self._drop()
            raise

    async def _drop_if_broken(self) -> None:
        if self._client is not None and not self._client.is_connected:
            self._client = None

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            client.close()

    async def start(self, dispatch: Dispatch) -> None:
        return None

    async def stop(self) -> None:
        async with self._lock:
            client, self._client = self._client, None
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    client.close()


def _describe(error: aiosmtplib.SMTPException) -> str:
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return f"{error.code} {error.message}"
    return str(error)
