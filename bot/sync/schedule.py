"""Scheduled syncs: one APScheduler job per partnership, kept in the database (restart-safe).

Jobs live in the `apscheduler_jobs` table (APScheduler's SQLAlchemyJobStore), so a restart
keeps every partnership's next run; a run missed while the server was down runs once at start.
A reconciling job (every minute, in memory) follows the `partner_sync` table: new API sources,
changed intervals, retries after a failure (back-off) and fresh credentials.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.errors import Conflict, CordeeError
from bot.scheduler import persistent_scheduler
from bot.store.models import PartnerSync
from bot.sync.run import PartnerSyncRunner, SyncReport
from bot.sync.services import SyncServices

log = logging.getLogger("cordee.sync")

JOB_PREFIX = "partner-sync-"
RECONCILE_JOB = "partner-sync-reconcile"
RECONCILE_SECONDS = 60.0
# Closer than this, two instants are the same schedule (float timestamps in the job store).
SAME_INSTANT = timedelta(seconds=1)

# APScheduler stores a job as a reference to a module-level function plus its pickled
# arguments: the job cannot carry the application. The one started scheduler of the process
# registers itself here and the stored jobs find it through run_scheduled_sync.
_active: SyncScheduler | None = None


async def run_scheduled_sync(partnership_id: int) -> None:
    """The stored job: sync one partnership with the running scheduler."""
    scheduler = _active
    if scheduler is None:
        log.warning("partner sync job for partnership %s ran without a scheduler", partnership_id)
        return
    await scheduler.run_now(partnership_id)


def job_id(partnership_id: int) -> str:
    return f"{JOB_PREFIX}{partnership_id}"


class SyncScheduler:
    def __init__(
        self,
        services: SyncServices,
        *,
        reconcile_seconds: float = RECONCILE_SECONDS,
        runner: PartnerSyncRunner | None = None,
        on_report: Callable[[SyncReport], None] | None = None,
    ) -> None:
        self.services = services
        self.runner = runner or PartnerSyncRunner(services)
        self._reconcile_seconds = reconcile_seconds
        self._on_report = on_report
        self._scheduler: AsyncIOScheduler | None = None
        self._running: dict[int, asyncio.Task[None]] = {}
        # The retry instant last applied per partnership: each one moves its job once only,
        # so a retry that cannot run (sharing paused) does not fire every minute.
        self._applied: dict[int, datetime] = {}

    @property
    def scheduler(self) -> AsyncIOScheduler:
        if self._scheduler is None:
            raise RuntimeError("the sync scheduler is not started")
        return self._scheduler

    def start(self) -> None:
        """Load the stored jobs and start (needs a running event loop)."""
        global _active
        scheduler = persistent_scheduler(self.services.db.url)
        scheduler.start()
        scheduler.add_job(
            self.reconcile,
            "interval",
            seconds=self._reconcile_seconds,
            id=RECONCILE_JOB,
            jobstore="memory",
            next_run_time=datetime.now(UTC),
        )
        self._scheduler = scheduler
        _active = self

    async def stop(self) -> None:
        """Stop scheduling, then let the runs in progress finish their batch."""
        global _active
        if _active is self:
            _active = None
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def reconcile(self) -> None:
        """Make the stored jobs follow the partnerships' API sources."""
        wanted = await self.services.db.run(_api_sources)
        scheduler = self.scheduler
        now = datetime.now(UTC)
        for partnership_id, interval, retry_at in wanted:
            if partnership_id in self._running:
                continue  # its status is being written; look again next time
            trigger = IntervalTrigger(minutes=interval, timezone=UTC)
            job = scheduler.get_job(job_id(partnership_id))
            if job is None:
                scheduler.add_job(
                    run_scheduled_sync,
                    trigger,
                    id=job_id(partnership_id),
                    kwargs={"partnership_id": partnership_id},
                    next_run_time=max(retry_at or now, now),
                    replace_existing=True,
                )
                log.info("partnership %s: sync every %s min", partnership_id, interval)
                continue
            if job.trigger.interval != timedelta(minutes=interval):
                job = scheduler.reschedule_job(job.id, trigger=trigger)
            if retry_at is None or self._applied.get(partnership_id) == retry_at:
                continue
            self._applied[partnership_id] = retry_at
            if job.next_run_time is None or abs(job.next_run_time - retry_at) > SAME_INSTANT:
                scheduler.modify_job(job.id, next_run_time=max(retry_at, now))
        known = {job_id(partnership_id) for partnership_id, _, _ in wanted}
        for job in scheduler.get_jobs(jobstore="default"):
            if job.id.startswith(JOB_PREFIX) and job.id not in known:
                job.remove()

    async def run_now(self, partnership_id: int) -> None:
        """Run one partnership's sync in its own task: a shutdown never cuts a batch in two."""
        if partnership_id in self._running:
            return
        task = asyncio.create_task(self._run(partnership_id))
        self._running[partnership_id] = task
        try:
            await asyncio.shield(task)
        finally:
            if task.done():
                self._running.pop(partnership_id, None)
            else:
                task.add_done_callback(lambda _: self._running.pop(partnership_id, None))

    async def _run(self, partnership_id: int) -> None:
        try:
            report = await self.runner.run_configured(partnership_id, actor="scheduler")
        except Conflict as error:
            # Sharing paused or revoked, or a run from the command line in progress.
            log.info("partnership %s: scheduled sync skipped: %s", partnership_id, error)
            return
        except CordeeError as error:
            log.warning("partnership %s: scheduled sync failed: %s", partnership_id, error)
            return
        log.info("partnership %s: scheduled sync %s", partnership_id, report.outcome)
        if report.next_attempt_at is not None and self._scheduler is not None:
            # Back-off: the next try is the one the status announces, not the regular interval.
            job = self._scheduler.get_job(job_id(partnership_id))
            if job is not None:
                job.modify(next_run_time=report.next_attempt_at)
                self._applied[partnership_id] = report.next_attempt_at
        if self._on_report is not None:
            self._on_report(report)


def _api_sources(session: Session) -> list[tuple[int, int, datetime | None]]:
    rows = session.execute(
        select(
            PartnerSync.partnership_id, PartnerSync.interval_minutes, PartnerSync.next_attempt_at
        )
        .where(
            PartnerSync.source_kind == "api",
            PartnerSync.base_url.is_not(None),
            PartnerSync.credentials.is_not(None),
        )
        .order_by(PartnerSync.partnership_id)
    )
    return [(partnership_id, interval, retry) for partnership_id, interval, retry in rows]
