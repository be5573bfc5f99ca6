"""The REST source against a local fake API: incremental, encrypted key, failures told once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from bot.app import App
from bot.channels.memory import MemoryChannel
from bot.clock import FrozenClock
from bot.errors import Conflict, InvalidInput
from bot.store.models import PartnerSync
from bot.sync.credentials import CredentialCipher, CredentialsUnreadable
from bot.sync.run import PartnerSyncRunner
from bot.sync.services import SyncServices
from bot.sync.sharing import BY_CERTIFIER, pause_sharing
from bot.sync.status import list_status, update_credentials
from tests.support.builders import Seed
from tests.support.fake_wedof import API_KEY, FakeWedof
from tests.sync.test_file_import import database_dump, folders_of


def status(app: App) -> PartnerSync:
    return app.db.run_sync(lambda s: s.scalars(select(PartnerSync)).one())


async def test_folders_are_read_page_by_page_then_only_what_changed(
    app: App, configured: Seed, wedof: FakeWedof, api_runner: PartnerSyncRunner
) -> None:
    report = await api_runner.run_configured(configured.partnership_id, actor="test")
    assert (report.outcome, report.created) == ("ok", 250)
    assert [r["page"] for r in wedof.requests] == ["1", "2", "3"]
    assert {r["api_key"] for r in wedof.requests} == {API_KEY}
    assert "updatedSince" not in wedof.requests[0]
    assert status(app).cursor == "2026-11-01T12:10:00+00:00"

    wedof.requests.clear()
    wedof.update(7, state="inTraining")
    wedof.update(8, state="canceledByAttendee")
    again = await api_runner.run_configured(configured.partnership_id, actor="test")
    assert wedof.requests[0]["updatedSince"] == "2026-11-01T12:10:00+00:00"
    assert len(wedof.requests) == 1
    # The folder at the cursor is read again, unchanged; the two changes are applied.
    assert (again.updated, again.unchanged, again.closed, again.created) == (2, 1, 1, 0)
    folders = folders_of(app, configured)
    assert folders["R-7"].training_state == "inTraining"
    assert folders["R-8"].state == "aborted"


async def test_the_api_key_is_stored_encrypted(
    app: App, configured: Seed, services: SyncServices
) -> None:
    stored = status(app).credentials
    assert stored is not None
    assert API_KEY not in stored
    assert API_KEY not in database_dump(app)
    assert services.cipher.open(stored) == API_KEY
    with pytest.raises(CredentialsUnreadable):
        CredentialCipher("another-secret-key-" + "y" * 32).open(stored)
    with pytest.raises(InvalidInput):
        services.cipher.seal("key with spaces")


async def test_private_data_of_api_records_never_reaches_the_database(
    app: App, configured: Seed, api_runner: PartnerSyncRunner
) -> None:
    await api_runner.run_configured(configured.partnership_id, actor="test")
    dump = database_dump(app)
    assert "R-1" in dump
    for private in (
        "PRIX-HT-1242",
        "1490.5",
        "FACTURATION-PAYEE",
        "NOTE-PRIVEE-SECRETE",
        "FINANCEMENT-CPF",
        "NE-PAS-PARTAGER-NAISSANCE",
    ):
        assert private not in dump


async def test_refused_credentials_get_one_email_backoff_and_a_recovery_notice(
    app: App,
    configured: Seed,
    wedof: FakeWedof,
    api_runner: PartnerSyncRunner,
    services: SyncServices,
    clock: FrozenClock,
    mail: MemoryChannel,
    staff: MemoryChannel,
) -> None:
    await api_runner.run_configured(configured.partnership_id, actor="test")
    mails, notices = len(mail.sent), len(staff.sent)
    wedof.api_key = "renewed-key"

    failed = await api_runner.run_configured(configured.partnership_id, actor="scheduler")
    assert failed.outcome == "failed"
    assert "identifiants refusés" in (failed.failure or "")
    [asked] = mail.sent[mails:]
    assert asked.recipient == configured.contact_email
    assert asked.subject.startswith("Action requise : mettez à jour vos identifiants")
    assert "votre service a refusé la clé d'API enregistrée" in asked.text
    assert "/lien/" in asked.text
    [told] = staff.sent[notices:]
    assert "Synchronisation en échec : Formations <Sud>" in told.subject
    first_retry = status(app).next_attempt_at
    assert first_retry is not None
    assert timedelta(minutes=5) <= first_retry - clock.now() <= timedelta(minutes=6)

    for _ in range(3):
        clock.advance(timedelta(hours=1))
        await api_runner.run_configured(configured.partnership_id, actor="scheduler")
    assert len(mail.sent) == mails + 1  # still the one email
    assert len(staff.sent) == notices + 1
    row = status(app)
    assert row.consecutive_failures == 4
    assert row.next_attempt_at is not None
    assert row.next_attempt_at - clock.now() >= timedelta(hours=1)

    # The organisation enters its new key on its page: the next run works and says so.
    await update_credentials(
        services, configured.partnership_id, "renewed-key", actor="partner_contact:web"
    )
    assert "Nouvelle clé d'API enregistrée par Formations <Sud>" in staff.sent[-1].subject
    assert status(app).next_attempt_at == clock.now()
    wedof.api_key = "renewed-key"
    recovered = await api_runner.run_configured(configured.partnership_id, actor="scheduler")
    assert recovered.outcome == "ok"
    assert mail.sent[-1].subject.startswith("La synchronisation de vos dossiers")
    assert staff.sent[-1].subject == "Synchronisation rétablie : Formations <Sud>"
    row = status(app)
    assert (row.consecutive_failures, row.next_attempt_at, row.failing_since) == (0, None, None)


async def test_an_unreachable_source_is_told_only_when_it_lasts(
    app: App,
    configured: Seed,
    wedof: FakeWedof,
    api_runner: PartnerSyncRunner,
    mail: MemoryChannel,
) -> None:
    mails = len(mail.sent)
    wedof.delay = 2.0
    slow = await api_runner.run_configured(configured.partnership_id, actor="scheduler")
    assert slow.failure == "l'API de l'organisme n'a pas répondu en 0.5 s"
    wedof.delay, wedof.status = 0.0, 503
    second = await api_runner.run_configured(configured.partnership_id, actor="scheduler")
    assert "HTTP 503" in (second.failure or "")
    assert len(mail.sent) == mails
    await api_runner.run_configured(configured.partnership_id, actor="scheduler")
    [notice] = mail.sent[mails:]
    assert "votre service ne répond pas (l'API de l'organisme a répondu HTTP 503" in notice.text
    # Nothing was written by the failed runs, and the status says why.
    assert folders_of(app, configured) == {}
    [row] = app.db.run_sync(lambda s: list_status(s, configured.certifier_id))
    assert row.last_outcome == "failed"
    assert row.consecutive_failures == 3


async def test_a_paused_sharing_is_not_even_fetched(
    configured: Seed, wedof: FakeWedof, api_runner: PartnerSyncRunner, services: SyncServices
) -> None:
    for code in configured.codes:
        await pause_sharing(
            services,
            partnership_id=configured.partnership_id,
            code=code,
            by=BY_CERTIFIER,
            actor="certifier:cli",
        )
    with pytest.raises(Conflict):
        await api_runner.run_configured(configured.partnership_id, actor="scheduler")
    assert wedof.requests == []


async def test_one_run_at_a_time_per_partnership(
    app: App, configured: Seed, api_runner: PartnerSyncRunner, clock: FrozenClock
) -> None:
    app.db.run_sync(
        lambda s: s.execute(
            text("UPDATE partner_sync SET last_started_at = :now, last_finished_at = NULL"),
            {"now": clock.now().replace(tzinfo=None) if not app.db.is_postgres else clock.now()},
        )
    )
    with pytest.raises(Conflict) as raised:
        await api_runner.run_configured(configured.partnership_id, actor="test")
    assert "déjà en cours" in str(raised.value)
    clock.advance(timedelta(hours=2))  # a crashed run's claim expires
    report = await api_runner.run_configured(configured.partnership_id, actor="test")
    assert report.outcome == "ok"
