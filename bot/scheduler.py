"""APScheduler wrapper: one job ticks the engine; timers live in the database (restart-safe)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.engine import Engine
from bot.errors import CordeeError
from bot.store.db import create_db_engine

log = logging.getLogger("cordee.scheduler")


def persistent_scheduler(database_url: str, *, table: str = "apscheduler_jobs") -> AsyncIOScheduler:
    """An APScheduler whose default job store is a database table (restart-safe).

    Missed runs (server stopped) run once when it starts again, never in a burst. A second
    store, "memory", holds the jobs that need not survive a restart.
    """
    return AsyncIOScheduler(
        timezone=UTC,
        jobstores={
            # Its own engine: the job store disposes of it on shutdown.
            "default": SQLAlchemyJobStore(engine=create_db_engine(database_url), tablename=table),
            "memory": MemoryJobStore(),
        },
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )


class Scheduler:
    def __init__(self, engine: Engine, interval_seconds: float) -> None:
        self._engine = engine
        self._interval = interval_seconds
        self._scheduler: AsyncIOScheduler | None = None
        self._current: asyncio.Task[None] | None = None
        self._stopped = False

    async def tick(self) -> None:
        """The scheduled job. The work runs in its own task, shielded: APScheduler cancels
        running jobs on shutdown, which would abandon a database transaction mid-way in its
        worker thread; stop() waits for that task instead."""
        if self._stopped or (self._current is not None and not self._current.done()):
            return
        self._current = asyncio.create_task(self._tick_once())
        await asyncio.shield(self._current)

    async def _tick_once(self) -> None:
        try:
            fired = await self._engine.tick()
        except CordeeError as error:
            log.error("engine tick failed: %s", error)
            return
        if fired:
            log.info("engine tick: %d timer(s) fired", fired)

    def start(self) -> None:
        """Start ticking (needs a running event loop); the first tick runs at once to catch up."""
        self._stopped = False
        scheduler = AsyncIOScheduler(timezone=UTC)
        scheduler.add_job(
            self.tick,
            "interval",
            seconds=self._interval,
            id="engine-tick",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
        scheduler.start()
        self._scheduler = scheduler

    async def stop(self) -> None:
        """Stop scheduling, then let a tick in progress finish its transaction."""
        self._stopped = True
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self._current is not None:
            await asyncio.gather(self._current, return_exceptions=True)
