"""Replies by email: matched to their request, counted only from the invited address."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest

from bot.access_requests import send_request
from bot.app import App
from bot.channels.maildir_inbox import MaildirInbox
from bot.channels.memory import MemoryChannel
from bot.errors import InvalidInput
from bot.mail_intake import Intake, handle_reply
from tests.conftest import T0
from tests.support.builders import Seed


def reply(
    answered: str | None,
    body: str,
    *,
    sender: str = "Claire Martin <claire.martin@formations-sud.example>",
    to: str = "ne-pas-repondre@cordee.localhost",
    subject: str = "RE: Certif & Co vous demande l'accès à vos dossiers de formation",
    headers: dict[str, str] | None = None,
    message_id: str | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(T0)
    message["Message-ID"] = message_id or make_msgid(domain="formations-sud.example")
    if answered is not None:
        message["In-Reply-To"] = answered
        message["References"] = answered
    for name, value in (headers or {}).items():
        message[name] = value
    quoted = "\n".join(f"> {line}" for line in ["Pour autoriser l'accès :", "https://x/lien/abc"])
    message.set_content(f"{body}\n\nLe 23 nov. 2026 à 10:00, Cordée a écrit :\n{quoted}\n")
    return bytes(message)


async def start(app: App, seed: Seed, mail: MemoryChannel) -> tuple[str, str]:
    view = await send_request(
        app.engine, certifier=str(seed.certifier_id), partner=str(seed.organisation_id)
    )
    return view.public_id, mail.sent[-1].message_id


async def test_a_clear_yes_from_the_contact_authorises(
    app: App, seed: Seed, mail: MemoryChannel, staff: MemoryChannel
) -> None:
    reference, message_id = await start(app, seed, mail)
    assert await handle_reply(app.engine, reply(message_id, "Oui, j'autorise.")) == Intake.APPLIED
    view = await app.engine.view(reference, history=True)
    assert view.state == "authorised"
    assert view.history[-1].actor == "partner_contact:mail"
    assert "/lien/" in mail.sent[-1].text  # the confirmation with its manage link
    assert len(staff.sent) == 2


async def test_a_clear_no_refuses(app: App, seed: Seed, mail: MemoryChannel) -> None:
    reference, message_id = await start(app, seed, mail)
    assert await handle_reply(app.engine, reply(message_id, "Non merci.")) == Intake.APPLIED
    assert (await app.engine.view(reference)).state == "refused"


async def test_a_reply_from_a_colleague_decides_nothing_but_gets_the_links(
    app: App, seed: Seed, mail: MemoryChannel, staff: MemoryChannel
) -> None:
    reference, message_id = await start(app, seed, mail)
    forwarded = reply(message_id, "Oui", sender="Paul Durand <paul.durand@formations-sud.example>")
    assert await handle_reply(app.engine, forwarded) == Intake.WRONG_SENDER
    assert (await app.engine.view(reference)).state == "pending"
    to_colleague = mail.sent[-1]
    assert to_colleague.recipient == "paul.durand@formations-sud.example"
    assert "n'a pas été pris en compte" in to_colleague.text
    assert to_colleague.text.count("/lien/") == 2
    assert to_colleague.reply_to is None  # the reply address belongs to the invited contact
    told = staff.sent[-1]
    assert "paul.durand@formations-sud.example" in told.text
    assert reference in told.subject


async def test_a_reply_from_our_own_domain_gets_no_answer(
    app: App, seed: Seed, mail: MemoryChannel, staff: MemoryChannel
) -> None:
    reference, message_id = await start(app, seed, mail)
    looped = reply(message_id, "Oui", sender="ne-pas-repondre@cordee.localhost")
    assert await handle_reply(app.engine, looped) == Intake.WRONG_SENDER
    assert len(mail.sent) == 1
    assert len(staff.sent) == 1
    assert (await app.engine.view(reference)).state == "pending"


async def test_the_request_mail_carries_a_reply_address_bound_to_the_contact(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    reference, _ = await start(app, seed, mail)
    reply_to = mail.sent[-1].reply_to
    assert reply_to is not None
    assert reply_to.startswith(f"reply+{reference.lower()}-")
    assert reply_to.endswith("@cordee.localhost")
    assert len(reply_to.partition("@")[0]) <= 64  # RFC 5321 limit on a local part
    assert f"(réf. {reference})" in mail.sent[-1].subject


async def test_a_reply_matched_by_its_reply_address_alone_is_applied(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    reference, _ = await start(app, seed, mail)
    reply_to = mail.sent[-1].reply_to
    assert reply_to is not None
    # Some clients drop In-Reply-To and rewrite the subject; the reply address is enough.
    bare = reply(None, "Oui, j'autorise.", to=reply_to.upper(), subject="Accès")
    assert await handle_reply(app.engine, bare) == Intake.APPLIED
    assert (await app.engine.view(reference)).state == "authorised"


async def test_an_altered_reply_address_decides_nothing(
    app: App, seed: Seed, mail: MemoryChannel, staff: MemoryChannel
) -> None:
    reference, message_id = await start(app, seed, mail)
    reply_to = mail.sent[-1].reply_to
    assert reply_to is not None
    local, _, domain = reply_to.partition("@")
    altered = local[:-1] + ("a" if local[-1] != "a" else "b") + "@" + domain
    # Even with a matching In-Reply-To: a tampered address means someone is trying something.
    assert await handle_reply(app.engine, reply(message_id, "Oui", to=altered)) == (
        Intake.ALTERED_ADDRESS
    )
    assert (await app.engine.view(reference)).state == "pending"
    assert len(mail.sent) == 1
    assert len(staff.sent) == 1


async def test_a_reply_address_of_another_request_does_not_verify(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    reference, _ = await start(app, seed, mail)
    reply_to = mail.sent[-1].reply_to
    assert reply_to is not None
    signer = app.engine.reply_addresses
    assert signer is not None
    # A valid MAC for the right request, but computed for another address.
    for_someone_else = signer.address_for(reference, "intrus@example.org")
    assert for_someone_else != reply_to
    forged = reply(None, "Oui", to=for_someone_else)
    assert await handle_reply(app.engine, forged) == Intake.ALTERED_ADDRESS
    assert (await app.engine.view(reference)).state == "pending"


async def test_a_reply_matched_by_the_reference_in_its_subject_is_applied(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    reference, _ = await start(app, seed, mail)
    subject = f"TR: demande d'accès (réf. {reference.lower()})"
    answer = reply(None, "Non, je refuse.", subject=subject)
    assert await handle_reply(app.engine, answer) == Intake.APPLIED
    assert (await app.engine.view(reference)).state == "refused"


async def test_a_trusted_dkim_failure_decides_nothing_and_sends_the_links_once(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    reference, message_id = await start(app, seed, mail)

    def failed() -> bytes:
        return reply(
            message_id,
            "Oui, j'autorise.",
            headers={
                "Authentication-Results": "mx.cordee.example; dkim=fail (signature did not verify)"
                " header.d=formations-sud.example; spf=pass"
            },
        )

    outcome = await handle_reply(app.engine, failed(), trusted_authserv_id="mx.cordee.example")
    assert outcome == Intake.UNAUTHENTICATED
    assert (await app.engine.view(reference)).state == "pending"
    assert mail.sent[-1].recipient == seed.contact_email
    assert "rien n'a été enregistré" in mail.sent[-1].text
    again = await handle_reply(app.engine, failed(), trusted_authserv_id="mx.cordee.example")
    assert again == Intake.UNAUTHENTICATED
    assert len(mail.sent) == 2


async def test_a_dkim_verdict_from_an_untrusted_host_is_ignored(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    reference, message_id = await start(app, seed, mail)
    planted = reply(
        message_id,
        "Oui, j'autorise.",
        headers={"Authentication-Results": "relais.example.org; dkim=fail"},
    )
    outcome = await handle_reply(app.engine, planted, trusted_authserv_id="mx.cordee.example")
    assert outcome == Intake.APPLIED
    assert (await app.engine.view(reference)).state == "authorised"


async def test_the_same_message_twice_is_handled_once(
    app: App, seed: Seed, mail: MemoryChannel, staff: MemoryChannel
) -> None:
    reference, message_id = await start(app, seed, mail)
    # A colleague's reply: handled twice, it would answer them twice.
    forwarded = reply(message_id, "Oui", sender="paul.durand@formations-sud.example")
    assert await handle_reply(app.engine, forwarded) == Intake.WRONG_SENDER
    sent, told = len(mail.sent), len(staff.sent)
    # The same message again, e.g. after a crash before the inbox recorded its progress.
    assert await handle_reply(app.engine, forwarded) == Intake.DUPLICATE
    assert (len(mail.sent), len(staff.sent)) == (sent, told)
    answer = reply(message_id, "Oui, j'autorise.")
    assert await handle_reply(app.engine, answer) == Intake.APPLIED
    assert await handle_reply(app.engine, answer) == Intake.DUPLICATE
    assert (await app.engine.view(reference)).state == "authorised"


async def test_an_unclear_reply_gets_one_polite_help_and_changes_nothing(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    reference, message_id = await start(app, seed, mail)
    unclear = reply(message_id, "Oui mais de quoi s'agit-il exactement ?")
    assert await handle_reply(app.engine, unclear) == Intake.UNCLEAR
    help_mail = mail.sent[-1]
    assert help_mail.recipient == seed.contact_email
    assert "rien n'a été enregistré" in help_mail.text
    assert help_mail.text.count("/lien/") == 2
    unclear_again = reply(message_id, "Je ne comprends pas.")
    assert await handle_reply(app.engine, unclear_again) == Intake.UNCLEAR_ALREADY_HELPED
    assert len(mail.sent) == 2
    assert (await app.engine.view(reference)).state == "pending"


async def test_auto_replies_unmatched_and_late_replies_decide_nothing(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    reference, message_id = await start(app, seed, mail)
    away = reply(message_id, "Oui", headers={"Auto-Submitted": "auto-replied"})
    assert await handle_reply(app.engine, away) == Intake.AUTO_REPLY
    stranger = reply("<unknown@example.org>", "Oui")
    assert await handle_reply(app.engine, stranger) == Intake.UNMATCHED
    assert (await app.engine.view(reference)).state == "pending"
    await app.engine.fire(reference, "refuse", actor="partner_contact:web")
    late = reply(message_id, "Oui, j'autorise.")
    assert await handle_reply(app.engine, late) == Intake.ALREADY_DECIDED
    assert (await app.engine.view(reference)).state == "refused"


async def test_the_maildir_inbox_handles_each_message_once(
    app: App, seed: Seed, mail: MemoryChannel, tmp_path: Path
) -> None:
    reference, message_id = await start(app, seed, mail)
    inbox = MaildirInbox(tmp_path / "inbox")
    await inbox.poll(app.handle_mail)
    (tmp_path / "inbox" / "new" / "1.reply.eml").write_bytes(reply(message_id, "D'accord."))
    (tmp_path / "inbox" / "new" / "2.junk.eml").write_bytes(b"\x00\xff not a mail")
    assert await inbox.poll(app.handle_mail) == 2
    assert await inbox.poll(app.handle_mail) == 0
    assert (await app.engine.view(reference)).state == "authorised"
    filed = sorted(p.name for p in (tmp_path / "inbox" / "cur").iterdir())
    assert filed == ["1.reply.eml:2,S", "2.junk.eml:2,F"]


class Killed(BaseException):
    """Stands for the process being killed: nothing after it runs."""


async def test_a_crash_after_applying_never_applies_or_answers_twice(
    app: App, seed: Seed, mail: MemoryChannel, staff: MemoryChannel, tmp_path: Path
) -> None:
    reference, message_id = await start(app, seed, mail)
    inbox = MaildirInbox(tmp_path / "inbox")
    await inbox.poll(app.handle_mail)
    colleague = reply(message_id, "Oui", sender="paul.durand@formations-sud.example")
    (tmp_path / "inbox" / "new" / "1.colleague.eml").write_bytes(colleague)

    async def killed_after_commit(raw: bytes) -> object:
        await app.handle_mail(raw)
        raise Killed  # before the inbox files the message away

    with pytest.raises(Killed):
        await inbox.poll(killed_after_commit)
    sent, told = len(mail.sent), len(staff.sent)
    assert mail.sent[-1].recipient == "paul.durand@formations-sud.example"
    # The restarted process finds the message still waiting: it is filed, not answered again.
    assert await MaildirInbox(tmp_path / "inbox").poll(app.handle_mail) == 1
    assert (len(mail.sent), len(staff.sent)) == (sent, told)
    assert (await app.engine.view(reference)).state == "pending"
    assert [p.name for p in (tmp_path / "inbox" / "cur").iterdir()] == ["1.colleague.eml:2,S"]


CORPUS = Path(__file__).resolve().parents[1] / "data" / "replies"


def bounce_for(name: str, address: str) -> bytes:
    raw = (CORPUS / name).read_bytes()
    return raw.replace(b"claire.martin@formations-sud.example.fr", address.encode())


async def test_a_hard_bounce_marks_the_address_and_tells_the_staff_once(
    app: App, seed: Seed, mail: MemoryChannel, staff: MemoryChannel
) -> None:
    reference, _ = await start(app, seed, mail)
    delayed = bounce_for("bounce-dsn-delayed.eml", seed.contact_email)
    assert await handle_reply(app.engine, delayed) == Intake.BOUNCE
    assert len(staff.sent) == 1

    hard = bounce_for("bounce-dsn-permanent.eml", seed.contact_email)
    assert await handle_reply(app.engine, hard) == Intake.HARD_BOUNCE
    notice = staff.sent[-1]
    assert notice.subject.startswith("Courriel non remis à Formations <Sud>")
    assert seed.contact_email in notice.text
    assert await handle_reply(app.engine, hard) == Intake.DUPLICATE
    # Another report of the same bounce (another Message-ID): nothing new to tell.
    again = hard.replace(b"Message-ID: <", b"Message-ID: <again.", 1)
    assert again != hard
    assert await handle_reply(app.engine, again) == Intake.HARD_BOUNCE
    assert len(staff.sent) == 2

    await app.engine.fire(reference, "cancel", actor="cli")
    with pytest.raises(InvalidInput, match="aucun contact joignable"):
        await send_request(
            app.engine, certifier=str(seed.certifier_id), partner=str(seed.organisation_id)
        )
