"""Demande d'accès aux dossiers: a certifier asks a partner organisation to share its folders."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from bot.fsm import Role, Send, SetSharing, Timer, Transition, Workflow, check, enum_values
from bot.render import template_exists

NAME = "access_request"


class State(StrEnum):
    PENDING = "pending"
    AUTHORISED = "authorised"
    REFUSED = "refused"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REVOKED = "revoked"


class Event(StrEnum):
    AUTHORISE = "authorise"
    REFUSE = "refuse"
    REMIND = "remind"
    EXPIRE = "expire"
    CANCEL = "cancel"
    REVOKE = "revoke"
    SEND_MANAGE_LINK = "send_manage_link"
    UNCLEAR_REPLY = "unclear_reply"
    OTHER_SENDER_REPLY = "other_sender_reply"


PARTNER, STAFF, SENDER = Role.PARTNER_CONTACT, Role.CERTIFIER_STAFF, Role.REPLY_SENDER


def _tell(partner_message: str, staff_message: str | None = None) -> tuple[Send, Send]:
    """The organisation's contact and the certifier's staff both hear of the event."""
    return (
        Send(f"{NAME}/partner/{partner_message}", PARTNER),
        Send(f"{NAME}/staff/{staff_message or partner_message}", STAFF),
    )


def build(reminders: tuple[timedelta, ...], expiry: timedelta) -> Workflow:
    S, E = State, Event
    return check(
        Workflow(
            name=NAME,
            title="Demande d'accès aux dossiers de formation",
            states=enum_values(State),
            events=enum_values(Event),
            initial=S.PENDING,
            start_effects=_tell("request", "sent"),
            transitions=(
                Transition(S.PENDING, E.REMIND, S.PENDING, _tell("reminder", "reminded")),
                # A reply we could not read as a clear yes or no: a short help, nothing decided.
                Transition(S.PENDING, E.UNCLEAR_REPLY, S.PENDING, (_tell("unclear_reply")[0],)),
                # A reply from a colleague of the contact: they get the links, the staff are told.
                Transition(
                    S.PENDING,
                    E.OTHER_SENDER_REPLY,
                    S.PENDING,
                    (
                        Send(f"{NAME}/partner/other_sender", SENDER),
                        Send(f"{NAME}/staff/other_sender", STAFF),
                    ),
                ),
                Transition(
                    S.PENDING, E.AUTHORISE, S.AUTHORISED, (SetSharing(True), *_tell("authorised"))
                ),
                Transition(S.PENDING, E.REFUSE, S.REFUSED, _tell("refused")),
                Transition(S.PENDING, E.EXPIRE, S.EXPIRED, _tell("expired")),
                Transition(S.PENDING, E.CANCEL, S.CANCELLED, _tell("cancelled")),
                Transition(
                    S.AUTHORISED, E.REVOKE, S.REVOKED, (SetSharing(False), *_tell("revoked"))
                ),
                # A fresh « gérer le partage » link, asked for from an expired one.
                Transition(
                    S.AUTHORISED, E.SEND_MANAGE_LINK, S.AUTHORISED, (_tell("manage_link")[0],)
                ),
            ),
            timers=(
                *(Timer(S.PENDING, delay, E.REMIND) for delay in reminders if delay < expiry),
                Timer(S.PENDING, expiry, E.EXPIRE),
            ),
            terminal=frozenset({S.REFUSED, S.EXPIRED, S.CANCELLED, S.REVOKED}),
            reference_prefix="DA",
            link_actions={"authorise": E.AUTHORISE, "refuse": E.REFUSE, "manage": E.REVOKE},
        ),
        template_exists,
    )


WORKFLOW = build(reminders=(timedelta(days=3), timedelta(days=7)), expiry=timedelta(days=30))
