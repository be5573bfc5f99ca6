"""Échéances de dépôt CDC: one per certifier; carries the deadline reminders to its staff."""

from __future__ import annotations

from enum import StrEnum

from bot.fsm import Role, Send, Transition, Workflow, check, enum_values
from bot.render import template_exists

NAME = "cdc_deposit"


class State(StrEnum):
    WATCHING = "watching"


class Event(StrEnum):
    # Delivered more than 2 months ago and not yet deposited.
    DUE_SOON = "due_soon"
    # The 3-month deadline has passed.
    OVERDUE = "overdue"
    # Passages refused by the CDC, awaiting correction: once a week.
    KO_DIGEST = "ko_digest"


STAFF = Role.CERTIFIER_STAFF
S = State

WORKFLOW = check(
    Workflow(
        name=NAME,
        title="Échéances de dépôt à la Caisse des Dépôts",
        states=enum_values(State),
        events=enum_values(Event),
        initial=S.WATCHING,
        start_effects=(),
        transitions=tuple(
            Transition(S.WATCHING, event, S.WATCHING, (Send(f"{NAME}/staff/{event}", STAFF),))
            for event in Event
        ),
        reference_prefix="EC",
    ),
    template_exists,
)
