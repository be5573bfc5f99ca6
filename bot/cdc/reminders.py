"""Deposit deadline reminders: one persisted APScheduler job checks every certifier daily.

What is sent to a certifier's staff (through its « cdc_deposit » instance and the outbox):
* delivered more than 2 months ago and not yet deposited → a reminder, once per passage;
* the 3-month deadline passed → an overdue alert, once per passage;
* passages refused by the CDC awaiting correction → a digest, at most once per week.
A deposited file with no processing report is the batch workflow's own timer (cdc_batch).
Each run is idempotent: what was told is marked in the same transaction as the notice, so a
run repeated after a restart sends nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.cdc.passages import (
    CHUNK,
    KO,
    LISTED,
    add_months,
    awaiting_deposit,
    both_dates,
    deadline_of,
    ensure_passages,
    holder,
    monitor,
    passage_rows,
)
from bot.clock import PARIS, paris
from bot.errors import CordeeError
from bot.scheduler import persistent_scheduler
from bot.store.models import CdcPassage, Certifier, TransitionLog
from bot.sync.services import SyncServices
from workflows.cdc_deposit import Event

log = logging.getLogger("cordee.cdc")

JOB_ID = "cdc-deposit-reminders"
JOBS_TABLE = "apscheduler_cdc_jobs"
RUN_AT_HOUR = 8
"""Every day at 08:00, Europe/Paris."""


@dataclass(frozen=True)
class Sent:
    certifier_id: int
    event: str
    count: int


async def run_reminders(services: SyncServices, now: datetime | None = None) -> list[Sent]:
    """Check every certifier's deadlines at `now` and tell their staff; returns what was sent."""
    instant = now or services.clock.now()
    certifier_ids = await services.db.run(
        lambda s: list(s.scalars(select(Certifier.id).order_by(Certifier.id)))
    )
    sent: list[Sent] = []
    for certifier_id in certifier_ids:
        try:
            sent += await services.db.run(
                lambda s, c=certifier_id: _remind(s, services, c, instant)  # type: ignore[misc]
            )
        except CordeeError as error:
            log.warning("deposit reminders of certifier %s failed: %s", certifier_id, error)
    await services.engine.deliver(instant)
    return sent


def _remind(
    session: Session, services: SyncServices, certifier_id: int, now: datetime
) -> list[Sent]:
    ensure_passages(session, certifier_id, now)
    today = paris(now).date()
    certifier = session.get(Certifier, certifier_id)
    assert certifier is not None  # noqa: S101 - listed just before
    sent: list[Sent] = []
    # Overdue first: a passage past the deadline is not also « due soon ».
    overdue = passage_rows(
        session,
        certifier_id,
        (awaiting_deposit() | (CdcPassage.state == KO))
        & (CdcPassage.delivered_on < add_months(today, -3))
        & CdcPassage.overdue_notified_at.is_(None),
    )
    due_soon = passage_rows(
        session,
        certifier_id,
        awaiting_deposit()
        & (CdcPassage.delivered_on <= add_months(today, -2))
        & (CdcPassage.delivered_on >= add_months(today, -3))
        & CdcPassage.due_soon_notified_at.is_(None),
    )
    for event, rows, column in (
        (Event.OVERDUE, overdue, CdcPassage.overdue_notified_at),
        (Event.DUE_SOON, due_soon, CdcPassage.due_soon_notified_at),
    ):
        if not rows:
            continue
        ids = [row[0].id for row in rows]
        for start in range(0, len(ids), CHUNK):
            session.execute(
                update(CdcPassage)
                .where(
                    CdcPassage.certifier_id == certifier_id,
                    CdcPassage.id.in_(ids[start : start + CHUNK]),
                )
                .values({column: now})
                .execution_options(synchronize_session=False)
            )
        _notify(session, services, certifier, event, _listing(rows, deadline=True), len(rows), now)
        sent.append(Sent(certifier_id, event, len(rows)))
    ko = passage_rows(session, certifier_id, CdcPassage.state == KO)
    if ko and not _digest_this_week(session, services, certifier, now):
        _notify(
            session,
            services,
            certifier,
            Event.KO_DIGEST,
            _listing(ko, deadline=False),
            len(ko),
            now,
        )
        sent.append(Sent(certifier_id, Event.KO_DIGEST, len(ko)))
    return sent


def _listing(rows: list[Any], *, deadline: bool) -> list[dict[str, Any]]:
    listed = []
    for passage, number, first, last, code in rows[:LISTED]:
        item = {
            "reference": passage.id_technique,
            "folder_number": number,
            "holder": holder(first, last),
            "certification": code,
        }
        if deadline:
            item["deadline"] = both_dates(deadline_of(passage.delivered_on))
        else:
            item["message"] = passage.message or ""
        listed.append(item)
    return listed


def _notify(
    session: Session,
    services: SyncServices,
    certifier: Certifier,
    event: str,
    holders: list[dict[str, Any]],
    count: int,
    now: datetime,
) -> None:
    instance = monitor(session, certifier, now)
    instance.data = {
        "certifier_name": certifier.name,
        "count": count,
        "holders": holders,
        "more": max(count - len(holders), 0),
    }
    session.flush()
    services.engine.fire_in(
        session, instance.public_id, event, actor="cdc:reminders", certifier_id=certifier.id
    )


def _digest_this_week(
    session: Session, services: SyncServices, certifier: Certifier, now: datetime
) -> bool:
    """Whether this week's digest (weeks start on Monday, Europe/Paris) is already sent."""
    local = paris(now)
    monday = datetime(local.year, local.month, local.day, tzinfo=PARIS) - timedelta(
        days=local.weekday()
    )
    instance = monitor(session, certifier, now)
    session.flush()
    return (
        session.scalar(
            select(TransitionLog.id)
            .where(
                TransitionLog.instance_id == instance.id,
                TransitionLog.event == Event.KO_DIGEST,
                TransitionLog.at >= monday.astimezone(UTC),
            )
            .limit(1)
        )
        is not None
    )


# ------------------------------------------------------------------ scheduler

# APScheduler stores a job as a module-level function and its arguments: the running
# scheduler registers itself here, and the stored job finds the application through it.
_active: ReminderScheduler | None = None


async def run_scheduled_reminders() -> None:
    """The stored job."""
    scheduler = _active
    if scheduler is None:
        log.warning("deposit reminders job ran without a scheduler")
        return
    sent = await run_reminders(scheduler.services)
    if sent:
        log.info("deposit reminders: %d notice(s) sent", len(sent))


class ReminderScheduler:
    """The daily reminders job, kept in its own table: a restart keeps it, a missed run runs
    once at start (and sends only what was not sent)."""

    def __init__(self, services: SyncServices) -> None:
        self.services = services
        self._scheduler: AsyncIOScheduler | None = None

    @property
    def scheduler(self) -> AsyncIOScheduler:
        if self._scheduler is None:
            raise RuntimeError("the deposit reminder scheduler is not started")
        return self._scheduler

    def start(self) -> None:
        global _active
        scheduler = persistent_scheduler(self.services.db.url, table=JOBS_TABLE)
        scheduler.start()
        if scheduler.get_job(JOB_ID) is None:
            scheduler.add_job(
                run_scheduled_reminders,
                CronTrigger(hour=RUN_AT_HOUR, minute=0, timezone=PARIS),
                id=JOB_ID,
            )
        self._scheduler = scheduler
        _active = self

    async def stop(self) -> None:
        global _active
        if _active is self:
            _active = None
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
