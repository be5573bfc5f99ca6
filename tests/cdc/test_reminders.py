"""Deposit deadline reminders: when they fire (frozen clock), once only, and the job's store."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import App
from bot.cdc.build import build_deposit
from bot.cdc.deposit import mark_batch
from bot.cdc.reminders import JOB_ID, ReminderScheduler, run_reminders
from bot.cdc.report import import_report
from bot.channels.memory import MemoryChannel
from bot.clock import PARIS, FrozenClock
from bot.store.models import cdc_scheduler_jobs, scheduler_jobs
from bot.sync.services import SyncServices
from tests.support.builders import Seed
from tests.support.cdc_deposit import add_successes, report_xml

DELIVERED = date(2026, 3, 10)


def at(day: date, hour: int = 8) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=PARIS).astimezone(UTC)


@pytest.fixture
def services(app: App) -> SyncServices:
    return SyncServices.of(app)


async def test_due_soon_then_overdue_each_once(
    app: App, seed: Seed, services: SyncServices, clock: FrozenClock, staff: MemoryChannel
) -> None:
    clock.set(at(DELIVERED))
    refs = add_successes(app.db, seed, ["F-1", "F-2"], entered_at=clock.now(), issued_on=DELIVERED)

    assert await run_reminders(services, at(date(2026, 5, 9))) == []
    sent = await run_reminders(services, at(date(2026, 5, 10)))
    assert [(s.event, s.count) for s in sent] == [("due_soon", 2)]
    (notice,) = staff.sent
    assert notice.subject == "Dépôt CDC à faire : 2 titulaire(s) certifié(s) il y a plus de 2 mois"
    assert (
        f"Camille MARTIN — RNCP34567, dossier F-1 ({refs['F-1']}) : à déposer avant le 10 juin 2026"
        in notice.text
    )
    assert "1990" not in notice.text  # no birth data in notices
    # Daily runs (or a repeat after a restart) say nothing new.
    assert await run_reminders(services, at(date(2026, 5, 10), 18)) == []
    assert await run_reminders(services, at(date(2026, 6, 10))) == []
    sent = await run_reminders(services, at(date(2026, 6, 11)))
    assert [(s.event, s.count) for s in sent] == [("overdue", 2)]
    assert staff.sent[-1].subject == "Délai de dépôt CDC dépassé : 2 titulaire(s)"
    assert await run_reminders(services, at(date(2026, 6, 12))) == []


async def test_deposited_passages_are_not_reminded(
    app: App, seed: Seed, services: SyncServices, clock: FrozenClock, tmp_path: Path
) -> None:
    clock.set(at(DELIVERED))
    add_successes(app.db, seed, ["F-1"], entered_at=clock.now(), issued_on=DELIVERED)
    (file,) = (await build_deposit(services, seed.certifier_id, tmp_path, actor="test")).files
    # Generated but not deposited: still to deposit.
    assert [s.event for s in await run_reminders(services, at(date(2026, 5, 11)))] == ["due_soon"]
    await mark_batch(services, seed.certifier_id, file.reference, "deposited", actor="test")
    assert await run_reminders(services, at(date(2026, 7, 1))) == []


async def test_refused_passages_get_a_weekly_digest(
    app: App,
    seed: Seed,
    services: SyncServices,
    clock: FrozenClock,
    staff: MemoryChannel,
    tmp_path: Path,
) -> None:
    clock.set(at(date(2026, 11, 2)))
    refs = add_successes(app.db, seed, ["F-1"], entered_at=clock.now(), issued_on=date(2026, 11, 1))
    (file,) = (await build_deposit(services, seed.certifier_id, tmp_path, actor="test")).files
    await import_report(
        services,
        report_xml(file.id_flux, ko=[(refs["F-1"], "Plusieurs titulaires ont été identifiés")]),
        actor="test",
    )
    staff.sent.clear()

    monday = date(2026, 11, 9)
    clock.set(at(monday))
    sent = await run_reminders(services, at(monday))
    assert [(s.event, s.count) for s in sent] == [("ko_digest", 1)]
    assert "F-1" in staff.sent[-1].text
    assert "Plusieurs titulaires ont été identifiés" in staff.sent[-1].text
    for day in range(1, 7):  # Tuesday to Sunday
        clock.set(at(monday + timedelta(days=day)))
        assert await run_reminders(services, at(monday + timedelta(days=day))) == []
    clock.set(at(monday + timedelta(days=7)))
    assert [s.event for s in await run_reminders(services, at(monday + timedelta(days=7)))] == [
        "ko_digest"
    ]


async def test_the_daily_job_is_stored_apart_and_survives_a_restart(
    app: App, services: SyncServices
) -> None:
    first = ReminderScheduler(services)
    first.start()
    try:
        job = first.scheduler.get_job(JOB_ID)
        assert job is not None
        planned = job.next_run_time.astimezone(PARIS)
        assert (planned.hour, planned.minute) == (8, 0)
    finally:
        await first.stop()
    stored = app.db.run_sync(lambda s: list(s.scalars(select(cdc_scheduler_jobs.c.id))))
    assert stored == [JOB_ID]
    # The partner sync's job store never sees it (it would run it too).
    assert app.db.run_sync(lambda s: list(s.scalars(select(scheduler_jobs.c.id)))) == []
    second = ReminderScheduler(services)
    second.start()
    try:
        kept = second.scheduler.get_job(JOB_ID)
        assert kept is not None
        assert kept.next_run_time == job.next_run_time
    finally:
        await second.stop()
