"""Which certifications a partnership shares now, and pausing or resuming one of them.

A certification is shared when three things hold: the partnership's access request is
authorised and covers it, its sharing flag is on, and it is not paused. The sync checks this
before every batch, so a pause or a revocation stops it at once. Channel-agnostic: the CLI,
the organisation's page (and later Slack) call the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from bot.access_requests import active_key as request_key
from bot.directory import (
    check_certification_code,
    find_certifier,
    find_organisation,
    find_partnership,
)
from bot.errors import Conflict, InvalidInput, NotFound
from bot.store.models import (
    Certification,
    Organisation,
    Partnership,
    PartnershipCertification,
    PartnerSync,
    SharingPause,
    WorkflowInstance,
)
from bot.sync.monitor import ensure_monitor, notify_in
from bot.sync.services import SyncServices
from workflows import access_request, partner_sync

BY_CERTIFIER = "certifier"
BY_ORGANISATION = "organisation"


@dataclass(frozen=True)
class CertificationSharing:
    """The sharing of one covered certification, as the certifier and the organisation see it."""

    certification_id: int
    code: str
    title: str
    authorised: bool
    enabled: bool
    paused_at: datetime | None
    paused_by: str | None

    @property
    def shared(self) -> bool:
        return self.authorised and self.enabled and self.paused_at is None

    @property
    def label(self) -> str:
        if self.shared:
            return "partagée"
        if self.paused_at is not None and self.authorised:
            return "suspendue"
        return "non autorisée"


def load_partnership(
    session: Session, partnership_id: int, certifier_id: int | None
) -> Partnership:
    """The partnership, only within the given certifier's tenancy when one is given."""
    query = select(Partnership).where(Partnership.id == partnership_id)
    if certifier_id is not None:
        query = query.where(Partnership.certifier_id == certifier_id)
    partnership = session.scalars(query).one_or_none()
    if partnership is None:
        raise NotFound(f"partenariat n° {partnership_id} introuvable pour ce certificateur.")
    return partnership


def authorised_request(session: Session, partnership_id: int) -> WorkflowInstance | None:
    # The live request holds the partnership's unique active key: an indexed look-up, where
    # a search by workflow and state would read every certification folder's instance.
    return session.scalars(
        select(WorkflowInstance).where(
            WorkflowInstance.active_key == request_key(partnership_id),
            WorkflowInstance.state == access_request.State.AUTHORISED,
        )
    ).one_or_none()


def sharing_status(session: Session, partnership_id: int) -> list[CertificationSharing]:
    request = authorised_request(session, partnership_id)
    covered = {int(i) for i in request.data.get("certification_ids", [])} if request else set()
    rows = session.execute(
        select(Certification, PartnershipCertification.sharing_enabled, SharingPause)
        .join(
            PartnershipCertification,
            PartnershipCertification.certification_id == Certification.id,
        )
        .outerjoin(
            SharingPause,
            (SharingPause.partnership_id == PartnershipCertification.partnership_id)
            & (SharingPause.certification_id == PartnershipCertification.certification_id),
        )
        .where(PartnershipCertification.partnership_id == partnership_id)
        .order_by(Certification.code)
    )
    return [
        CertificationSharing(
            certification_id=certification.id,
            code=certification.code,
            title=certification.title,
            authorised=certification.id in covered,
            enabled=enabled,
            paused_at=pause.paused_at if pause else None,
            paused_by=pause.paused_by if pause else None,
        )
        for certification, enabled, pause in rows
    ]


def shared_codes(session: Session, partnership_id: int) -> dict[str, int]:
    """Certification code → id, for the certifications whose folders may be synced now."""
    return {
        status.code: status.certification_id
        for status in sharing_status(session, partnership_id)
        if status.shared
    }


def explain_not_shared(session: Session, partnership_id: int) -> str:
    """Why nothing may be synced: said plainly, with what to do next."""
    statuses = sharing_status(session, partnership_id)
    partnership = session.get(Partnership, partnership_id)
    organisation = session.get(Organisation, partnership.organisation_id) if partnership else None
    name = organisation.name if organisation else f"n° {partnership_id}"
    if not any(status.authorised for status in statuses):
        return (
            f"le partage des dossiers de « {name} » n'est pas autorisé (aucune demande d'accès "
            "autorisée en cours) : envoyez une demande avec `cordee access-request send`. "
            "Rien n'a été importé."
        )
    paused = ", ".join(status.code for status in statuses if status.paused_at is not None)
    return (
        f"le partage des dossiers de « {name} » est suspendu ({paused}) : reprenez-le avec "
        "`cordee sync resume` ou depuis la page « Gérer le partage ». Rien n'a été importé."
    )


# ------------------------------------------------------------ pause / resume


async def pause_sharing(
    services: SyncServices,
    *,
    partnership_id: int,
    code: str,
    by: str,
    actor: str,
    certifier_id: int | None = None,
) -> CertificationSharing:
    """Stop syncing one certification's folders, now; both sides are told."""
    await ensure_monitor(services, partnership_id)

    def work(session: Session) -> CertificationSharing:
        status = _covered(session, partnership_id, code, certifier_id)
        if not status.authorised:
            raise Conflict(
                f"le partage de {status.code} n'est pas autorisé : il n'y a rien à suspendre."
            )
        if status.paused_at is not None:
            raise Conflict(f"le partage de {status.code} est déjà suspendu : rien n'a changé.")
        now = services.clock.now()
        _set_flag(session, partnership_id, status.certification_id, enabled=False, now=now)
        partnership = load_partnership(session, partnership_id, None)
        session.add(
            SharingPause(
                partnership_id=partnership_id,
                certification_id=status.certification_id,
                certifier_id=partnership.certifier_id,
                paused_at=now,
                paused_by=actor[:64],
            )
        )
        session.flush()
        _tell(session, services, partnership_id, partner_sync.Event.PAUSE, status, by, actor)
        return _covered(session, partnership_id, code, certifier_id)

    result = await services.db.run(work)
    await services.engine.deliver()
    return result


async def resume_sharing(
    services: SyncServices,
    *,
    partnership_id: int,
    code: str,
    by: str,
    actor: str,
    certifier_id: int | None = None,
) -> CertificationSharing:
    """Sync a paused certification's folders again, from the next run; both sides are told."""
    await ensure_monitor(services, partnership_id)

    def work(session: Session) -> CertificationSharing:
        status = _covered(session, partnership_id, code, certifier_id)
        if status.paused_at is None:
            raise Conflict(f"le partage de {status.code} n'est pas suspendu : rien n'a changé.")
        if not status.authorised:
            raise Conflict(
                f"le partage de {status.code} a été arrêté depuis sa suspension : une nouvelle "
                "demande d'accès est nécessaire (`cordee access-request send`)."
            )
        _set_flag(
            session, partnership_id, status.certification_id, enabled=True, now=services.clock.now()
        )
        session.execute(
            delete(SharingPause).where(
                SharingPause.partnership_id == partnership_id,
                SharingPause.certification_id == status.certification_id,
            )
        )
        # Changes made during the pause were skipped: the next run reads everything again.
        session.execute(
            update(PartnerSync)
            .where(PartnerSync.partnership_id == partnership_id)
            .values(cursor=None)
        )
        _tell(session, services, partnership_id, partner_sync.Event.RESUME, status, by, actor)
        return _covered(session, partnership_id, code, certifier_id)

    result = await services.db.run(work)
    await services.engine.deliver()
    return result


def _covered(
    session: Session, partnership_id: int, code: str, certifier_id: int | None
) -> CertificationSharing:
    load_partnership(session, partnership_id, certifier_id)
    _, normalised = check_certification_code(code)
    statuses = sharing_status(session, partnership_id)
    for status in statuses:
        if status.code == normalised:
            return status
    covered = ", ".join(status.code for status in statuses) or "aucune"
    raise NotFound(
        f"le partenariat ne couvre pas {normalised} (certifications couvertes : {covered})."
    )


def _set_flag(
    session: Session, partnership_id: int, certification_id: int, *, enabled: bool, now: datetime
) -> None:
    session.execute(
        update(PartnershipCertification)
        .where(
            PartnershipCertification.partnership_id == partnership_id,
            PartnershipCertification.certification_id == certification_id,
        )
        .values(sharing_enabled=enabled, sharing_changed_at=now)
    )


def _tell(
    session: Session,
    services: SyncServices,
    partnership_id: int,
    event: str,
    status: CertificationSharing,
    by: str,
    actor: str,
) -> None:
    change = {"code": status.code, "title": status.title, "by": by}
    notify_in(session, services, partnership_id, event, {"sharing_change": change}, actor)


def resolve_partnership(
    session: Session, partner_ref: str, certifier_ref: str | None
) -> tuple[int, int]:
    """(partnership id, certifier id) from an organisation and, when ambiguous, a certifier."""
    organisation = find_organisation(session, partner_ref)
    if certifier_ref is not None:
        certifier = find_certifier(session, certifier_ref)
        partnership = find_partnership(session, certifier, organisation)
        return partnership.id, certifier.id
    partnerships = list(
        session.scalars(
            select(Partnership)
            .where(Partnership.organisation_id == organisation.id)
            .order_by(Partnership.id)
        )
    )
    if len(partnerships) == 1:
        return partnerships[0].id, partnerships[0].certifier_id
    if not partnerships:
        raise NotFound(
            f"« {organisation.name} » n'a aucun partenariat : créez-le avec "
            "`cordee partnership add`."
        )
    raise InvalidInput(
        f"« {organisation.name} » est partenaire de plusieurs certificateurs : précisez lequel "
        "avec --certifier."
    )
