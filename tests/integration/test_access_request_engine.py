"""Access requests through the engine and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from bot.access_requests import cancel_request, list_requests, send_request
from bot.app import App
from bot.channels.memory import MemoryChannel
from bot.clock import FrozenClock
from bot.engine import Firing
from bot.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from bot.store.models import (
    OutboxMessage,
    PartnershipCertification,
    TransitionLog,
    WorkflowInstance,
)
from tests.support.builders import OTHER_SIRET, SECOND_ORGANISATION_SIRET, Seed, seed_partnership

pytestmark = pytest.mark.asyncio


async def send(app: App, seed: Seed, *codes: str) -> str:
    view = await send_request(
        app.engine,
        certifier=str(seed.certifier_id),
        partner=str(seed.organisation_id),
        certifications=codes,
    )
    return view.public_id


def count(app: App, model: type) -> int:
    return app.db.run_sync(lambda s: s.scalar(select(func.count()).select_from(model)) or 0)


def sharing(app: App, seed: Seed) -> dict[int, bool]:
    return app.db.run_sync(
        lambda s: {
            row.certification_id: row.sharing_enabled
            for row in s.scalars(
                select(PartnershipCertification).where(
                    PartnershipCertification.partnership_id == seed.partnership_id
                )
            )
        }
    )


async def test_sending_emails_the_contact_and_notifies_the_staff(
    app: App, seed: Seed, mail: MemoryChannel, staff: MemoryChannel
) -> None:
    reference = await send(app, seed)
    assert reference.startswith("DA-")
    [request] = mail.sent
    assert request.recipient == seed.contact_email
    assert "Certif & Co" in request.subject or "Certif & Co" in request.text
    assert "/lien/" in request.text
    assert "RNCP34567" in request.text
    assert "RS5875" in request.text
    [notice] = staff.sent
    assert notice.recipient == str(seed.certifier_id)
    assert reference in notice.text
    assert (
        app.db.run_sync(
            lambda s: s.scalar(select(func.count()).where(OutboxMessage.status == "sent"))
        )
        == 2
    )


async def test_the_email_carries_no_personal_data_in_links(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    await send(app, seed)
    links = [word for word in mail.sent[0].text.split() if "/lien/" in word]
    assert links
    for link in links:
        assert "claire" not in link.lower()
        assert "Formations" not in link


async def test_a_second_pending_request_is_refused_and_sends_nothing(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    reference = await send(app, seed)
    with pytest.raises(Conflict, match=reference):
        await send(app, seed)
    assert len(mail.sent) == 1
    assert count(app, WorkflowInstance) == 1


async def test_bad_references_write_nothing(
    app: App, seed: Seed, clock: FrozenClock, mail: MemoryChannel
) -> None:
    with pytest.raises(NotFound, match="Certificateur « 999 » introuvable"):
        await send_request(app.engine, certifier="999", partner=str(seed.organisation_id))
    with pytest.raises(NotFound, match="Organisme de formation"):
        await send_request(app.engine, certifier=str(seed.certifier_id), partner=OTHER_SIRET)
    with pytest.raises(InvalidInput, match="ne couvre pas : RNCP11111"):
        await send(app, seed, "RNCP11111")
    assert count(app, WorkflowInstance) == 0
    assert count(app, OutboxMessage) == 0
    assert mail.sent == []


async def test_an_organisation_without_contact_cannot_be_asked(
    app: App, clock: FrozenClock
) -> None:
    lonely = seed_partnership(app.db, now=clock.now(), with_contact=False)
    with pytest.raises(InvalidInput, match="aucun contact joignable"):
        await send(app, lonely)
    assert count(app, WorkflowInstance) == 0
    assert count(app, TransitionLog) == 0


async def test_reminders_after_3_and_7_days_then_expiry_after_30(
    app: App, seed: Seed, clock: FrozenClock, mail: MemoryChannel, staff: MemoryChannel
) -> None:
    reference = await send(app, seed)
    assert await app.engine.tick(clock.advance(timedelta(days=2, hours=23))) == 0
    assert len(mail.sent) == 1
    assert await app.engine.tick(clock.advance(timedelta(hours=1))) == 1
    assert len(mail.sent) == 2
    assert await app.engine.tick(clock.advance(timedelta(days=4))) == 1
    assert len(mail.sent) == 3
    assert await app.engine.tick(clock.advance(timedelta(days=22))) == 0
    assert await app.engine.tick(clock.advance(timedelta(days=1))) == 1
    view = await app.engine.view(reference, history=True)
    assert view.state == "expired"
    assert view.due_at is None
    assert [entry.event for entry in view.history] == ["start", "remind", "remind", "expire"]
    assert [m.subject for m in mail.sent][1] == [m.subject for m in mail.sent][2]
    assert len(staff.sent) == 4
    # A new request is possible once the previous one has expired.
    await send(app, seed)


async def test_after_a_long_stop_only_the_latest_due_timer_fires(
    app: App, seed: Seed, clock: FrozenClock, mail: MemoryChannel
) -> None:
    reference = await send(app, seed)
    assert await app.engine.tick(clock.advance(timedelta(days=45))) == 1
    view = await app.engine.view(reference, history=True)
    assert view.state == "expired"
    assert [entry.event for entry in view.history] == ["start", "expire"]
    assert len(mail.sent) == 2


async def test_authorising_enables_sharing_of_the_covered_certifications_only(
    app: App, seed: Seed, mail: MemoryChannel, staff: MemoryChannel
) -> None:
    reference = await send(app, seed, "RNCP34567")
    pending = await app.engine.view(reference)
    assert pending.deadline == pending.created_at + timedelta(days=30)
    outcome = await app.engine.fire(reference, "authorise", actor="partner_contact:web")
    assert outcome.previous_state == "pending"
    assert outcome.instance.state == "authorised"
    assert outcome.instance.deadline is None
    assert sorted(sharing(app, seed).values()) == [False, True]
    assert outcome.instance.due_at is None
    assert "/lien/" in mail.sent[-1].text  # the confirmation carries the « gérer le partage » link
    await app.engine.fire(reference, "revoke", actor="partner_contact:web")
    assert set(sharing(app, seed).values()) == {False}
    assert len(staff.sent) == 3


async def test_firing_many_at_once_is_firing_them_one_by_one(
    app: App, seed: Seed, clock: FrozenClock, mail: MemoryChannel, staff: MemoryChannel
) -> None:
    first = await send(app, seed, "RNCP34567")
    other = seed_partnership(
        app.db,
        now=clock.now(),
        contact_email="paul.durand@autre-organisme.example",
        certifier_siret=OTHER_SIRET,
        organisation_siret=SECOND_ORGANISATION_SIRET,
        codes=("RS1234",),
    )
    view = await send_request(
        app.engine, certifier=str(other.certifier_id), partner=str(other.organisation_id)
    )
    second = view.public_id
    before_mail, before_staff = len(mail.sent), len(staff.sent)
    firings = [
        Firing(first, "authorise", "partner_contact:mail"),
        Firing(first, "refuse", "partner_contact:mail"),  # too late: already authorised
        Firing(second, "refuse", "partner_contact:mail"),
    ]

    results = app.db.run_sync(lambda s: app.engine.fire_many_in(s, firings))
    await app.engine.deliver()

    authorised, too_late, refused = results
    assert not isinstance(authorised, Exception)
    assert not isinstance(refused, Exception)
    assert (authorised.previous_state, authorised.instance.state) == ("pending", "authorised")
    assert isinstance(too_late, InvalidTransition)
    assert (refused.previous_state, refused.instance.state) == ("pending", "refused")
    assert sorted(sharing(app, seed).values()) == [False, True]
    history = (await app.engine.view(first, history=True)).history
    assert [(e.event, e.actor) for e in history] == [
        ("start", "cli"),
        ("authorise", "partner_contact:mail"),
    ]
    assert [m.recipient for m in mail.sent[before_mail:]] == [
        seed.contact_email,
        "paul.durand@autre-organisme.example",
    ]
    # Each staff notice is about its own request.
    notices = staff.sent[before_staff:]
    assert [first in notices[0].text, second in notices[1].text] == [True, True]
    with pytest.raises(NotFound):
        app.db.run_sync(
            lambda s: app.engine.fire_many_in(s, [Firing("DA-XXXXXXXXXX", "refuse", "t")])
        )


async def test_refusal_keeps_sharing_off_and_decisions_are_final(app: App, seed: Seed) -> None:
    reference = await send(app, seed)
    await app.engine.fire(reference, "refuse", actor="partner_contact:web")
    assert set(sharing(app, seed).values()) == {False}
    with pytest.raises(InvalidTransition):
        await app.engine.fire(reference, "authorise", actor="partner_contact:web")
    assert (await app.engine.view(reference)).state == "refused"


async def test_the_certifier_can_cancel_a_pending_request_but_not_a_decided_one(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    reference = await send(app, seed)
    await cancel_request(app.engine, reference)
    assert (await app.engine.view(reference)).state == "cancelled"
    assert len(mail.sent) == 2
    again = await send(app, seed)
    await app.engine.fire(again, "authorise", actor="partner_contact:web")
    with pytest.raises(Conflict, match="autorisée : elle ne peut plus être annulée"):
        await cancel_request(app.engine, again)


async def test_an_authorised_request_blocks_a_new_one(app: App, seed: Seed) -> None:
    reference = await send(app, seed)
    await app.engine.fire(reference, "authorise", actor="partner_contact:web")
    with pytest.raises(Conflict, match="déjà autorisée"):
        await send(app, seed)


async def test_another_certifier_cannot_reach_the_request(
    app: App, seed: Seed, clock: FrozenClock
) -> None:
    reference = await send(app, seed)
    other = seed_partnership(
        app.db,
        now=clock.now(),
        certifier_siret=OTHER_SIRET,
        organisation_siret=SECOND_ORGANISATION_SIRET,
        codes=("RS1234",),
    )
    with pytest.raises(NotFound):
        await app.engine.view(reference, certifier_id=other.certifier_id)
    with pytest.raises(NotFound):
        await cancel_request(app.engine, reference, certifier_id=other.certifier_id)
    assert [
        row.reference
        for row in app.db.run_sync(
            lambda s: list_requests(s, certifier_ref=str(other.certifier_id))
        )
    ] == []


async def test_the_audit_trail_cannot_be_rewritten(app: App, seed: Seed) -> None:
    await send(app, seed)
    with pytest.raises(DBAPIError, match="append-only"):
        app.db.run_sync(lambda s: s.execute(text("UPDATE transition_log SET actor = 'forged'")))
    with pytest.raises(DBAPIError, match="append-only"):
        app.db.run_sync(lambda s: s.execute(text("DELETE FROM transition_log")))
    assert count(app, TransitionLog) == 1


async def test_a_channel_outage_delays_delivery_without_losing_the_message(
    app: App, seed: Seed, clock: FrozenClock, mail: MemoryChannel
) -> None:
    mail.failures_to_inject = 1
    await send(app, seed)
    assert mail.sent == []
    pending = app.db.run_sync(
        lambda s: s.scalars(select(OutboxMessage).where(OutboxMessage.channel == "mail")).one()
    )
    assert pending.status == "pending"
    assert pending.attempts == 1
    assert await app.engine.deliver(clock.advance(timedelta(seconds=10))) == 0
    assert await app.engine.deliver(clock.advance(timedelta(minutes=2))) == 1
    assert len(mail.sent) == 1
    assert await app.engine.deliver(clock.advance(timedelta(hours=1))) == 0
    assert len(mail.sent) == 1


async def test_state_log_and_outbox_commit_together_or_not_at_all(
    app: App, seed: Seed, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = await send(app, seed)

    def broken_render(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("template exploded")

    monkeypatch.setattr(app.renderer, "message", broken_render)
    with pytest.raises(RuntimeError):
        await app.engine.fire(reference, "authorise", actor="partner_contact:web")
    view = await app.engine.view(reference, history=True)
    assert view.state == "pending"
    assert len(view.history) == 1
    assert set(sharing(app, seed).values()) == {False}
    assert count(app, OutboxMessage) == 2
