"""Scheduled syncs: jobs kept in the database, restart-safe, following intervals and back-off."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.app import App
from bot.clock import FrozenClock
from bot.store.models import scheduler_jobs
from bot.sync.run import PartnerSyncRunner, SyncReport
from bot.sync.schedule import SyncScheduler, job_id
from bot.sync.services import SyncServices
from bot.sync.status import configure_api, update_credentials
from tests.support.builders import Seed
from tests.support.fake_wedof import FakeWedof, record
from tests.sync.test_file_import import folders_of

WAIT = 15.0


@pytest.fixture
def reports() -> asyncio.Queue[SyncReport]:
    return asyncio.Queue()


def scheduler(services: SyncServices, reports: asyncio.Queue[SyncReport]) -> SyncScheduler:
    return SyncScheduler(
        services,
        runner=PartnerSyncRunner(services, http_timeout=2.0),
        on_report=reports.put_nowait,
    )


def stored_jobs(app: App) -> list[str]:
    return app.db.run_sync(lambda s: list(s.scalars(select(scheduler_jobs.c.id))))


async def test_a_configured_partner_is_synced_and_its_job_survives_a_restart(
    app: App,
    configured: Seed,
    services: SyncServices,
    reports: asyncio.Queue[SyncReport],
) -> None:
    first = scheduler(services, reports)
    first.start()
    try:
        report = await asyncio.wait_for(reports.get(), WAIT)
        assert (report.outcome, report.created) == ("ok", 250)
        job = first.scheduler.get_job(job_id(configured.partnership_id))
        assert job is not None
        assert job.trigger.interval == timedelta(minutes=60)
        planned = job.next_run_time
        assert planned - datetime.now(UTC) > timedelta(minutes=55)
    finally:
        await first.stop()
    assert stored_jobs(app) == [job_id(configured.partnership_id)]

    second = scheduler(services, reports)
    second.start()
    try:
        kept = second.scheduler.get_job(job_id(configured.partnership_id))
        assert kept is not None
        assert abs(kept.next_run_time - planned) < timedelta(seconds=1)
        await second.reconcile()
        assert reports.empty()
    finally:
        await second.stop()
    assert len(folders_of(app, configured)) == 250


async def test_a_run_missed_while_stopped_runs_once_at_start(
    app: App,
    configured: Seed,
    services: SyncServices,
    reports: asyncio.Queue[SyncReport],
) -> None:
    first = scheduler(services, reports)
    first.start()
    await asyncio.wait_for(reports.get(), WAIT)
    # The server stops, and stays down three intervals long.
    first.scheduler.pause()
    first.scheduler.modify_job(
        job_id(configured.partnership_id), next_run_time=datetime.now(UTC) - timedelta(hours=3)
    )
    await first.stop()

    second = scheduler(services, reports)
    second.start()
    try:
        again = await asyncio.wait_for(reports.get(), WAIT)
        assert (again.created, again.unchanged) == (0, 1)
        await asyncio.sleep(0.3)  # a burst of catch-up runs would arrive now
        assert reports.empty()
    finally:
        await second.stop()


async def test_intervals_back_off_and_new_credentials_follow_the_status(
    app: App,
    configured: Seed,
    services: SyncServices,
    wedof: FakeWedof,
    reports: asyncio.Queue[SyncReport],
    clock: FrozenClock,
) -> None:
    # APScheduler reads the real time: the back-off must be computed from it too.
    clock.set(datetime.now(UTC))
    running = scheduler(services, reports)
    running.start()
    try:
        await asyncio.wait_for(reports.get(), WAIT)
        pid = configured.partnership_id
        await configure_api(
            services,
            pid,
            certifier_id=None,
            base_url=None,
            api_key=None,
            interval_minutes=15,
        )
        await running.reconcile()
        job = running.scheduler.get_job(job_id(pid))
        assert job is not None
        assert job.trigger.interval == timedelta(minutes=15)

        wedof.api_key = "renewed"
        await running.run_now(pid)
        failed = await asyncio.wait_for(reports.get(), WAIT)
        assert failed.outcome == "failed"
        job = running.scheduler.get_job(job_id(pid))
        assert job is not None
        assert failed.next_attempt_at is not None
        assert abs(job.next_run_time - failed.next_attempt_at) < timedelta(seconds=1)

        # The organisation saves its new key: the retry is brought forward to now.
        wedof.folders.append(record(999))
        await update_credentials(services, pid, "renewed", actor="partner_contact:web")
        await running.reconcile()
        recovered = await asyncio.wait_for(reports.get(), WAIT)
        assert (recovered.outcome, recovered.created) == ("ok", 1)
    finally:
        await running.stop()


async def test_the_server_starts_and_stops_the_sync_scheduler(app: App, configured: Seed) -> None:
    await app.serve(host="127.0.0.1", port=0)
    try:
        assert app.sync_scheduler is not None
        assert app.sync_scheduler.scheduler.get_job("partner-sync-reconcile") is not None
    finally:
        await app.close()
    assert app.sync_scheduler is not None
    with pytest.raises(RuntimeError):
        _ = app.sync_scheduler.scheduler
