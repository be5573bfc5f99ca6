"""Lot de dépôt CDC: one deposit file, from « généré » to the CDC's processing report."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from bot.fsm import Role, Send, Timer, Transition, Workflow, check, enum_values
from bot.render import template_exists

NAME = "cdc_batch"
# A deposited file with no processing report after these delays: the staff are reminded.
NO_REPORT_REMINDERS = (timedelta(days=7), timedelta(days=14))


class State(StrEnum):
    GENERATED = "generated"
    DEPOSITED = "deposited"
    ACKNOWLEDGED = "acknowledged"
    PROCESSED_OK = "processed_ok"
    PROCESSED_KO = "processed_ko"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class Event(StrEnum):
    DEPOSIT = "deposit"
    ACKNOWLEDGE = "acknowledge"
    PROCESS_OK = "process_ok"
    PROCESS_KO = "process_ko"
    REJECT = "reject"
    CANCEL = "cancel"
    REMIND = "remind"


STAFF = Role.CERTIFIER_STAFF
S, E = State, Event
# Waiting for the processing report: the receipt (« accusé de réception ») may come first.
AWAITING_REPORT = (S.DEPOSITED, S.ACKNOWLEDGED)


def _staff(message: str) -> tuple[Send]:
    return (Send(f"{NAME}/staff/{message}", STAFF),)


WORKFLOW = check(
    Workflow(
        name=NAME,
        title="Lot de dépôt à la Caisse des Dépôts",
        states=enum_values(State),
        events=enum_values(Event),
        initial=S.GENERATED,
        # The command that builds the file says what it did: no notice at start.
        start_effects=(),
        transitions=(
            Transition(S.GENERATED, E.DEPOSIT, S.DEPOSITED),
            Transition(S.GENERATED, E.CANCEL, S.CANCELLED),
            Transition(S.DEPOSITED, E.ACKNOWLEDGE, S.ACKNOWLEDGED),
            *(
                transition
                for state in AWAITING_REPORT
                for transition in (
                    Transition(state, E.PROCESS_OK, S.PROCESSED_OK, _staff("processed_ok")),
                    Transition(state, E.PROCESS_KO, S.PROCESSED_KO, _staff("processed_ko")),
                    Transition(state, E.REJECT, S.REJECTED),
                    Transition(state, E.REMIND, state, _staff("no_report")),
                )
            ),
        ),
        timers=(
            *(Timer(S.DEPOSITED, delay, E.REMIND) for delay in NO_REPORT_REMINDERS),
            *(Timer(S.ACKNOWLEDGED, delay, E.REMIND) for delay in NO_REPORT_REMINDERS),
        ),
        terminal=frozenset({S.PROCESSED_OK, S.PROCESSED_KO, S.REJECTED, S.CANCELLED}),
        reference_prefix="LD",
    ),
    template_exists,
)

STATE_LABELS: dict[str, str] = {
    S.GENERATED: "généré, à déposer",
    S.DEPOSITED: "déposé, rapport attendu",
    S.ACKNOWLEDGED: "accusé de réception reçu",
    S.PROCESSED_OK: "traité, tout accepté",
    S.PROCESSED_KO: "traité avec erreurs",
    S.REJECTED: "rejeté par la CDC",
    S.CANCELLED: "abandonné",
}
