"""CDC processing reports that arrive by email: imported through the inbox, by idFlux only."""

from __future__ import annotations

from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.app import App
from bot.cdc.build import build_deposit
from bot.cdc.deposit import mark_batch
from bot.cdc.passages import deposit_status
from bot.cdc.report import ReportUnreadable, attached_reports
from bot.channels.maildir_inbox import MaildirInbox
from bot.channels.memory import MemoryChannel
from bot.clock import FrozenClock
from bot.sync.services import SyncServices
from tests.integration.test_mail_intake import reply, start
from tests.support.builders import Seed
from tests.support.cdc_deposit import add_successes, report_xml


def report_mail(report: bytes, *, number: int, name: str = "Accusé de traitement.xml") -> bytes:
    """The CDC's mail (or the staff forwarding it): a few words and the report attached."""
    mail = EmailMessage()
    mail["From"] = "ne-pas-repondre@caissedesdepots.example"
    mail["To"] = "cordee@certif.example"
    mail["Subject"] = "Accusé de traitement de votre fichier"
    mail["Message-ID"] = f"<report-{number}@caissedesdepots.example>"
    mail.set_content("Veuillez trouver ci-joint l'accusé de traitement de votre fichier.")
    mail.add_attachment(report, maintype="application", subtype="xml", filename=name)
    return mail.as_bytes()


def drop(inbox_dir: Path, name: str, raw: bytes) -> None:
    (inbox_dir / "new" / name).write_bytes(raw)


def filed(inbox_dir: Path) -> list[str]:
    return sorted(p.name for p in (inbox_dir / "cur").iterdir())


async def deposited_batch(app: App, seed: Seed, clock: FrozenClock, out: Path) -> tuple[str, str]:
    """One built and deposited file; its idFlux and its file name."""
    services = SyncServices.of(app)
    add_successes(app.db, seed, ["F-1", "F-2"], entered_at=clock.now(), issued_on=date(2026, 11, 2))
    (file,) = (await build_deposit(services, seed.certifier_id, out, actor="test")).files
    await mark_batch(services, seed.certifier_id, file.reference, "deposited", actor="test")
    return file.id_flux, file.file_name


async def test_a_report_mailed_to_the_inbox_is_imported_and_the_staff_told(
    app: App, seed: Seed, clock: FrozenClock, staff: MemoryChannel, tmp_path: Path
) -> None:
    id_flux, _ = await deposited_batch(app, seed, clock, tmp_path / "out")
    inbox_dir = tmp_path / "inbox"
    inbox = MaildirInbox(inbox_dir)
    await inbox.poll(app.mail_handler)
    staff.sent.clear()
    drop(inbox_dir, "1.report.eml", report_mail(report_xml(id_flux), number=1))

    assert await inbox.poll(app.mail_handler) == 1

    status = app.db.run_sync(lambda s: deposit_status(s, seed.certifier_id, clock.now()))
    assert [batch.state for batch in status.batches] == ["processed_ok"]
    (notice,) = staff.sent
    assert notice.recipient == str(seed.certifier_id)
    assert filed(inbox_dir) == ["1.report.eml:2,S"]


async def test_a_mailed_report_is_matched_by_its_id_flux_only(
    app: App, seed: Seed, clock: FrozenClock, staff: MemoryChannel, tmp_path: Path
) -> None:
    _, file_name = await deposited_batch(app, seed, clock, tmp_path / "out")
    inbox_dir = tmp_path / "inbox"
    inbox = MaildirInbox(inbox_dir)
    await inbox.poll(app.mail_handler)
    staff.sent.clear()
    # The right file name, but no idFlux (or an unknown one): a file name is easy to guess.
    drop(inbox_dir, "1.no-flux.eml", report_mail(report_xml("", file_name=file_name), number=1))
    unknown = report_xml("6f1c2c1e-0000-4000-8000-000000000000", file_name=file_name)
    drop(inbox_dir, "2.unknown.eml", report_mail(unknown, number=2))
    drop(inbox_dir, "3.reference.eml", report_mail(report_xml("LD-ABCDEFGHJK"), number=3))

    assert await inbox.poll(app.mail_handler) == 3

    # Nothing applied, nobody told; the mails wait, flagged, for a person.
    assert staff.sent == []
    assert filed(inbox_dir) == ["1.no-flux.eml:2,F", "2.unknown.eml:2,F", "3.reference.eml:2,F"]
    with pytest.raises(ReportUnreadable, match="idFlux"):
        await app.handle_mail(report_mail(report_xml("", file_name=file_name), number=4))


async def test_a_reply_with_an_xml_file_that_is_no_report_is_still_a_reply(
    app: App, seed: Seed, mail: MemoryChannel, tmp_path: Path
) -> None:
    reference, message_id = await start(app, seed, mail)
    base = reply(message_id, "Oui, j'autorise.", sender=seed.contact_email)
    message = message_from_bytes(base, policy=policy.default)
    assert isinstance(message, EmailMessage)
    message.add_attachment(
        b'<?xml version="1.0"?><flux><idFlux>x</idFlux></flux>',
        maintype="application",
        subtype="xml",
        filename="notre-export.xml",
    )
    raw = message.as_bytes()
    assert attached_reports(raw) == []

    assert await app.handle_mails([raw]) == [True]
    assert (await app.engine.view(reference)).state == "authorised"
