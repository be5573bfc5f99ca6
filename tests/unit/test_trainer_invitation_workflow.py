"""The trainer invitation workflow as data: its states, timers, committed diagram, text tags."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.errors import InvalidInput, InvalidTransition
from bot.fsm import mermaid, step
from bot.invitation_text import check, fill, problems
from workflows.trainer_invitation import WORKFLOW, Event, State

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_diagram_matches_the_declaration() -> None:
    committed = (ROOT / "workflows" / "trainer_invitation.mmd").read_text(encoding="utf-8")
    assert committed == mermaid(WORKFLOW), "run `make diagrams` and commit workflows/*.mmd"


def test_an_invitation_is_accepted_once_and_a_revoked_one_is_final() -> None:
    accepted = step(WORKFLOW, State.INVITED, Event.ACCEPT, {})
    assert accepted.target == State.ACCEPTED
    with pytest.raises(InvalidTransition):
        step(WORKFLOW, State.ACCEPTED, Event.ACCEPT, {})
    assert step(WORKFLOW, State.ACCEPTED, Event.REVOKE, {}).target == State.REVOKED
    for event in Event:
        with pytest.raises(InvalidTransition):
            step(WORKFLOW, State.REVOKED, event, {})


def test_reminders_come_after_3_and_7_days_and_expiry_after_14() -> None:
    timers = sorted((t.after, t.event) for t in WORKFLOW.timers if t.state == State.INVITED)
    assert timers == [
        (timedelta(days=3), Event.REMIND),
        (timedelta(days=7), Event.REMIND),
        (timedelta(days=14), Event.EXPIRE),
    ]


def test_only_the_allowed_tags_are_accepted_with_the_position_of_the_first_unknown() -> None:
    check("Invitation de {organisme}", "Bonjour {prenom} {nom},\n{lien} avant le {date_expiration}")
    with pytest.raises(InvalidInput, match=r"« \{societe\} » dans le texte, ligne 2, colonne 6"):
        check("Invitation", "Bonjour,\nChez {societe} :")
    assert [(p.tag, p.column) for p in problems("{prenom} {x} {")] == [("{x}", 10), ("{", 14)]
    assert fill("{prenom} {__class__} {lien}", {"prenom": "Anne", "lien": "L"}) == (
        "Anne {__class__} L"
    )
