"""APScheduler wrapper: one job ticks the engine; timers live in the database (restart-safe)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.engine import Engine
from bot.errors import CordeeError

log = logging.getLogger("cordee.scheduler")


class Scheduler:
    def __init__(self, engine: Engine, interval_seconds: float) -> None:
        self._engine = engine
        self._interval = interval_seconds
        self._scheduler: AsyncIOScheduler | None = None

    async def tick(self) -> None:
        try:
            fired = await self._engine.tick()
        except CordeeError as error:
            log.error("engine tick failed: %s", error)
            return
        if fired:
            log.info("engine tick: %d timer(s) fired", fired)

    def start(self) -> None:
        """Start ticking (needs a running event loop); the first tick runs at once to catch up."""
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

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
