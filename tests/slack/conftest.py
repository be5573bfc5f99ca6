"""Slack test fixtures: the fake Web API, and an app talking to it, served on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from bot.app import App, build_app
from bot.channels.memory import MemoryChannel
from bot.clock import FrozenClock
from bot.config import Settings, load_settings
from bot.slack.tenancy import link_channel
from tests.support.builders import Seed, seed_partnership
from tests.support.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, signed_headers

CHANNEL = "C0CERTIFCO"
MEMBER = "U0CLAIRE01"
STRANGER = "U0INTRUDER"


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack(members={CHANNEL: [MEMBER, "U0CORDEEBOT"]})
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def slack_settings(tmp_path: Path, migrated_url: str, fake_slack: FakeSlack) -> Settings:
    return load_settings(
        {
            "CORDEE_DATA_DIR": str(tmp_path / "var"),
            "CORDEE_DATABASE_URL": migrated_url,
            "CORDEE_SECRET_KEY": "test-secret-key-" + "x" * 32,
            "CORDEE_PUBLIC_URL": "http://127.0.0.1:8080",
            "CORDEE_SLACK_BOT_TOKEN": BOT_TOKEN,
            "CORDEE_SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "CORDEE_SLACK_API_URL": fake_slack.api_url,
        },
        config_file=tmp_path / "absent.toml",
    )


@dataclass
class SlackSide:
    """The served app, its base URL, and a way to post to /slack/events as Slack does."""

    app: App
    url: str
    seed: Seed

    async def post(
        self, body: str, *, json_body: bool = False, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        sent = signed_headers(body, json_body=json_body) | (headers or {})
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/slack/events", data=body.encode(), headers=sent) as answer,
        ):
            status, text = answer.status, await answer.text()
        assert self.app.slack is not None
        await self.app.slack.settle()  # the work done after the acknowledgement
        await self.app.engine.deliver()
        return status, text


@pytest.fixture
async def slack_side(
    slack_settings: Settings, clock: FrozenClock, mail: MemoryChannel
) -> AsyncIterator[SlackSide]:
    # Staff notices go through the real Slack channel built from the settings.
    app = build_app(slack_settings, clock=clock, channels={"mail": mail})
    try:
        seed = seed_partnership(app.db, now=clock.now())
        app.db.run_sync(lambda s: link_channel(s, str(seed.certifier_id), CHANNEL, clock.now()))
        url = await app.serve(host="127.0.0.1", port=0, scheduler=False)
        yield SlackSide(app, url, seed)
    finally:
        await app.close()
