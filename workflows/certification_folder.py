"""Dossier de certification: from « à enregistrer » to the jury's result, Wedof's states."""

from __future__ import annotations

from enum import StrEnum

from bot.fsm import Role, Send, Transition, Workflow, check, enum_values
from bot.render import template_exists

NAME = "certification_folder"


class State(StrEnum):
    TO_REGISTER = "toRegister"
    REGISTERED = "registered"
    TO_TAKE = "toTake"
    TO_CONTROL = "toControl"
    SUCCESS = "success"
    FAILED = "failed"
    TO_RETAKE = "toRetake"
    REFUSED = "refused"
    ABORTED = "aborted"


class Event(StrEnum):
    REGISTER = "register"
    TAKE = "take"
    CONTROL = "control"
    SUCCESS = "success"
    FAIL = "fail"
    RETAKE = "retake"
    REFUSE = "refuse"
    ABORT = "abort"


PARTNER, STAFF = Role.PARTNER_CONTACT, Role.CERTIFIER_STAFF
S, E = State, Event


def _result(message: str) -> tuple[Send, Send]:
    """The organisation hears of its trainee's result; the certifier's staff count it."""
    return Send(f"{NAME}/partner/{message}", PARTNER), Send(f"{NAME}/staff/{message}", STAFF)


# Before the exam a folder can still be refused; until its result, it can be abandoned.
REFUSABLE = (S.TO_REGISTER, S.REGISTERED)
ABORTABLE = (S.TO_REGISTER, S.REGISTERED, S.TO_TAKE, S.TO_CONTROL, S.TO_RETAKE)

WORKFLOW = check(
    Workflow(
        name=NAME,
        title="Dossier de certification",
        states=enum_values(State),
        events=enum_values(Event),
        initial=S.TO_REGISTER,
        # Folders are created in bulk by the partner sync: their start must stay silent.
        start_effects=(),
        transitions=(
            Transition(S.TO_REGISTER, E.REGISTER, S.REGISTERED),
            Transition(S.REGISTERED, E.TAKE, S.TO_TAKE),
            Transition(S.TO_TAKE, E.CONTROL, S.TO_CONTROL),
            Transition(S.TO_CONTROL, E.SUCCESS, S.SUCCESS, _result("success")),
            Transition(S.TO_CONTROL, E.FAIL, S.FAILED, _result("failed")),
            Transition(S.TO_CONTROL, E.RETAKE, S.TO_RETAKE),
            Transition(S.TO_RETAKE, E.TAKE, S.TO_TAKE),
            *(Transition(state, E.REFUSE, S.REFUSED) for state in REFUSABLE),
            *(Transition(state, E.ABORT, S.ABORTED) for state in ABORTABLE),
        ),
        terminal=frozenset({S.SUCCESS, S.FAILED, S.REFUSED, S.ABORTED}),
        reference_prefix="DC",
    ),
    template_exists,
)

# What each state is called on screen and in mails.
STATE_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        S.TO_REGISTER: "à enregistrer",
        S.REGISTERED: "enregistré",
        S.TO_TAKE: "prêt à passer",
        S.TO_CONTROL: "à contrôler",
        S.SUCCESS: "réussi",
        S.FAILED: "échoué",
        S.TO_RETAKE: "à repasser",
        S.REFUSED: "refusé",
        S.ABORTED: "abandonné",
    },
    "en": {
        S.TO_REGISTER: "to register",
        S.REGISTERED: "registered",
        S.TO_TAKE: "ready to take",
        S.TO_CONTROL: "to control",
        S.SUCCESS: "passed",
        S.FAILED: "failed",
        S.TO_RETAKE: "to retake",
        S.REFUSED: "refused",
        S.ABORTED: "abandoned",
    },
}


def event_towards(state: str, target: str) -> str | None:
    """The event that moves a folder from `state` to `target`, if the workflow allows it."""
    for transition in WORKFLOW.transitions:
        if transition.source == state and transition.target == target:
            return transition.event
    return None
