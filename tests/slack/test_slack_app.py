"""/slack/events served for real: signatures, tenancy, commands, buttons, retries, notices."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from bot.app import build_app
from bot.cdc.passages import deposit_status
from bot.channels.memory import MemoryChannel
from bot.clock import FrozenClock
from bot.config import Settings
from bot.slack.tenancy import link_channel
from bot.store.models import OutboxMessage
from tests.cdc.conftest import DATA
from tests.cdc.test_report_mail import deposited_batch
from tests.slack.conftest import CHANNEL, MEMBER, STRANGER, SlackSide
from tests.support.builders import ORGANISATION_SIRET, seed_partnership
from tests.support.cdc_deposit import report_xml
from tests.support.fake_slack import (
    APP_TOKEN,
    FakeSlack,
    SharedFile,
    action_body,
    command_body,
    event_body,
    signed_headers,
)


def command(fake: FakeSlack, text: str, *, user: str = MEMBER, channel: str = CHANNEL) -> str:
    return command_body(text, user=user, channel=channel, response_url=fake.response_url())


def posted_blocks(fake: FakeSlack) -> list[list[dict[str, Any]]]:
    """Blocks as sent: a JSON body carries them as a list, a form body as a JSON string."""
    sent = [call.body["blocks"] for call in fake.calls_to("chat.postMessage")]
    return [b if isinstance(b, list) else json.loads(b) for b in sent]


def staff_rows(side: SlackSide) -> list[OutboxMessage]:
    return side.app.db.run_sync(
        lambda s: list(s.scalars(select(OutboxMessage).where(OutboxMessage.channel == "staff")))
    )


async def request_from_slack(side: SlackSide, fake: FakeSlack) -> str:
    status, _ = await side.post(command(fake, f"demande-acces {ORGANISATION_SIRET}"))
    assert status == 200
    [row] = [r for r in staff_rows(side) if r.template.endswith("/sent")]
    return row.idempotency_key.split(":")[0]


async def test_a_bad_signature_or_a_stale_request_is_refused_and_changes_nothing(
    slack_side: SlackSide, fake_slack: FakeSlack, mail: MemoryChannel
) -> None:
    body = command(fake_slack, f"demande-acces {ORGANISATION_SIRET}")
    forged = signed_headers(body, secret="not-the-secret", json_body=False)
    stale = signed_headers(body, timestamp=int(time.time()) - 600, json_body=False)

    assert (await slack_side.post(body, headers=forged))[0] == 401
    assert (await slack_side.post(body, headers=stale))[0] == 401
    assert fake_slack.calls == []
    assert fake_slack.responses == []
    assert mail.sent == []


async def test_members_of_the_linked_channel_act_and_nobody_else(
    slack_side: SlackSide, fake_slack: FakeSlack, mail: MemoryChannel
) -> None:
    await slack_side.post(command(fake_slack, f"demande-acces {ORGANISATION_SIRET}", user=STRANGER))
    await slack_side.post(command(fake_slack, "statut", channel="C0UNLINKED"))
    refusals = [r["text"] for r in fake_slack.responses]
    assert all(r["response_type"] == "ephemeral" for r in fake_slack.responses)
    assert "Seuls les membres de ce canal" in refusals[0]
    assert "relié à aucun certificateur" in refusals[1]
    assert "--channel C0UNLINKED" in refusals[1]
    assert mail.sent == []

    await slack_side.post(command(fake_slack, f"demande-acces {ORGANISATION_SIRET}"))
    assert [m.recipient for m in mail.sent] == [slack_side.seed.contact_email]
    assert fake_slack.responses[-1]["response_type"] == "in_channel"


async def test_a_request_from_slack_is_announced_in_the_channel_with_its_buttons(
    slack_side: SlackSide, fake_slack: FakeSlack
) -> None:
    reference = await request_from_slack(slack_side, fake_slack)

    [notice] = fake_slack.calls_to("chat.postMessage")
    assert notice.body["channel"] == CHANNEL
    assert reference in notice.body["text"]  # the fallback for notifications and old clients
    [section, actions] = posted_blocks(fake_slack)[0]
    assert reference in section["text"]["text"]
    assert [(b["action_id"], b["value"]) for b in actions["elements"]] == [
        ("remind", reference),
        ("cancel", reference),
    ]
    [row] = [r for r in staff_rows(slack_side) if r.template.endswith("/sent")]
    assert row.status == "sent"


async def test_the_cancel_button_pressed_twice_cancels_once_and_replaces_the_buttons(
    slack_side: SlackSide, fake_slack: FakeSlack, mail: MemoryChannel
) -> None:
    reference = await request_from_slack(slack_side, fake_slack)
    before = len(mail.sent)
    press = action_body(
        "cancel", reference, user=MEMBER, channel=CHANNEL, response_url=fake_slack.response_url()
    )

    assert (await slack_side.post(press))[0] == 200
    assert (await slack_side.post(press))[0] == 200

    assert (await slack_side.app.engine.view(reference)).state == "cancelled"
    assert len(mail.sent) == before + 1  # one cancellation mail to the organisation
    first, second = fake_slack.responses[-2:]
    assert first["replace_original"] is True
    assert [b["type"] for b in first["blocks"]] == ["context"]  # no buttons left
    assert "annul" in second["blocks"][-1]["elements"][0]["text"].lower()


async def test_a_stranger_pressing_a_button_changes_nothing(
    slack_side: SlackSide, fake_slack: FakeSlack
) -> None:
    reference = await request_from_slack(slack_side, fake_slack)
    press = action_body(
        "cancel", reference, user=STRANGER, channel=CHANNEL, response_url=fake_slack.response_url()
    )
    await slack_side.post(press)
    assert (await slack_side.app.engine.view(reference)).state == "pending"
    assert fake_slack.responses[-1]["replace_original"] is False
    assert "Seuls les membres" in fake_slack.responses[-1]["text"]


async def test_an_event_retried_by_slack_validates_the_file_once(
    slack_side: SlackSide, fake_slack: FakeSlack
) -> None:
    invalid = (DATA / "plusieurs-erreurs.xml").read_bytes()  # its report goes up as a CSV
    fake_slack.share(SharedFile("F0DEPOT001", "depot.xml", invalid))
    event = event_body(
        "Ev0FILE0001",
        {
            "type": "message",
            "subtype": "file_share",
            "channel": CHANNEL,
            "user": MEMBER,
            "text": "",
            "ts": "1700000100.000100",
            "files": [{"id": "F0DEPOT001", "name": "depot.xml", "filetype": "xml"}],
        },
    )

    assert (await slack_side.post(event, json_body=True))[0] == 200
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert (await slack_side.post(event, json_body=True, headers=retry))[0] == 200

    assert fake_slack.downloads == ["F0DEPOT001"]
    threaded = [c for c in fake_slack.calls_to("chat.postMessage") if c.body.get("thread_ts")]
    assert {c.body["thread_ts"] for c in threaded} == {"1700000100.000100"}
    assert len(fake_slack.calls_to("files.completeUploadExternal")) == 1


async def test_a_rate_limited_notice_goes_out_after_the_wait_slack_asked_for(
    slack_side: SlackSide, fake_slack: FakeSlack
) -> None:
    fake_slack.rate_limit_next("chat.postMessage", retry_after=1)
    await request_from_slack(slack_side, fake_slack)
    assert len(fake_slack.calls_to("chat.postMessage")) == 2
    [row] = [r for r in staff_rows(slack_side) if r.template.endswith("/sent")]
    assert row.status == "sent"


async def test_a_rejected_token_keeps_the_notice_for_later_and_says_why(
    slack_side: SlackSide, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    fake_slack.fail_next("chat.postMessage", "invalid_auth")
    with caplog.at_level(logging.ERROR, logger="cordee.slack"):
        await request_from_slack(slack_side, fake_slack)
    [row] = [r for r in staff_rows(slack_side) if r.template.endswith("/sent")]
    assert row.status == "pending"
    assert "invalid_auth" in (row.last_error or "")
    assert any("invalid_auth" in record.getMessage() for record in caplog.records)
    assert slack_side.app.settings.slack_bot_token is not None
    token = slack_side.app.settings.slack_bot_token.get_secret_value()
    assert all(token not in record.getMessage() for record in caplog.records)


async def test_a_processing_report_shared_in_the_channel_is_imported_for_its_certifier(
    slack_side: SlackSide, fake_slack: FakeSlack, clock: FrozenClock, tmp_path: Path
) -> None:
    id_flux, _ = await deposited_batch(slack_side.app, slack_side.seed, clock, tmp_path / "out")
    fake_slack.share(SharedFile("F0RAPPORT1", "Accusé de traitement.xml", report_xml(id_flux)))
    fake_slack.share(
        SharedFile("F0RAPPORT2", "autre.xml", report_xml("6f1c2c1e-0000-4000-8000-000000000000"))
    )

    for number, file_id in enumerate(("F0RAPPORT1", "F0RAPPORT2")):
        event = event_body(
            f"Ev0REPORT{number}",
            {
                "type": "message",
                "subtype": "file_share",
                "channel": CHANNEL,
                "user": MEMBER,
                "text": "",
                "ts": f"1700000200.00000{number}",
                "files": [{"id": file_id, "name": "rapport.xml", "filetype": "xml"}],
            },
        )
        assert (await slack_side.post(event, json_body=True))[0] == 200

    status = slack_side.app.db.run_sync(
        lambda s: deposit_status(s, slack_side.seed.certifier_id, clock.now())
    )
    assert [batch.state for batch in status.batches] == ["processed_ok"]
    answers = {
        c.body["thread_ts"]: c.body["text"]
        for c in fake_slack.calls_to("chat.postMessage")
        if c.body.get("thread_ts")
    }
    assert "importé" in answers["1700000200.000000"]
    assert "n'a pas été importé" in answers["1700000200.000001"]
    assert fake_slack.calls_to("files.completeUploadExternal") == []  # not checked as a deposit


async def test_socket_mode_takes_slacks_requests_over_a_websocket(
    slack_settings: Settings, clock: FrozenClock, fake_slack: FakeSlack, mail: MemoryChannel
) -> None:
    envelope_payload = {
        "command": "/cordee",
        "text": f"demande-acces {ORGANISATION_SIRET}",
        "user_id": MEMBER,
        "team_id": "T0CORDEE",
        "channel_id": CHANNEL,
        "response_url": fake_slack.response_url(),
        "trigger_id": "1337.42.abcd",
    }
    fake_slack.envelopes.append(
        {
            "envelope_id": "env-0001",
            "type": "slash_commands",
            "payload": envelope_payload,
            "accepts_response_payload": True,
        }
    )
    settings = slack_settings.model_copy(update={"slack_app_token": SecretStr(APP_TOKEN)})
    app = build_app(settings, clock=clock, channels={"mail": mail})
    try:
        seed = seed_partnership(app.db, now=clock.now())
        app.db.run_sync(lambda s: link_channel(s, str(seed.certifier_id), CHANNEL, clock.now()))
        await app.serve(host="127.0.0.1", port=0, scheduler=False)
        assert app.slack is not None
        for _ in range(100):  # the WebSocket round trip, then the work after the ack
            await app.slack.settle()
            if fake_slack.responses:
                break
            await asyncio.sleep(0.05)
        assert [ack["envelope_id"] for ack in fake_slack.socket_acks] == ["env-0001"]
        assert fake_slack.responses[-1]["response_type"] == "in_channel"
        assert [m.recipient for m in mail.sent] == [seed.contact_email]
    finally:
        await app.close()


async def test_inviter_sends_a_trainer_an_invitation_for_the_certifier(
    slack_side: SlackSide, fake_slack: FakeSlack, mail: MemoryChannel
) -> None:
    await slack_side.post(
        command(fake_slack, "inviter <mailto:anne@exemple.fr|anne@exemple.fr> Anne Durand")
    )
    await slack_side.post(command(fake_slack, "inviter anne@exemple.fr"))
    await slack_side.post(command(fake_slack, "inviter"))

    [invitation] = mail.sent
    assert invitation.recipient == "anne@exemple.fr"
    assert "Certif & Co" in invitation.subject
    sent, again, missing = (r["text"] for r in fake_slack.responses[-3:])
    assert "a invité anne@exemple.fr" in sent
    assert "déjà une invitation en cours" in again
    assert "Indiquez l'adresse électronique du formateur" in missing
