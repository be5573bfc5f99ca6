"""The whole flow: asked from Slack, mailed over SMTP, authorised by email, told in Slack."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

import aiohttp
import pytest

from bot.app import build_app
from bot.channels.smtp import SmtpChannel
from bot.clock import FrozenClock
from bot.config import Settings
from bot.slack.tenancy import link_channel
from tests.integration.test_smtp import Recorder, SmtpServer, start_server
from tests.slack.conftest import CHANNEL, MEMBER
from tests.support.builders import ORGANISATION_SIRET, seed_partnership
from tests.support.fake_slack import FakeSlack, command_body, signed_headers


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = await start_server(Recorder())
    yield server
    await server.stop()


def answer_to(request: EmailMessage, text: str) -> bytes:
    """The organisation's contact answers from their mail client: to Reply-To, threaded."""
    reply = EmailMessage()
    reply["From"] = formataddr(("Claire Martin", str(request["To"])))
    reply["To"] = str(request["Reply-To"] or request["From"])
    reply["Subject"] = f"RE: {request['Subject']}"
    reply["Message-ID"] = make_msgid(domain="formations-sud.example")
    reply["In-Reply-To"] = str(request["Message-ID"])
    reply["References"] = str(request["Message-ID"])
    reply.set_content(f"{text}\n\nCordialement,\nClaire\n")
    return bytes(reply)


async def test_asked_from_slack_authorised_by_email_and_the_channel_is_told(
    slack_settings: Settings, clock: FrozenClock, fake_slack: FakeSlack, smtp: SmtpServer
) -> None:
    channel = SmtpChannel(
        "127.0.0.1", smtp.port, security="none", mail_from=slack_settings.mail_from
    )
    app = build_app(slack_settings, clock=clock, channels={"mail": channel})
    try:
        seed = seed_partnership(app.db, now=clock.now())
        app.db.run_sync(lambda s: link_channel(s, str(seed.certifier_id), CHANNEL, clock.now()))
        url = await app.serve(host="127.0.0.1", port=0, scheduler=False)
        assert app.slack is not None

        # 1. A member of the linked channel asks for access.
        body = command_body(
            f"demande-acces {ORGANISATION_SIRET}",
            user=MEMBER,
            channel=CHANNEL,
            response_url=fake_slack.response_url(),
        )
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{url}/slack/events",
                data=body.encode(),
                headers=signed_headers(body, json_body=False),
            ) as answer,
        ):
            assert answer.status == 200
        await app.slack.settle()
        await app.engine.deliver()

        # 2. The request went out over SMTP; the channel heard of it.
        [request] = smtp.recorder.messages
        assert str(request["To"]) == seed.contact_email
        assert len(fake_slack.calls_to("chat.postMessage")) == 1

        # 3. The organisation answers the email; the inbox hands the reply over.
        assert await app.handle_mails([answer_to(request, "Oui, j'autorise.")]) == [True]

        # 4. Authorised; the contact gets a confirmation, and the channel is told.
        [sent_notice, decided] = fake_slack.calls_to("chat.postMessage")
        assert decided.body["channel"] == CHANNEL
        assert "autoris" in decided.body["text"].lower()
        blocks = decided.body["blocks"]
        blocks = blocks if isinstance(blocks, list) else json.loads(blocks)
        assert "autoris" in blocks[0]["text"]["text"].lower()
        # The organisation's name is « Formations <Sud> »: shown as is, not read as mrkdwn.
        assert "Formations &lt;Sud&gt;" in blocks[0]["text"]["text"]
        assert len(smtp.recorder.messages) == 2  # the request, then the confirmation
        assert fake_slack.responses[-1]["response_type"] == "in_channel"
        assert sent_notice.body["channel"] == CHANNEL
    finally:
        await app.close()
