"""The access-request declaration: every transition, effects, timers, the committed diagram."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.errors import InvalidTransition
from bot.fsm import Role, Send, SetSharing, mermaid, next_timer, step
from workflows.access_request import WORKFLOW, Event, State, build

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 23, 9, tzinfo=UTC)

ALLOWED = {
    (State.PENDING, Event.REMIND): State.PENDING,
    (State.PENDING, Event.AUTHORISE): State.AUTHORISED,
    (State.PENDING, Event.REFUSE): State.REFUSED,
    (State.PENDING, Event.EXPIRE): State.EXPIRED,
    (State.PENDING, Event.CANCEL): State.CANCELLED,
    (State.AUTHORISED, Event.REVOKE): State.REVOKED,
    (State.AUTHORISED, Event.SEND_MANAGE_LINK): State.AUTHORISED,
    (State.PENDING, Event.UNCLEAR_REPLY): State.PENDING,
    (State.PENDING, Event.OTHER_SENDER_REPLY): State.PENDING,
}
PARTNER_ONLY = {Event.SEND_MANAGE_LINK, Event.UNCLEAR_REPLY, Event.OTHER_SENDER_REPLY}
DECISIONS = [pair for pair in ALLOWED if pair[1] not in PARTNER_ONLY]


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("event", list(Event))
def test_every_state_event_pair(state: State, event: Event) -> None:
    expected = ALLOWED.get((state, event))
    if expected is None:
        with pytest.raises(InvalidTransition):
            step(WORKFLOW, state, event, {})
    else:
        assert step(WORKFLOW, state, event, {}).target == expected


def test_starting_emails_the_partner_and_tells_the_staff() -> None:
    assert WORKFLOW.initial == State.PENDING
    assert WORKFLOW.start_effects == (
        Send("access_request/partner/request", Role.PARTNER_CONTACT),
        Send("access_request/staff/sent", Role.CERTIFIER_STAFF),
    )


def test_authorising_enables_sharing_and_revoking_disables_it() -> None:
    authorised = step(WORKFLOW, State.PENDING, Event.AUTHORISE, {})
    assert SetSharing(True) in authorised.effects
    revoked = step(WORKFLOW, State.AUTHORISED, Event.REVOKE, {})
    assert SetSharing(False) in revoked.effects
    refused = step(WORKFLOW, State.PENDING, Event.REFUSE, {})
    assert not any(isinstance(effect, SetSharing) for effect in refused.effects)


@pytest.mark.parametrize(("state", "event"), DECISIONS)
def test_every_outcome_reaches_both_the_partner_and_the_staff(state: State, event: Event) -> None:
    roles = {e.to for e in step(WORKFLOW, state, event, {}).effects if isinstance(e, Send)}
    assert roles == {Role.PARTNER_CONTACT, Role.CERTIFIER_STAFF}


def test_a_fresh_manage_link_goes_to_the_partner_only_and_changes_nothing() -> None:
    result = step(WORKFLOW, State.AUTHORISED, Event.SEND_MANAGE_LINK, {})
    assert result.target == State.AUTHORISED
    assert result.effects == (Send("access_request/partner/manage_link", Role.PARTNER_CONTACT),)


def test_an_unclear_reply_gets_help_and_decides_nothing() -> None:
    result = step(WORKFLOW, State.PENDING, Event.UNCLEAR_REPLY, {})
    assert result.target == State.PENDING
    assert result.effects == (Send("access_request/partner/unclear_reply", Role.PARTNER_CONTACT),)


def test_a_reply_from_a_colleague_answers_them_and_tells_the_staff_without_deciding() -> None:
    result = step(WORKFLOW, State.PENDING, Event.OTHER_SENDER_REPLY, {})
    assert result.target == State.PENDING
    assert result.effects == (
        Send("access_request/partner/other_sender", Role.REPLY_SENDER),
        Send("access_request/staff/other_sender", Role.CERTIFIER_STAFF),
    )
    assert not any(isinstance(effect, SetSharing) for effect in result.effects)


def test_default_timers_remind_after_3_and_7_days_and_expire_after_30() -> None:
    schedule = []
    after = None
    while (upcoming := next_timer(WORKFLOW, State.PENDING, T0, after)) is not None:
        schedule.append(((upcoming[0] - T0).days, upcoming[1]))
        after = upcoming[0]
    assert schedule == [(3, Event.REMIND), (7, Event.REMIND), (30, Event.EXPIRE)]


def test_delays_come_from_settings_and_reminders_after_expiry_are_dropped() -> None:
    workflow = build(reminders=(timedelta(days=1), timedelta(days=20)), expiry=timedelta(days=10))
    assert [(t.after.days, t.event) for t in workflow.timers] == [(1, "remind"), (10, "expire")]


def test_terminal_states_have_no_timers() -> None:
    assert all(timer.state not in WORKFLOW.terminal for timer in WORKFLOW.timers)


def test_committed_diagram_matches_the_declaration() -> None:
    committed = (ROOT / "workflows" / "access_request.mmd").read_text(encoding="utf-8")
    assert committed == mermaid(WORKFLOW), "run `make diagrams` and commit workflows/*.mmd"
