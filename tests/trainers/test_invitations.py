"""Trainer invitations through the engine and a real database: invite, remind, accept, expire."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.app import App
from bot.channels.memory import MemoryChannel
from bot.clock import FrozenClock
from bot.errors import InvalidInput, TokenInvalid
from bot.store.models import Trainer, TrainerAccount
from bot.trainers import (
    INVITATION_PATH,
    InvitationUnusable,
    Inviter,
    accept,
    find_inviter,
    invite,
    list_trainers,
    read_invitation,
    resend,
    revoke,
)
from tests.support.builders import ORGANISATION_SIRET, OTHER_SIRET, Seed

ACTOR = "staff:cli"


def token_in(mail: MemoryChannel) -> str:
    text = mail.sent[-1].text
    start = text.index(INVITATION_PATH) + len(INVITATION_PATH)
    return text[start:].split()[0]


def inviter_of(app: App, org: str = ORGANISATION_SIRET) -> Inviter:
    return app.db.run_sync(lambda s: find_inviter(s, org=org))


async def test_an_invited_trainer_accepts_once_and_gets_one_account(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    inviter = inviter_of(app)
    result = await invite(
        app.engine,
        inviter,
        email="Anne.Durand@Example.org",
        first_name="Anne",
        last_name="Durand",
        actor=ACTOR,
    )
    assert result.outcome == "invited"
    [invitation] = mail.sent
    assert invitation.recipient == "anne.durand@example.org"
    assert "Formations <Sud>" in invitation.subject
    token = token_in(mail)
    seen = app.db.run_sync(lambda s: read_invitation(app.engine, s, token))
    assert (seen.first_name, seen.inviter_name) == ("Anne", "Formations <Sud>")

    account_id = await accept(app.engine, token)

    with pytest.raises(InvitationUnusable) as used:
        await accept(app.engine, token)
    assert used.value.kind == "used"
    rows = app.db.run_sync(lambda s: list_trainers(s, inviter))
    assert [(r.email, r.state, r.has_account) for r in rows] == [
        ("anne.durand@example.org", "accepted", True)
    ]
    again = await invite(app.engine, inviter, email="anne.durand@example.org", actor=ACTOR)
    assert again.outcome == "already_accepted"
    accounts = app.db.run_sync(lambda s: list(s.scalars(select(TrainerAccount.id))))
    assert accounts == [account_id]


async def test_a_re_sent_link_replaces_the_old_one_and_a_tampered_one_is_refused(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    inviter = inviter_of(app)
    await invite(app.engine, inviter, email="paul@example.org", first_name="Paul", actor=ACTOR)
    first = token_in(mail)
    await resend(app.engine, inviter, "paul@example.org", actor=ACTOR)
    second = token_in(mail)
    assert first != second
    with pytest.raises(InvitationUnusable) as replaced:
        app.db.run_sync(lambda s: read_invitation(app.engine, s, first))
    assert replaced.value.kind == "replaced"
    with pytest.raises(TokenInvalid):
        app.db.run_sync(lambda s: read_invitation(app.engine, s, second[:-2] + "xx"))
    await accept(app.engine, second)


async def test_reminders_after_3_and_7_days_then_expiry_told_to_the_organisation(
    app: App, seed: Seed, mail: MemoryChannel, clock: FrozenClock
) -> None:
    inviter = inviter_of(app)
    await invite(app.engine, inviter, email="lea@example.org", first_name="Léa", actor=ACTOR)
    token = token_in(mail)
    for days in (3, 7):
        await app.engine.tick(clock.now() + timedelta(days=days))
    subjects = [m.subject for m in mail.sent]
    assert sum("Rappel" in s for s in subjects) == 2
    await app.engine.tick(clock.now() + timedelta(days=14))
    assert mail.sent[-1].recipient == seed.contact_email
    assert "expirée" in mail.sent[-1].subject
    with pytest.raises(InvitationUnusable) as expired:
        app.db.run_sync(lambda s: read_invitation(app.engine, s, token))
    assert expired.value.kind == "expired"


async def test_one_person_invited_by_two_organisations_has_one_account(
    app: App, seed: Seed, mail: MemoryChannel, clock: FrozenClock
) -> None:
    from tests.support.builders import seed_partnership

    other = seed_partnership(
        app.db,
        now=clock.now(),
        certifier_siret=OTHER_SIRET,
        organisation_siret="35600000000048",
        contact_email="contact@autre.example",
    )
    first, second = inviter_of(app), inviter_of(app, str(other.organisation_id))
    await invite(app.engine, first, email="marc@example.org", actor=ACTOR)
    await accept(app.engine, token_in(mail))
    await invite(app.engine, second, email="MARC@example.org", actor=ACTOR)
    await accept(app.engine, token_in(mail))
    trainers = app.db.run_sync(lambda s: list(s.scalars(select(Trainer.account_id))))
    assert len(trainers) == 2
    assert len(set(trainers)) == 1
    await revoke(app.engine, second, "marc@example.org", actor=ACTOR)
    assert [r.state for r in app.db.run_sync(lambda s: list_trainers(s, first))] == ["accepted"]


async def test_no_email_means_a_clear_error_and_nothing_sent(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    inviter = inviter_of(app)
    with pytest.raises(InvalidInput, match="manquante"):
        await invite(app.engine, inviter, email="  ", actor=ACTOR)
    with pytest.raises(InvalidInput):
        await invite(app.engine, inviter, email="pas-une-adresse", actor=ACTOR)
    assert mail.sent == []
