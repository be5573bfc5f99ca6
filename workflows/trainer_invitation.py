"""A trainer's invitation to an organisation's trainer space: sent, reminded, accepted or not."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from bot.fsm import Role, Send, Timer, Transition, Workflow, check, enum_values
from bot.render import template_exists

NAME = "trainer_invitation"
DEFAULT_EXPIRY = timedelta(days=14)


class State(StrEnum):
    INVITED = "invited"
    ACCEPTED = "accepted"
    EXPIRED = "expired"
    REVOKED = "revoked"


class Event(StrEnum):
    RESEND = "resend"
    REMIND = "remind"
    ACCEPT = "accept"
    EXPIRE = "expire"
    REVOKE = "revoke"


# Shown to staff as the trainer's state in an organisation; « not invited » has no instance.
STATE_LABELS = {
    "fr": {
        "not_invited": "non invité",
        State.INVITED: "invité",
        State.ACCEPTED: "accepté",
        State.EXPIRED: "expiré",
        State.REVOKED: "révoqué",
    },
    "en": {
        "not_invited": "not invited",
        State.INVITED: "invited",
        State.ACCEPTED: "accepted",
        State.EXPIRED: "expired",
        State.REVOKED: "revoked",
    },
}

TRAINER, STAFF = Role.TRAINER, Role.INVITER_STAFF


def _to_trainer(message: str) -> Send:
    return Send(f"{NAME}/trainer/{message}", TRAINER)


def _to_staff(message: str) -> Send:
    return Send(f"{NAME}/staff/{message}", STAFF)


def build(reminders: tuple[timedelta, ...], expiry: timedelta) -> Workflow:
    S, E = State, Event
    return check(
        Workflow(
            name=NAME,
            title="Invitation d'un formateur",
            states=enum_values(State),
            events=enum_values(Event),
            initial=S.INVITED,
            start_effects=(_to_trainer("invitation"),),
            transitions=(
                # A new link: the previous one stops working (bot.trainers renews the nonce).
                Transition(S.INVITED, E.RESEND, S.INVITED, (_to_trainer("invitation"),)),
                Transition(S.INVITED, E.REMIND, S.INVITED, (_to_trainer("reminder"),)),
                Transition(S.INVITED, E.ACCEPT, S.ACCEPTED, (_to_staff("accepted"),)),
                Transition(S.INVITED, E.EXPIRE, S.EXPIRED, (_to_staff("expired"),)),
                Transition(S.INVITED, E.REVOKE, S.REVOKED),
                Transition(S.ACCEPTED, E.REVOKE, S.REVOKED, (_to_trainer("revoked"),)),
            ),
            timers=(
                *(Timer(S.INVITED, delay, E.REMIND) for delay in reminders if delay < expiry),
                Timer(S.INVITED, expiry, E.EXPIRE),
            ),
            terminal=frozenset({S.EXPIRED, S.REVOKED}),
            reference_prefix="IF",
        ),
        template_exists,
    )


WORKFLOW = build(reminders=(timedelta(days=3), timedelta(days=7)), expiry=DEFAULT_EXPIRY)
