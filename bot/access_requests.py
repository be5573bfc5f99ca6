"""Access requests: start, cancel, list and show « Demandes d'accès aux dossiers »."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.directory import (
    check_certification_code,
    find_certifier,
    find_organisation,
    find_partnership,
)
from bot.engine import Engine, StartSpec
from bot.errors import Conflict, InvalidInput, InvalidTransition
from bot.events import InstanceView, Outcome
from bot.store.models import Certifier, WorkflowInstance
from workflows.access_request import NAME, Event, State

STATE_LABELS = {
    "fr": {
        State.PENDING: "en attente de réponse",
        State.AUTHORISED: "autorisée",
        State.REFUSED: "refusée",
        State.EXPIRED: "expirée",
        State.CANCELLED: "annulée",
        State.REVOKED: "révoquée",
    },
    "en": {
        State.PENDING: "awaiting an answer",
        State.AUTHORISED: "authorised",
        State.REFUSED: "refused",
        State.EXPIRED: "expired",
        State.CANCELLED: "cancelled",
        State.REVOKED: "revoked",
    },
}


EVENT_LABELS: dict[str, dict[str, str]] = {
    "fr": {Event.REMIND: "relance", Event.EXPIRE: "expiration"},
    "en": {Event.REMIND: "reminder", Event.EXPIRE: "expiry"},
}


def active_key(partnership_id: int) -> str:
    return f"{NAME}:partnership:{partnership_id}"


def _prepare(
    certifier_ref: str, partner_ref: str, codes: Sequence[str]
) -> Callable[[Session], StartSpec]:
    def prepare(session: Session) -> StartSpec:
        certifier = find_certifier(session, certifier_ref)
        organisation = find_organisation(session, partner_ref)
        partnership = find_partnership(session, certifier, organisation)
        covered = {
            link.certification.code: link.certification for link in partnership.certifications
        }
        wanted = [check_certification_code(code)[1] for code in codes] or sorted(covered)
        missing = [code for code in wanted if code not in covered]
        if missing:
            raise InvalidInput(
                f"Le partenariat avec « {organisation.name} » ne couvre pas : {', '.join(missing)} "
                f"(certifications couvertes : {', '.join(sorted(covered))})."
            )
        contacts = [c for c in organisation.contacts if not c.undeliverable]
        if not contacts:
            raise InvalidInput(
                f"« {organisation.name} » n'a aucun contact joignable par courriel. Ajoutez-en un "
                f"avec `cordee organisation contact-add {organisation.id} --email …`."
            )
        live = session.scalars(
            select(WorkflowInstance).where(
                WorkflowInstance.active_key == active_key(partnership.id)
            )
        ).one_or_none()
        if live is not None:
            what = "en attente" if live.state == State.PENDING else "déjà autorisée"
            raise Conflict(
                f"Une demande {what} existe pour ce partenariat ({live.public_id}) : "
                "aucun nouveau courriel n'a été envoyé."
            )
        certifications = [covered[code] for code in wanted]
        return StartSpec(
            certifier_id=certifier.id,
            partnership_id=partnership.id,
            active_key=active_key(partnership.id),
            data={
                "certifier_name": certifier.name,
                "certifier_contact_email": certifier.contact_email,
                "organisation_name": organisation.name,
                "organisation_siret": organisation.siret,
                "contact_id": contacts[0].id,
                "certification_ids": [c.id for c in certifications],
                "certifications": [
                    {"type": c.type, "code": c.code, "title": c.title} for c in certifications
                ],
            },
        )

    return prepare


async def send_request(
    engine: Engine,
    *,
    certifier: str,
    partner: str,
    certifications: Sequence[str] = (),
    actor: str = "cli",
) -> InstanceView:
    """Start a request and email the organisation's contact; raises on bad input, writes nothing."""
    return await engine.start(NAME, _prepare(certifier, partner, certifications), actor)


async def cancel_request(
    engine: Engine, reference: str, *, actor: str = "cli", certifier_id: int | None = None
) -> Outcome:
    try:
        return await engine.fire(reference, Event.CANCEL, actor=actor, certifier_id=certifier_id)
    except InvalidTransition as error:
        view = await engine.view(reference)
        label = STATE_LABELS["fr"][State(view.state)]
        raise Conflict(
            f"La demande {reference} est {label} : elle ne peut plus être annulée."
        ) from error


MANAGE_LINK_RESEND_INTERVAL = timedelta(hours=24)


async def resend_manage_link(engine: Engine, reference: str) -> bool:
    """Email a fresh « gérer le partage » link to the contact on file, at most once a day.

    Returns False when one was already sent within the interval (nothing is sent again).
    Raises InvalidTransition when the sharing is no longer active.
    """
    return await engine.fire_unless_recent(
        reference,
        Event.SEND_MANAGE_LINK,
        actor="partner_contact:web",
        within=MANAGE_LINK_RESEND_INTERVAL,
    )


@dataclass(frozen=True)
class RequestRow:
    id: int
    reference: str
    certifier_id: int
    certifier_name: str
    organisation_name: str
    organisation_siret: str
    certifications: tuple[str, ...]
    state: str
    created_at: str
    state_entered_at: str
    due_at: str | None
    due_event: str | None


def list_requests(
    session: Session, *, certifier_ref: str | None = None, state: str | None = None
) -> list[RequestRow]:
    query = (
        select(WorkflowInstance, Certifier.name)
        .join(Certifier, Certifier.id == WorkflowInstance.certifier_id)
        .where(WorkflowInstance.workflow == NAME)
        .order_by(WorkflowInstance.created_at.desc(), WorkflowInstance.id.desc())
    )
    if certifier_ref is not None:
        query = query.where(
            WorkflowInstance.certifier_id == find_certifier(session, certifier_ref).id
        )
    if state is not None:
        if state not in {s.value for s in State}:
            raise InvalidInput(
                f"État inconnu « {state} » : choisissez parmi {', '.join(s.value for s in State)}."
            )
        query = query.where(WorkflowInstance.state == state)
    return [
        RequestRow(
            id=instance.id,
            reference=instance.public_id,
            certifier_id=cast(int, instance.certifier_id),  # joined with its certifier
            certifier_name=certifier_name,
            organisation_name=str(instance.data["organisation_name"]),
            organisation_siret=str(instance.data["organisation_siret"]),
            certifications=tuple(str(c["code"]) for c in instance.data["certifications"]),
            state=instance.state,
            created_at=instance.created_at.isoformat(),
            state_entered_at=instance.state_entered_at.isoformat(),
            due_at=instance.due_at.isoformat() if instance.due_at else None,
            due_event=instance.due_event,
        )
        for instance, certifier_name in session.execute(query)
    ]
