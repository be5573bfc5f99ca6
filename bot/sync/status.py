"""Per-partnership sync configuration and status: what the CLI, the web page and Slack show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.errors import InvalidInput
from bot.store.models import Organisation, Partnership, PartnerSync
from bot.sync.credentials import check_api_key
from bot.sync.monitor import ensure_monitor, notify_in
from bot.sync.run import DEFAULT_INTERVAL_MINUTES, status_row
from bot.sync.services import SyncServices
from bot.sync.sharing import CertificationSharing, load_partnership, sharing_status
from bot.sync.sources import check_base_url
from workflows import partner_sync

MIN_INTERVAL_MINUTES = 5
MAX_INTERVAL_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class SyncStatus:
    partnership_id: int
    certifier_id: int
    organisation_id: int
    organisation_name: str
    source_kind: str | None
    base_url: str | None
    has_credentials: bool
    interval_minutes: int
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_outcome: str | None
    created: int
    updated: int
    unchanged: int
    ignored: int
    rejected: int
    errors: list[dict[str, Any]]
    last_error: str | None
    consecutive_failures: int
    failing_since: datetime | None
    next_attempt_at: datetime | None
    cursor: str | None
    sharing: list[CertificationSharing]


def list_status(
    session: Session, certifier_id: int | None, partnership_id: int | None = None
) -> list[SyncStatus]:
    """Every partnership of the certifier (all of them when None: the operator's view)."""
    query = (
        select(Partnership, Organisation, PartnerSync)
        .join(Organisation, Organisation.id == Partnership.organisation_id)
        .outerjoin(PartnerSync, PartnerSync.partnership_id == Partnership.id)
        .order_by(Partnership.id)
    )
    if certifier_id is not None:
        query = query.where(Partnership.certifier_id == certifier_id)
    if partnership_id is not None:
        query = query.where(Partnership.id == partnership_id)
    return [
        _status(partnership, organisation, row, sharing_status(session, partnership.id))
        for partnership, organisation, row in session.execute(query)
    ]


def _status(
    partnership: Partnership,
    organisation: Organisation,
    row: PartnerSync | None,
    sharing: list[CertificationSharing],
) -> SyncStatus:
    return SyncStatus(
        partnership_id=partnership.id,
        certifier_id=partnership.certifier_id,
        organisation_id=organisation.id,
        organisation_name=organisation.name,
        source_kind=row.source_kind if row else None,
        base_url=row.base_url if row else None,
        has_credentials=bool(row and row.credentials),
        interval_minutes=row.interval_minutes if row else DEFAULT_INTERVAL_MINUTES,
        last_started_at=row.last_started_at if row else None,
        last_finished_at=row.last_finished_at if row else None,
        last_outcome=row.last_outcome if row else None,
        created=row.last_created if row else 0,
        updated=row.last_updated if row else 0,
        unchanged=row.last_unchanged if row else 0,
        ignored=row.last_ignored if row else 0,
        rejected=row.last_rejected if row else 0,
        errors=list(row.last_errors) if row else [],
        last_error=row.last_error if row else None,
        consecutive_failures=row.consecutive_failures if row else 0,
        failing_since=row.failing_since if row else None,
        next_attempt_at=row.next_attempt_at if row else None,
        cursor=row.cursor if row else None,
        sharing=sharing,
    )


def check_interval(minutes: int) -> int:
    if not MIN_INTERVAL_MINUTES <= minutes <= MAX_INTERVAL_MINUTES:
        raise InvalidInput(
            f"intervalle invalide ({minutes} min) : choisissez entre {MIN_INTERVAL_MINUTES} "
            f"minutes et {MAX_INTERVAL_MINUTES // (24 * 60)} jours (par défaut "
            f"{DEFAULT_INTERVAL_MINUTES} minutes)."
        )
    return minutes


async def configure_api(
    services: SyncServices,
    partnership_id: int,
    *,
    certifier_id: int | None,
    base_url: str | None,
    api_key: str | None,
    interval_minutes: int | None,
) -> SyncStatus:
    """Record (or change) where and how often a partnership's folders are fetched."""
    url = check_base_url(base_url) if base_url is not None else None
    sealed = services.cipher.seal(api_key) if api_key is not None else None
    interval = check_interval(interval_minutes) if interval_minutes is not None else None
    await ensure_monitor(services, partnership_id)

    def work(session: Session) -> SyncStatus:
        partnership = load_partnership(session, partnership_id, certifier_id)
        row = status_row(session, partnership, "api", services.clock.now())
        if url is not None and url != row.base_url:
            row.base_url = url
            row.cursor = None  # another source: read everything once
        if row.source_kind != "api":
            row.source_kind = "api"
            row.cursor = None
        if sealed is not None:
            row.credentials = sealed
            row.next_attempt_at = services.clock.now() if row.consecutive_failures else None
        if interval is not None:
            row.interval_minutes = interval
        if not row.base_url or not row.credentials:
            raise InvalidInput(
                "indiquez l'adresse de l'API (--url) et la clé d'API de l'organisme "
                "(demandée à l'écran, ou --api-key-stdin)."
            )
        session.flush()
        [status] = list_status(session, None, partnership_id)
        return status

    return await services.db.run(work)


async def update_credentials(
    services: SyncServices, partnership_id: int, api_key: str, *, actor: str
) -> None:
    """The organisation's new API key, from its « gérer le partage » page: retried at once."""
    sealed = services.cipher.seal(check_api_key(api_key))
    await ensure_monitor(services, partnership_id)

    def work(session: Session) -> None:
        row = session.scalars(
            select(PartnerSync).where(PartnerSync.partnership_id == partnership_id)
        ).one_or_none()
        if row is None or row.source_kind != "api":
            raise InvalidInput("aucune API n'est configurée pour ce partage.")
        row.credentials = sealed
        row.next_attempt_at = services.clock.now()
        notify_in(
            session, services, partnership_id, partner_sync.Event.UPDATE_CREDENTIALS, {}, actor
        )

    await services.db.run(work)
    await services.engine.deliver()
