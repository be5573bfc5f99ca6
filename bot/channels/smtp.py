"""SMTP mail channel (aiosmtplib): a reused connection; transient and permanent failures apart."""

from __future__ import annotations

import asyncio
import ssl
from typing import Literal

import aiosmtplib

from bot.channels.base import Dispatch
from bot.channels.mail import build_email
from bot.errors import ChannelUnavailable, DeliveryFailed
from bot.events import Outbound, Receipt

Security = Literal["none", "starttls", "tls"]
DEFAULT_PORTS: dict[str, int] = {"none": 25, "starttls": 587, "tls": 465}


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
        self._username = username
        self._password = password
        self._timeout = timeout
        self._tls_context = tls_context or ssl.create_default_context()
        self._client: aiosmtplib.SMTP | None = None
        # One message at a time on the shared connection.
        self._lock = asyncio.Lock()

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
        self._client = client
        return client

    async def send(self, outbound: Outbound) -> Receipt:
        message = build_email(outbound, self.mail_from)
        async with self._lock:
            try:
                client = await self._connected()
                await client.send_message(message)
            except aiosmtplib.SMTPRecipientsRefused as error:
                codes = [refusal.code for refusal in error.recipients]
                await self._drop_if_broken()
                if all(code >= 500 for code in codes):
                    raise DeliveryFailed(_describe(error)) from error
                raise ChannelUnavailable(_describe(error)) from error
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
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return "; ".join(f"{r.code} {r.message}" for r in error.recipients)
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return f"{error.code} {error.message}"
    return str(error)
