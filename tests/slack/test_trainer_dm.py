"""A trainer invited through Slack: looked up by address, invited by direct message."""

from __future__ import annotations

import pytest

from bot.channels.memory import MemoryChannel
from bot.errors import InvalidInput
from bot.slack.tenancy import member_by_email
from bot.trainers import INVITATION_PATH, accept, find_inviter, invite, list_trainers
from tests.slack.conftest import SlackSide
from tests.support.fake_slack import FakeSlack


async def test_a_trainer_found_in_the_workspace_is_invited_by_direct_message(
    slack_side: SlackSide, fake_slack: FakeSlack, mail: MemoryChannel
) -> None:
    fake_slack.users["U0ANNE0001"] = {"id": "U0ANNE0001", "profile": {"email": "anne@exemple.fr"}}
    app = slack_side.app
    assert app.slack is not None
    inviter = app.db.run_sync(
        lambda s: find_inviter(s, certifier=str(slack_side.seed.certifier_id))
    )

    member = await member_by_email(app.slack.client, "anne@exemple.fr")
    await invite(app.engine, inviter, email="anne@exemple.fr", actor="test", slack_user=member)

    assert mail.sent == []  # no email: the invitation went to Slack
    [dm] = [c for c in fake_slack.calls_to("chat.postMessage") if c.body["channel"] == "U0ANNE0001"]
    text = dm.body["text"]
    assert "Certif &amp; Co" in text
    token = text[text.index(INVITATION_PATH) + len(INVITATION_PATH) :].split()[0]
    await accept(app.engine, token)
    rows = app.db.run_sync(lambda s: list_trainers(s, inviter))
    assert [(r.email, r.state) for r in rows] == [("anne@exemple.fr", "accepted")]


async def test_an_address_unknown_to_the_workspace_is_refused_before_anything_is_sent(
    slack_side: SlackSide, fake_slack: FakeSlack
) -> None:
    app = slack_side.app
    assert app.slack is not None
    with pytest.raises(InvalidInput, match="aucun membre de l'espace Slack"):
        await member_by_email(app.slack.client, "personne@exemple.fr")
    assert fake_slack.calls_to("chat.postMessage") == []
