"""The batch intake: a backlog applied per chunk, each reply in its savepoint, exactly once."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from aioimaplib.imap_testing_server import MockImapServer

from bot.access_requests import send_request
from bot.app import App
from bot.channels.maildir_inbox import MaildirInbox
from bot.channels.memory import MemoryChannel
from bot.errors import InvalidInput
from bot.mail_intake import Intake, handle_replies, handle_reply
from bot.render import RenderedMessage
from bot.replies import UnreadableMessage
from bot.store.models import MailboxCursor, ProcessedMail
from tests.conftest import T0
from tests.integration.test_imap_inbox import deliver, imap_server, inbox_for
from tests.integration.test_mail_intake import bounce_for, reply, start
from tests.support.builders import OTHER_SIRET, SECOND_ORGANISATION_SIRET, Seed, seed_partnership

__all__ = ["imap_server"]  # the fixture, shared with the IMAP tests

OTHER_CONTACT = "paul.durand@autre-organisme.example"


class Killed(BaseException):
    """Stands for the process being killed: nothing after it runs."""


async def second_request(app: App, mail: MemoryChannel) -> tuple[str, str]:
    """Another certifier's request to another organisation (another contact address)."""
    other = seed_partnership(
        app.db,
        now=T0,
        contact_email=OTHER_CONTACT,
        certifier_siret=OTHER_SIRET,
        organisation_siret=SECOND_ORGANISATION_SIRET,
        codes=("RNCP34567",),
    )
    view = await send_request(
        app.engine, certifier=str(other.certifier_id), partner=str(other.organisation_id)
    )
    return view.public_id, mail.sent[-1].message_id


def answer(message_id: str, body: str, sender: str, number: int) -> bytes:
    return reply(message_id, body, sender=sender, message_id=f"<batch-{number}@example.org>")


async def events(app: App, reference: str, event: str) -> int:
    view = await app.engine.view(reference, history=True)
    return [entry.event for entry in view.history].count(event)


def processed(app: App) -> list[str]:
    return sorted(app.db.run_sync(lambda s: [r[0] for r in s.query(ProcessedMail.message_id)]))


async def test_a_batch_gets_the_outcome_of_each_message_in_order(
    app: App, seed: Seed, mail: MemoryChannel, staff: MemoryChannel
) -> None:
    reference, message_id = await start(app, seed, mail)
    other, other_message_id = await second_request(app, mail)
    yes = answer(message_id, "Oui, j'autorise.", seed.contact_email, 1)
    batch = [
        yes,
        yes,  # delivered twice: handled once
        reply("<unknown@example.org>", "Oui", message_id="<batch-2@example.org>"),
        bounce_for("bounce-dsn-delayed.eml", seed.contact_email),
        reply(message_id, "Oui", headers={"Auto-Submitted": "auto-replied"}),
        b"\x00\xff not a mail",
        answer(other_message_id, "Je ne sais pas.", OTHER_CONTACT, 3),
        answer(other_message_id, "Toujours pas sûr.", OTHER_CONTACT, 4),
    ]
    before = len(mail.sent)

    outcomes = await handle_replies(app.engine, batch, chunk_size=3)

    assert outcomes == [
        Intake.APPLIED,
        Intake.DUPLICATE,
        Intake.UNMATCHED,
        Intake.BOUNCE,
        Intake.AUTO_REPLY,
        Intake.REJECTED,
        Intake.UNCLEAR,
        Intake.UNCLEAR_ALREADY_HELPED,
    ]
    assert (await app.engine.view(reference)).state == "authorised"
    assert await events(app, reference, "authorise") == 1
    assert (await app.engine.view(other)).state == "pending"
    # The confirmation to the contact and one help mail to the other contact, nothing more.
    assert [m.recipient for m in mail.sent[before:]] == [seed.contact_email, OTHER_CONTACT]
    assert "rien n'a été enregistré" in mail.sent[-1].text
    # Only messages that changed something are recorded; the rest may safely come back.
    assert processed(app) == [
        "<batch-1@example.org>",
        "<batch-3@example.org>",
        "<batch-4@example.org>",
    ]
    assert await handle_replies(app.engine, batch[:1]) == [Intake.DUPLICATE]


async def test_a_reply_failing_in_its_savepoint_leaves_the_others_applied(
    app: App, seed: Seed, mail: MemoryChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, message_id = await start(app, seed, mail)
    other, other_message_id = await second_request(app, mail)
    renderer = app.engine.renderer
    render = renderer.message

    def failing_for_the_first(
        template: str, language: str, context: Mapping[str, Any]
    ) -> RenderedMessage:
        if context["reference"] == reference:
            raise InvalidInput("modèle illisible")
        return render(template, language, context)

    monkeypatch.setattr(renderer, "message", failing_for_the_first)
    first = answer(message_id, "Oui, j'autorise.", seed.contact_email, 1)
    second = answer(other_message_id, "Non merci.", OTHER_CONTACT, 2)

    assert await handle_replies(app.engine, [first, second]) == [Intake.REJECTED, Intake.APPLIED]
    # The failed reply's state change, audit entry and record were all rolled back.
    assert (await app.engine.view(reference)).state == "pending"
    assert await events(app, reference, "authorise") == 0
    assert (await app.engine.view(other)).state == "refused"
    assert processed(app) == ["<batch-2@example.org>"]
    # The one-message entry point raises what stopped it, as before.
    with pytest.raises(InvalidInput, match="modèle illisible"):
        await handle_reply(app.engine, first)

    monkeypatch.setattr(renderer, "message", render)
    assert await handle_replies(app.engine, [first, second]) == [Intake.APPLIED, Intake.DUPLICATE]
    assert (await app.engine.view(reference)).state == "authorised"


async def test_an_unreadable_message_raises_from_the_one_message_entry_point(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    await start(app, seed, mail)
    with pytest.raises(UnreadableMessage):
        await handle_reply(app.engine, b"\x00\xff not a mail")


async def test_a_crash_after_a_chunk_commits_neither_loses_nor_repeats_a_reply(
    app: App, seed: Seed, mail: MemoryChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, message_id = await start(app, seed, mail)
    other, other_message_id = await second_request(app, mail)
    batch = [
        answer(message_id, "Oui, j'autorise.", seed.contact_email, 1),
        answer(other_message_id, "D'accord.", OTHER_CONTACT, 2),
    ]
    before = len(mail.sent)

    async def killed(now: object = None) -> int:
        raise Killed  # the first chunk is committed; its mails are not sent yet

    monkeypatch.setattr(app.engine, "deliver", killed)
    with pytest.raises(Killed):
        await handle_replies(app.engine, batch, chunk_size=1)
    assert len(mail.sent) == before
    assert processed(app) == ["<batch-1@example.org>"]
    monkeypatch.undo()

    # The restarted inbox hands the same backlog over again.
    assert await handle_replies(app.engine, batch, chunk_size=1) == [
        Intake.DUPLICATE,
        Intake.APPLIED,
    ]
    assert await events(app, reference, "authorise") == 1
    assert await events(app, other, "authorise") == 1
    confirmations = [m.recipient for m in mail.sent[before:]]
    assert sorted(confirmations) == sorted([seed.contact_email, OTHER_CONTACT])


async def test_a_crash_inside_a_chunk_applies_none_of_it(
    app: App, seed: Seed, mail: MemoryChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, message_id = await start(app, seed, mail)
    other, other_message_id = await second_request(app, mail)
    renderer = app.engine.renderer
    render = renderer.message

    def killed_on_the_second(
        template: str, language: str, context: Mapping[str, Any]
    ) -> RenderedMessage:
        if context["reference"] == other:
            raise Killed
        return render(template, language, context)

    monkeypatch.setattr(renderer, "message", killed_on_the_second)
    batch = [
        answer(message_id, "Oui, j'autorise.", seed.contact_email, 1),
        answer(other_message_id, "D'accord.", OTHER_CONTACT, 2),
    ]
    with pytest.raises(Killed):
        await handle_replies(app.engine, batch)
    # The first reply's effects were in the same, uncommitted, transaction: gone with it.
    assert (await app.engine.view(reference)).state == "pending"
    assert processed(app) == []
    monkeypatch.undo()

    assert await handle_replies(app.engine, batch) == [Intake.APPLIED, Intake.APPLIED]
    assert await events(app, reference, "authorise") == 1
    assert await events(app, other, "authorise") == 1


async def test_the_maildir_inbox_hands_its_backlog_to_the_batch_intake(
    app: App, seed: Seed, mail: MemoryChannel, tmp_path: Path
) -> None:
    reference, message_id = await start(app, seed, mail)
    inbox = MaildirInbox(tmp_path / "inbox")
    await inbox.poll(app.mail_handler)
    yes = reply(message_id, "D'accord.")
    (tmp_path / "inbox" / "new" / "1.reply.eml").write_bytes(yes)
    (tmp_path / "inbox" / "new" / "2.junk.eml").write_bytes(b"\x00\xff not a mail")
    (tmp_path / "inbox" / "new" / "3.again.eml").write_bytes(yes)

    assert await inbox.poll(app.mail_handler) == 3
    assert await inbox.poll(app.mail_handler) == 0
    assert (await app.engine.view(reference)).state == "authorised"
    assert await events(app, reference, "authorise") == 1
    filed = sorted(p.name for p in (tmp_path / "inbox" / "cur").iterdir())
    assert filed == ["1.reply.eml:2,S", "2.junk.eml:2,F", "3.again.eml:2,S"]


async def test_the_imap_inbox_hands_its_backlog_to_the_batch_intake(
    app: App, seed: Seed, mail: MemoryChannel, imap_server: tuple[MockImapServer, int]
) -> None:
    server, port = imap_server
    reference, message_id = await start(app, seed, mail)
    other, other_message_id = await second_request(app, mail)
    yes = answer(message_id, "Oui, j'autorise.", seed.contact_email, 1)
    deliver(server, yes)
    deliver(server, reply("<unknown@example.org>", "Oui", message_id="<batch-2@example.org>"))
    deliver(server, answer(other_message_id, "Non merci.", OTHER_CONTACT, 3))
    deliver(server, yes)  # the same reply again, in the same backlog

    assert await inbox_for(app, port).poll(app.mail_handler) == 4
    assert (await app.engine.view(reference)).state == "authorised"
    assert (await app.engine.view(other)).state == "refused"
    assert await events(app, reference, "authorise") == 1
    # Every Message-ID is kept with the cursor, the unmatched one included.
    assert processed(app) == [
        "<batch-1@example.org>",
        "<batch-2@example.org>",
        "<batch-3@example.org>",
    ]
    assert app.db.run_sync(lambda s: s.query(MailboxCursor.last_uid).one())[0] == 4
    sent = len(mail.sent)
    assert await inbox_for(app, port).poll(app.mail_handler) == 0
    assert len(mail.sent) == sent


async def test_two_answers_to_one_request_in_a_chunk_decide_once_in_order(
    app: App, seed: Seed, mail: MemoryChannel, staff: MemoryChannel
) -> None:
    reference, message_id = await start(app, seed, mail)
    before, staff_before = len(mail.sent), len(staff.sent)
    batch = [
        answer(message_id, "Oui, j'autorise.", seed.contact_email, 1),
        answer(message_id, "Non merci.", seed.contact_email, 2),
    ]

    assert await handle_replies(app.engine, batch) == [Intake.APPLIED, Intake.ALREADY_DECIDED]
    assert (await app.engine.view(reference)).state == "authorised"
    assert await events(app, reference, "refuse") == 0
    assert [m.recipient for m in mail.sent[before:]] == [seed.contact_email]
    assert "autoris" in mail.sent[-1].subject.lower()
    assert len(staff.sent) == staff_before + 1
    # The refusal changed nothing: it is not recorded, and gets the same answer if it returns.
    assert processed(app) == ["<batch-1@example.org>"]


async def test_a_help_mail_between_answers_keeps_the_order_of_the_messages(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    reference, message_id = await start(app, seed, mail)
    other, other_message_id = await second_request(app, mail)
    before = len(mail.sent)
    batch = [
        answer(other_message_id, "Je ne sais pas.", OTHER_CONTACT, 1),
        answer(message_id, "Oui, j'autorise.", seed.contact_email, 2),
        # Unclear, but after the answer above: the request is already decided, no help mail.
        answer(message_id, "Pouvez-vous préciser ?", seed.contact_email, 3),
        answer(other_message_id, "D'accord.", OTHER_CONTACT, 4),
    ]

    assert await handle_replies(app.engine, batch) == [
        Intake.UNCLEAR,
        Intake.APPLIED,
        Intake.ALREADY_DECIDED,
        Intake.APPLIED,
    ]
    assert (await app.engine.view(reference)).state == "authorised"
    assert (await app.engine.view(other)).state == "authorised"
    # The help mail, then the two confirmations, as if the replies had come one at a time.
    sent = mail.sent[before:]
    assert [m.recipient for m in sent] == [OTHER_CONTACT, seed.contact_email, OTHER_CONTACT]
    assert "rien n'a été enregistré" in sent[0].text
