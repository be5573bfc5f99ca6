"""One sync run of one partnership: idempotent, incremental, one transaction per batch.

    claim the partnership (one run at a time) → for each batch from the source, in one
    transaction: check the sharing again, skip the rows whose digest is unchanged, check the
    others (pure rules), write → record the status, advance the cursor, announce a recovery —
    or, when the source fails, back off and tell the organisation once.

An interruption leaves whole batches only; the cursor moves at the end of a complete run, so
the next run reads again what the interrupted one may have missed, and finds it unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from bot.errors import Conflict, NotFound
from bot.store.models import Partnership, PartnerSync
from bot.sync import folders as store
from bot.sync.monitor import ensure_monitor, monitor_state, notify_in
from bot.sync.rules import (
    Known,
    RawFolder,
    RowError,
    TrainingFolder,
    Verdict,
    decide,
    fingerprint,
    folder_key,
    parse,
    updated_instant,
)
from bot.sync.services import SyncServices
from bot.sync.sharing import explain_not_shared, load_partnership, shared_codes
from bot.sync.sources import Batch, FolderSource, RestSource, SourceError
from workflows import partner_sync
from workflows.certification_folder import WORKFLOW

log = logging.getLogger("cordee.sync")

# Rows per transaction: large enough that per-batch costs vanish, small enough to stay lean.
BATCH_SIZE = 5000
HTTP_TIMEOUT_SECONDS = 30.0
# A run that crashed leaves its claim behind; after this long another run may take over.
CLAIM_LEASE = timedelta(hours=1)
# Retries after a failure: sooner first, then spaced out, never more than a day apart.
BACKOFF = (
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
    timedelta(hours=8),
    timedelta(hours=24),
)
# Refused credentials are told at once; an unreachable source only when it lasts.
UNAVAILABLE_FAILURES_BEFORE_NOTICE = 3
KEPT_ERRORS = 100
DEFAULT_INTERVAL_MINUTES = 60

Progress = Callable[[int, int | None], None]


class SharingStopped(Conflict):
    """Sharing was paused or revoked during the run: it stopped between two batches."""


@dataclass
class SyncReport:
    """What a run did; `errors` carry line numbers and folder numbers, no personal data."""

    partnership_id: int
    source: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    ignored: int = 0
    closed: int = 0  # certification folders aborted or refused with their training folder
    errors: list[RowError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    outcome: str = "ok"  # ok | rejected (some rows) | failed (the source) | interrupted
    failure: str | None = None
    # The newest « last update » read from an API: where the next run starts.
    cursor: str | None = None
    next_attempt_at: datetime | None = None

    @property
    def rejected(self) -> int:
        return len(self.errors)

    def summary(self) -> str:
        return (
            f"{self.created} créé(s), {self.updated} mis à jour, {self.unchanged} inchangé(s), "
            f"{self.ignored} ignoré(s) (non partagés), {self.rejected} rejeté(s)"
        )


@dataclass
class _Plan:
    certifier_id: int
    cursor: str | None


class PartnerSyncRunner:
    def __init__(
        self,
        services: SyncServices,
        *,
        batch_size: int = BATCH_SIZE,
        http_timeout: float = HTTP_TIMEOUT_SECONDS,
    ) -> None:
        self.services = services
        self.batch_size = batch_size
        self.http_timeout = http_timeout

    # ------------------------------------------------------------- entry points

    async def run(
        self,
        partnership_id: int,
        source: FolderSource,
        *,
        actor: str,
        certifier_id: int | None = None,
        progress: Progress | None = None,
    ) -> SyncReport:
        """Sync one partnership from `source`, then close it.

        Raises (writing nothing) when the sharing is off or another run of it is going on.
        """
        try:
            return await self._run(partnership_id, source, actor, certifier_id, progress)
        finally:
            source.close()

    async def _run(
        self,
        partnership_id: int,
        source: FolderSource,
        actor: str,
        certifier_id: int | None,
        progress: Progress | None,
    ) -> SyncReport:
        report = SyncReport(partnership_id, source.kind, notes=source.notes())
        plan = await self.services.db.run(
            lambda s: self._claim(s, partnership_id, certifier_id, source.kind)
        )
        try:
            await self._read(partnership_id, plan, source, report, actor, progress)
        except SourceError as error:
            report.outcome, report.failure = "failed", error.detail
            log.warning("partnership %s: source failed: %s", partnership_id, error.detail)
            await ensure_monitor(self.services, partnership_id)
            await self.services.db.run(
                partial(
                    self._record_failure,
                    partnership_id=partnership_id,
                    error=error,
                    report=report,
                    actor=actor,
                )
            )
        except SharingStopped as stop:
            report.outcome, report.failure = "interrupted", str(stop)
            await self.services.db.run(lambda s: self._record_end(s, partnership_id, report))
        except BaseException:
            # A bug, a database outage or a cancellation: whole batches only were written;
            # release the claim so that the next run can start, then let the error through.
            await asyncio.shield(self.services.db.run(lambda s: self._release(s, partnership_id)))
            raise
        else:
            report.outcome = "rejected" if report.errors else "ok"
            await self.services.db.run(
                lambda s: self._record_success(s, partnership_id, report, actor)
            )
        await self.services.engine.deliver()
        return report

    async def run_configured(
        self,
        partnership_id: int,
        *,
        actor: str,
        certifier_id: int | None = None,
        progress: Progress | None = None,
    ) -> SyncReport:
        """Sync from the partnership's configured API (`cordee sync configure`)."""
        config = await self.services.db.run(lambda s: _api_config(s, partnership_id, certifier_id))
        base_url, sealed = config
        api_key = self.services.cipher.open(sealed)
        return await self.run(
            partnership_id,
            RestSource(base_url, api_key, timeout=self.http_timeout),
            actor=actor,
            certifier_id=certifier_id,
            progress=progress,
        )

    # ------------------------------------------------------------------ reading

    async def _read(
        self,
        partnership_id: int,
        plan: _Plan,
        source: FolderSource,
        report: SyncReport,
        actor: str,
        progress: Progress | None,
    ) -> None:
        report.outcome = "running"
        if source.kind == "file":
            # A whole file is read each time: the stored digests are read once, up front.
            digests = await self.services.db.run(lambda s: store.digests(s, partnership_id))
            seen = _Seen({}, digests)
        else:
            # An API sends what changed, and may send a folder twice (updated while paging).
            seen = _Seen(None)
        async for batch in _read_ahead(source.batches(plan.cursor, self.batch_size)):
            counts, errors = await self.services.db.run(
                partial(
                    self._apply,
                    partnership_id=partnership_id,
                    plan=plan,
                    rows=batch.rows,
                    seen=seen,
                    actor=actor,
                )
            )
            report.errors.extend(errors)
            for name, value in counts.items():
                setattr(report, name, getattr(report, name) + value)
            if progress is not None:
                progress(batch.done, batch.total)
        if seen.newest is not None and source.kind == "api":
            report.cursor = seen.newest.astimezone(UTC).isoformat()

    def _apply(
        self,
        session: Session,
        partnership_id: int,
        plan: _Plan,
        rows: list[RawFolder | RowError],
        seen: _Seen,
        actor: str,
    ) -> tuple[dict[str, int], list[RowError]]:
        """One batch, one transaction. The sharing is checked again first (a pause acts at
        once); a row whose digest matches its stored folder is unchanged and skips the checks.
        """
        codes = shared_codes(session, partnership_id)
        if not codes:
            raise SharingStopped(
                "synchronisation interrompue : " + explain_not_shared(session, partnership_id)
            )
        now = self.services.clock.now()
        counts = {"created": 0, "updated": 0, "unchanged": 0, "ignored": 0, "closed": 0}
        errors: list[RowError] = []
        # First the rows' digests: an unchanged row is done with, without checks or queries.
        candidates: list[tuple[RawFolder, str, str]] = []
        for row in rows:
            if isinstance(row, RowError):
                errors.append(row)
                continue
            key = folder_key(row.values)
            duplicate = seen.duplicate(key, row.line)
            if duplicate is not None:
                errors.append(duplicate)
                continue
            digest = fingerprint(row.values)
            if seen.digests is not None and digest in seen.digests:
                counts["unchanged"] += 1
                continue
            candidates.append((row, key, digest))
        known = store.existing(session, partnership_id, sorted({key for _, key, _ in candidates}))
        new: list[TrainingFolder] = []
        changed: list[tuple[store.Stored, TrainingFolder]] = []
        closing: list[tuple[str, str]] = []
        for row, key, digest in candidates:
            stored = known.get(key)
            if stored is not None and stored.known.fingerprint == digest:
                counts["unchanged"] += 1
                seen.updated(updated_instant(row.values))
                continue
            folder = parse(row, digest)
            if isinstance(folder, RowError):
                errors.append(folder)
                continue
            seen.updated(folder.updated_at)
            decision = decide(folder, stored.known if stored else None, codes)
            _count(counts, decision.verdict)
            if decision.verdict is Verdict.CREATE:
                new.append(folder)
                # Met again later in this batch (an API may do that): then an update.
                known[key] = store.Stored(0, "", Known(digest, WORKFLOW.initial))
            elif decision.verdict is Verdict.UPDATE and stored is not None and stored.id:
                changed.append((stored, folder))
                if decision.event is not None:
                    closing.append((stored.public_id, decision.event))
            if seen.digests is not None and decision.verdict in (Verdict.CREATE, Verdict.UPDATE):
                seen.digests.add(digest)
        store.create_folders(
            session,
            certifier_id=plan.certifier_id,
            partnership_id=partnership_id,
            folders=new,
            codes=codes,
            actor=actor,
            now=now,
        )
        store.update_folders(session, changed, codes, now)
        for public_id, event in closing:
            self.services.engine.fire_in(session, public_id, event, actor=actor)
        counts["closed"] = len(closing)
        return counts, errors

    # ------------------------------------------------------------------- status

    def _claim(
        self, session: Session, partnership_id: int, certifier_id: int | None, kind: str
    ) -> _Plan:
        partnership = load_partnership(session, partnership_id, certifier_id)
        if not shared_codes(session, partnership_id):
            raise Conflict(explain_not_shared(session, partnership_id))
        now = self.services.clock.now()
        row = status_row(session, partnership, kind, now)
        claimed = session.execute(
            update(PartnerSync)
            .where(
                PartnerSync.id == row.id,
                or_(
                    PartnerSync.last_started_at.is_(None),
                    PartnerSync.last_finished_at >= PartnerSync.last_started_at,
                    PartnerSync.last_started_at < now - CLAIM_LEASE,
                ),
            )
            .values(last_started_at=now, last_outcome="running", last_source=kind)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict(
                "une synchronisation de ce partenaire est déjà en cours : attendez sa fin "
                "(`cordee sync status`)."
            )
        return _Plan(partnership.certifier_id, row.cursor if kind == "api" else None)

    def _row(self, session: Session, partnership_id: int) -> PartnerSync:
        row = session.scalars(
            select(PartnerSync).where(PartnerSync.partnership_id == partnership_id)
        ).one()
        return row

    def _record_end(self, session: Session, partnership_id: int, report: SyncReport) -> None:
        row = self._row(session, partnership_id)
        row.last_finished_at = self.services.clock.now()
        row.last_outcome = report.outcome
        row.last_created, row.last_updated = report.created, report.updated
        row.last_unchanged, row.last_ignored = report.unchanged, report.ignored
        row.last_rejected = report.rejected
        row.last_errors = [
            {"line": e.line, "folder_number": e.folder_number, "message": e.message}
            for e in report.errors[:KEPT_ERRORS]
        ]
        row.last_error = report.failure

    def _record_success(
        self, session: Session, partnership_id: int, report: SyncReport, actor: str
    ) -> None:
        self._record_end(session, partnership_id, report)
        row = self._row(session, partnership_id)
        if report.source == "api":
            if report.cursor is not None:
                row.cursor = report.cursor
            was_failing = row.consecutive_failures > 0
            row.consecutive_failures = 0
            row.failing_since = None
            row.next_attempt_at = None
            if was_failing and monitor_state(session, partnership_id) == partner_sync.State.FAILING:
                notify_in(
                    session,
                    self.services,
                    partnership_id,
                    partner_sync.Event.RECOVER,
                    {"failure": None},
                    actor,
                )

    def _record_failure(
        self,
        session: Session,
        partnership_id: int,
        error: SourceError,
        report: SyncReport,
        actor: str,
    ) -> None:
        self._record_end(session, partnership_id, report)
        row = self._row(session, partnership_id)
        now = self.services.clock.now()
        row.consecutive_failures += 1
        row.failing_since = row.failing_since or now
        delay = BACKOFF[min(row.consecutive_failures, len(BACKOFF)) - 1]
        jitter = random.uniform(0, delay.total_seconds() / 10)  # noqa: S311 - spreading retries
        row.next_attempt_at = now + delay + timedelta(seconds=jitter)
        report.next_attempt_at = row.next_attempt_at
        worth_telling = (
            error.kind == "credentials"
            or row.consecutive_failures >= UNAVAILABLE_FAILURES_BEFORE_NOTICE
        )
        if worth_telling:
            failure = {"kind": error.kind, "detail": error.detail}
            notify_in(
                session,
                self.services,
                partnership_id,
                partner_sync.Event.FAIL,
                {"failure": failure},
                actor,
            )

    def _release(self, session: Session, partnership_id: int) -> None:
        row = self._row(session, partnership_id)
        row.last_finished_at = self.services.clock.now()
        row.last_outcome = "interrupted"


# ----------------------------------------------------------------- helpers


async def _read_ahead(batches: AsyncIterator[Batch]) -> AsyncIterator[Batch]:
    """The next batch is read (file, network) while the current one is being written."""
    iterator = aiter(batches)
    upcoming: asyncio.Future[Batch | None] = asyncio.ensure_future(anext(iterator, None))
    try:
        while (batch := await upcoming) is not None:
            upcoming = asyncio.ensure_future(anext(iterator, None))
            yield batch
    finally:
        if not upcoming.done():
            upcoming.cancel()
        await asyncio.gather(upcoming, return_exceptions=True)
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


@dataclass
class _Seen:
    """What a run remembers from batch to batch."""

    # Folder number → line of its first row (files only: None for an API).
    first_line: dict[str, int | None] | None
    # The stored folders' digests, read once for a whole file (None: asked batch by batch).
    # A digest covers the folder number too: a match means this very folder, unchanged.
    digests: set[str] | None = None
    newest: datetime | None = None

    def duplicate(self, key: str, line: int | None) -> RowError | None:
        if self.first_line is None or not key:
            return None
        if key not in self.first_line:
            self.first_line[key] = line
            return None
        first = self.first_line[key]
        where = f" (déjà ligne {first}) : seule la première ligne est importée" if first else ""
        return RowError(line, key, "numéro de dossier en double" + where)

    def updated(self, instant: datetime | None) -> None:
        if instant is not None and (self.newest is None or instant > self.newest):
            self.newest = instant


def _count(counts: dict[str, int], verdict: Verdict) -> None:
    name = {
        Verdict.CREATE: "created",
        Verdict.UPDATE: "updated",
        Verdict.UNCHANGED: "unchanged",
        Verdict.IGNORE: "ignored",
    }[verdict]
    counts[name] += 1


def status_row(session: Session, partnership: Partnership, kind: str, now: datetime) -> PartnerSync:
    row = session.scalars(
        select(PartnerSync).where(PartnerSync.partnership_id == partnership.id)
    ).one_or_none()
    if row is None:
        row = PartnerSync(
            partnership_id=partnership.id,
            certifier_id=partnership.certifier_id,
            source_kind=kind,
            interval_minutes=DEFAULT_INTERVAL_MINUTES,
            last_created=0,
            last_updated=0,
            last_unchanged=0,
            last_ignored=0,
            last_rejected=0,
            last_errors=[],
            consecutive_failures=0,
            created_at=now,
        )
        session.add(row)
        session.flush()
    return row


def _api_config(session: Session, partnership_id: int, certifier_id: int | None) -> tuple[str, str]:
    load_partnership(session, partnership_id, certifier_id)
    row = session.scalars(
        select(PartnerSync).where(PartnerSync.partnership_id == partnership_id)
    ).one_or_none()
    if row is None or row.source_kind != "api" or not row.base_url or not row.credentials:
        raise NotFound(
            f"aucune API configurée pour le partenariat n° {partnership_id} : utilisez "
            "`cordee sync configure` ou importez un fichier avec `cordee sync import`."
        )
    return row.base_url, row.credentials
