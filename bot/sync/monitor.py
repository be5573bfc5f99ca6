"""The per-partnership « partner_sync » instance that carries sync and sharing notices."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.engine import StartSpec
from bot.errors import Conflict
from bot.store.models import Certifier, Contact, Organisation, Partnership, WorkflowInstance
from bot.sync.services import SyncServices
from workflows import access_request, partner_sync

log = logging.getLogger("cordee.sync")


def monitor_key(partnership_id: int) -> str:
    return f"{partner_sync.NAME}:partnership:{partnership_id}"


async def ensure_monitor(services: SyncServices, partnership_id: int) -> None:
    """Create the partnership's notice carrier on first need; harmless when it exists."""
    key = monitor_key(partnership_id)
    found = await services.db.run(
        lambda s: s.scalar(select(WorkflowInstance.id).where(WorkflowInstance.active_key == key))
    )
    if found is not None:
        return
    try:
        await services.engine.start(partner_sync.NAME, _prepare(partnership_id), actor="sync")
    except Conflict:
        return  # created meanwhile by a concurrent run


def _prepare(partnership_id: int) -> Callable[[Session], StartSpec]:
    def prepare(session: Session) -> StartSpec:
        partnership = session.get(Partnership, partnership_id)
        if partnership is None:
            raise Conflict(f"partenariat n° {partnership_id} introuvable")
        certifier = session.get(Certifier, partnership.certifier_id)
        organisation = session.get(Organisation, partnership.organisation_id)
        assert certifier is not None  # noqa: S101 - foreign key
        assert organisation is not None  # noqa: S101 - foreign key
        return StartSpec(
            certifier_id=certifier.id,
            partnership_id=partnership.id,
            active_key=monitor_key(partnership.id),
            data={
                "certifier_name": certifier.name,
                "certifier_contact_email": certifier.contact_email,
                "organisation_name": organisation.name,
                "contact_id": contact_of(session, organisation.id),
            },
        )

    return prepare


def contact_of(session: Session, organisation_id: int) -> int:
    """The organisation's contact for notices: the first one still reachable by email."""
    contacts = list(
        session.scalars(
            select(Contact).where(Contact.organisation_id == organisation_id).order_by(Contact.id)
        )
    )
    if not contacts:
        raise Conflict(
            "l'organisme n'a aucun contact à prévenir : ajoutez-en un avec "
            f"`cordee organisation contact-add {organisation_id} --email …`."
        )
    reachable = [contact for contact in contacts if not contact.undeliverable]
    return (reachable or contacts)[0].id


def monitor_state(session: Session, partnership_id: int) -> str | None:
    return session.scalar(
        select(WorkflowInstance.state).where(
            WorkflowInstance.active_key == monitor_key(partnership_id)
        )
    )


def notify_in(
    session: Session,
    services: SyncServices,
    partnership_id: int,
    event: str,
    details: dict[str, Any],
    actor: str,
) -> bool:
    """Fire a notice event inside the caller's transaction; False when there is no carrier."""
    instance = session.scalars(
        select(WorkflowInstance)
        .where(WorkflowInstance.active_key == monitor_key(partnership_id))
        .with_for_update()
    ).one_or_none()
    if instance is None:
        log.warning("partnership %s: no notice carrier, %s not told", partnership_id, event)
        return False
    # The manage link is rendered into the outbox now and not kept on the instance: it is a
    # bearer link that acts on behalf of the organisation.
    refreshed = dict(details)
    partnership = session.get(Partnership, partnership_id)
    if partnership is not None:
        # The organisation's contacts may have changed since the carrier was created.
        with contextlib.suppress(Conflict):
            refreshed["contact_id"] = contact_of(session, partnership.organisation_id)
    instance.data = {
        **instance.data,
        **refreshed,
        "manage_url": manage_url(session, services, instance),
    }
    services.engine.fire_in(session, instance.public_id, event, actor=actor)
    instance.data = {key: value for key, value in instance.data.items() if key != "manage_url"}
    return True


def manage_url(session: Session, services: SyncServices, instance: WorkflowInstance) -> str:
    """The « gérer le partage » link of the partnership's access request, freshly signed."""
    request = session.scalars(
        select(WorkflowInstance.public_id)
        .where(
            WorkflowInstance.workflow == access_request.NAME,
            WorkflowInstance.partnership_id == instance.partnership_id,
        )
        .order_by(
            (WorkflowInstance.state == access_request.State.AUTHORISED).desc(),
            WorkflowInstance.id.desc(),
        )
        .limit(1)
    ).one_or_none()
    if request is None:
        return services.links.public_url
    return services.links.url(access_request.NAME, request, "manage")
