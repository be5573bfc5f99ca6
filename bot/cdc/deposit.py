"""Staff actions on deposits: record a result for the CDC, mark a batch deposited, rejected…"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session

from bot.cdc.passages import (
    EXPORTED,
    PENDING,
    ResultData,
    both_dates,
    check_result,
    find_batch,
    record_result,
)
from bot.clock import paris
from bot.errors import Conflict
from bot.store.models import CdcPassage
from bot.sync.folders import FolderDetail, _find, folder_detail, set_folder_state
from bot.sync.services import SyncServices
from workflows.cdc_batch import STATE_LABELS, Event, State
from workflows.certification_folder import STATE_LABELS as FOLDER_LABELS
from workflows.certification_folder import State as FolderState

# What staff may record about a batch, and the event each fires.
MARKS = {
    "deposited": Event.DEPOSIT,
    "acknowledged": Event.ACKNOWLEDGE,
    "rejected": Event.REJECT,
    "cancelled": Event.CANCEL,
}


@dataclass(frozen=True)
class Marked:
    reference: str
    file_name: str
    state: str
    state_label: str
    returned: int
    """Passages put back to deposit (rejected or cancelled batch)."""


async def mark_batch(
    services: SyncServices, certifier_id: int, wanted: str, mark: str, *, actor: str
) -> Marked:
    """Record what happened to a batch outside Cordée (deposited on the CDC portal…)."""
    event = MARKS[mark]

    def work(session: Session) -> Marked:
        batch, instance = find_batch(session, certifier_id, wanted)
        now = services.clock.now()
        allowed = {
            Event.DEPOSIT: (State.GENERATED,),
            Event.CANCEL: (State.GENERATED,),
            Event.ACKNOWLEDGE: (State.DEPOSITED,),
            Event.REJECT: (State.DEPOSITED, State.ACKNOWLEDGED),
        }[event]
        if instance.state not in allowed:
            raise Conflict(
                f"le lot {instance.public_id} est « {STATE_LABELS[instance.state]} » : il ne peut "
                f"pas être marqué « {mark} »."
                + (" Un lot ne se marque déposé qu'une fois." if event is Event.DEPOSIT else "")
            )
        returned = 0
        if event is Event.DEPOSIT:
            batch.deposited_at = now
            instance.data = {**instance.data, "deposited_on": both_dates(paris(now).date())}
        if event in (Event.REJECT, Event.CANCEL):
            # The file never reached the CDC's records: its passages go into the next file.
            result = session.execute(
                update(CdcPassage)
                .where(
                    CdcPassage.certifier_id == certifier_id,
                    CdcPassage.batch_id == batch.id,
                    CdcPassage.state == EXPORTED,
                )
                .values(state=PENDING, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            returned = int(getattr(result, "rowcount", 0))
        services.engine.fire_in(
            session, instance.public_id, event, actor=actor, certifier_id=certifier_id
        )
        return Marked(
            instance.public_id,
            batch.file_name,
            instance.state,
            STATE_LABELS[instance.state],
            returned,
        )

    marked = await services.db.run(work)
    await services.engine.deliver()
    return marked


async def set_result(
    services: SyncServices, certifier_id: int, reference: str, data: ResultData, *, actor: str
) -> FolderDetail:
    """Record a folder's result for the deposit; a folder « à contrôler » becomes « réussi »."""
    check_result(data, paris(services.clock.now()).date())

    def state_of(session: Session) -> str:
        _, instance, _, _ = _find(session, certifier_id, reference)
        return str(instance.state)

    state = await services.db.run(state_of)
    if state == FolderState.TO_CONTROL:
        await set_folder_state(services, certifier_id, reference, FolderState.SUCCESS, actor=actor)
    elif state != FolderState.SUCCESS:
        raise Conflict(
            f"le dossier {reference} est « {FOLDER_LABELS['fr'][state]} » : un résultat ne "
            "s'enregistre que pour un dossier « à contrôler » ou « réussi »."
        )

    def work(session: Session) -> FolderDetail:
        folder, _, _, _ = _find(session, certifier_id, reference)
        record_result(session, certifier_id, folder.id, data, services.clock.now())
        return folder_detail(session, certifier_id, reference)

    return await services.db.run(work)
