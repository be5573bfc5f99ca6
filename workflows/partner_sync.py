"""Santé du partage: one per partnership; tells of sync failures once, recovery, and pauses."""

from __future__ import annotations

from enum import StrEnum

from bot.fsm import Role, Send, Transition, Workflow, check, enum_values
from bot.render import template_exists

NAME = "partner_sync"


class State(StrEnum):
    HEALTHY = "healthy"
    FAILING = "failing"


class Event(StrEnum):
    FAIL = "fail"
    RECOVER = "recover"
    PAUSE = "pause"
    RESUME = "resume"
    UPDATE_CREDENTIALS = "update_credentials"


PARTNER, STAFF = Role.PARTNER_CONTACT, Role.CERTIFIER_STAFF
S, E = State, Event


def _tell(message: str) -> tuple[Send, Send]:
    return Send(f"{NAME}/partner/{message}", PARTNER), Send(f"{NAME}/staff/{message}", STAFF)


def _both_states(event: str, effects: tuple[Send, ...]) -> tuple[Transition, ...]:
    """Pausing, resuming and new credentials mean the same whether the source works or not."""
    return tuple(Transition(state, event, state, effects) for state in State)


WORKFLOW = check(
    Workflow(
        name=NAME,
        title="Synchronisation des dossiers d'un partenaire",
        states=enum_values(State),
        events=enum_values(Event),
        initial=S.HEALTHY,
        start_effects=(),
        transitions=(
            # The organisation gets one email asking for new credentials, not one per retry.
            Transition(S.HEALTHY, E.FAIL, S.FAILING, _tell("failing")),
            Transition(S.FAILING, E.FAIL, S.FAILING),
            Transition(S.FAILING, E.RECOVER, S.HEALTHY, _tell("recovered")),
            *_both_states(E.PAUSE, _tell("paused")),
            *_both_states(E.RESUME, _tell("resumed")),
            *_both_states(
                E.UPDATE_CREDENTIALS, (Send(f"{NAME}/staff/credentials_updated", STAFF),)
            ),
        ),
        reference_prefix="PS",
    ),
    template_exists,
)
