"""Email end to end: request over SMTP, reply into Dovecot, IDLE, decision, confirmation."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.access_requests import send_request
from bot.app import build_app
from bot.channels.memory import MemoryChannel
from bot.channels.smtp import SmtpChannel
from bot.clock import SystemClock
from bot.config import Settings
from tests.integration.test_smtp import Recorder, start_server
from tests.support.builders import seed_partnership
from tests.support.dovecot import BOT, PASSWORD, Dovecot, deliver_by_lmtp

REPLY_DOMAIN = "reponses.cordee.example"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite is enough here: both backends are covered with aioimaplib's server."""
    return f"sqlite:///{tmp_path / 'cordee.db'}"


def answer_as_a_mail_client_would(request: EmailMessage, sender: str, text: str) -> bytes:
    """Reply to `request`: to its Reply-To, threaded on its Message-ID, quoting it."""
    plain = request.get_body(("plain",))
    assert plain is not None
    quoted = "\n".join(f"> {line}" for line in plain.get_content().splitlines())
    reply = EmailMessage()
    reply["From"] = f"Claire Martin <{sender}>"
    reply["To"] = str(request["Reply-To"])
    reply["Subject"] = f"RE: {request['Subject']}"
    reply["Date"] = format_datetime(SystemClock().now())
    reply["Message-ID"] = make_msgid(domain="formations-sud.example")
    reply["In-Reply-To"] = str(request["Message-ID"])
    reply["References"] = str(request["Message-ID"])
    reply.set_content(f"{text}\n\nLe 23 nov. 2026 à 10:00, Cordée a écrit :\n{quoted}\n")
    return bytes(reply)


class WatchedRecorder(Recorder):
    """A recorder one can wait on: `arrived` is set whenever a message is accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        self.arrived.set()
        return answer

    async def wait_for(self, count: int, seconds: float) -> None:
        async with asyncio.timeout(seconds):
            while len(self.messages) < count:
                await self.arrived.wait()
                self.arrived.clear()


async def test_a_reply_by_email_authorises_end_to_end(settings: Settings, dovecot: Dovecot) -> None:
    recorder = WatchedRecorder()
    smtp = await start_server(recorder)
    settings = settings.model_copy(
        update={
            "reply_domain": REPLY_DOMAIN,
            "imap_host": "127.0.0.1",
            "imap_port": dovecot.imap_port,
            "imap_security": "none",
            "imap_username": BOT,
            "imap_password": SecretStr(PASSWORD),
            # Only an IDLE push can bring the reply in within the test's patience.
            "imap_poll_seconds": 3600.0,
        }
    )
    mail = SmtpChannel(
        "127.0.0.1", smtp.port, security="none", mail_from="Cordée <cordee@cordee.example>"
    )
    app = build_app(settings, channels={"mail": mail, "staff": MemoryChannel("staff")})
    try:
        await app.serve("127.0.0.1", 0)
        seed = seed_partnership(app.db, now=app.engine.clock.now())
        view = await send_request(
            app.engine, certifier=str(seed.certifier_id), partner=str(seed.organisation_id)
        )
        # The server's own tick may be the worker that claimed and is still sending it.
        await recorder.wait_for(1, 10)
        [request] = recorder.messages
        assert str(request["Reply-To"]).endswith(f"@{REPLY_DOMAIN}")

        answer = answer_as_a_mail_client_would(request, seed.contact_email, "Bon pour accord.")
        await asyncio.to_thread(deliver_by_lmtp, dovecot, seed.contact_email, answer)
        await recorder.wait_for(2, 10)

        assert (await app.engine.view(view.public_id)).state == "authorised"
        confirmation = recorder.messages[1]
        assert confirmation["To"] == seed.contact_email
        assert confirmation["In-Reply-To"] is None
        body = confirmation.get_body(("plain",))
        assert body is not None
        assert "/lien/" in body.get_content()  # the « gérer le partage » link
        history = (await app.engine.view(view.public_id, history=True)).history
        assert history[-1].actor == "partner_contact:mail"
    finally:
        await app.close()
        await smtp.stop()
