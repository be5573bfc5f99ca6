"""The workflow DSL: declarations are checked, steps are pure, timers are computed from data."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import InvalidTransition, WorkflowDefinitionError
from bot.fsm import Guard, Role, Send, Timer, Transition, Workflow, check, next_timer, step

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def tiny(**overrides: object) -> Workflow:
    fields: dict[str, object] = {
        "name": "tiny",
        "title": "Tiny",
        "states": ("open", "done"),
        "events": ("close", "nudge"),
        "initial": "open",
        "start_effects": (),
        "transitions": (
            Transition("open", "close", "done"),
            Transition("open", "nudge", "open", (Send("tiny/nudge", Role.PARTNER_CONTACT),)),
        ),
        "timers": (Timer("open", timedelta(days=2), "nudge"),),
        "terminal": frozenset({"done"}),
    }
    fields.update(overrides)
    return Workflow(**fields)  # type: ignore[arg-type]


def test_a_sound_declaration_passes_the_check() -> None:
    assert check(tiny()).name == "tiny"


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"initial": "nowhere"}, "état initial inconnu"),
        ({"states": ("open", "done", "limbo")}, "état inatteignable « limbo »"),
        (
            {
                "transitions": (
                    Transition("open", "close", "done"),
                    Transition("done", "close", "open"),
                )
            },
            "l'état final « done » a une sortie",
        ),
        (
            {
                "transitions": (
                    Transition("open", "close", "done"),
                    Transition("open", "close", "open"),
                    Transition("open", "nudge", "open"),
                )
            },
            "deux transitions sans garde pour (open, close)",
        ),
        (
            {"transitions": (Transition("open", "close", "done"),)},
            "minuterie « nudge » sans transition",
        ),
        ({"terminal": frozenset()}, "« done » n'a pas de sortie et n'est pas final"),
        (
            {"transitions": (Transition("open", "explode", "done"),), "timers": ()},
            "événement inconnu",
        ),
        ({"link_actions": {"go": "teleport"}}, "lien « go » vers un événement inconnu"),
        ({"timers": (Timer("open", timedelta(0), "nudge"),)}, "délai nul ou négatif"),
    ],
)
def test_inconsistent_declarations_fail_at_definition(
    overrides: dict[str, object], problem: str
) -> None:
    with pytest.raises(WorkflowDefinitionError, match=re.escape(problem)):
        check(tiny(**overrides))


def test_a_missing_template_fails_the_check() -> None:
    with pytest.raises(WorkflowDefinitionError, match="modèle de message manquant « tiny/nudge »"):
        check(tiny(), template_exists=lambda name: False)


def test_guarded_transitions_may_share_an_event() -> None:
    big = Guard("big", lambda data: data["size"] > 10)
    workflow = check(
        tiny(
            transitions=(
                Transition("open", "close", "done", guard=big),
                Transition("open", "close", "open"),
                Transition("open", "nudge", "open"),
            )
        )
    )
    assert step(workflow, "open", "close", {"size": 20}).target == "done"
    assert step(workflow, "open", "close", {"size": 1}).target == "open"


def test_step_is_pure_and_refuses_unknown_events() -> None:
    workflow = check(tiny())
    result = step(workflow, "open", "nudge", {})
    assert (result.source, result.target) == ("open", "open")
    assert result.effects == (Send("tiny/nudge", Role.PARTNER_CONTACT),)
    with pytest.raises(InvalidTransition):
        step(workflow, "done", "close", {})


def test_next_timer_walks_the_timers_of_the_state_in_order() -> None:
    workflow = tiny(
        timers=(
            Timer("open", timedelta(days=7), "nudge"),
            Timer("open", timedelta(days=3), "nudge"),
        )
    )
    assert next_timer(workflow, "open", T0, None) == (T0 + timedelta(days=3), "nudge")
    assert next_timer(workflow, "open", T0, T0 + timedelta(days=3)) == (
        T0 + timedelta(days=7),
        "nudge",
    )
    assert next_timer(workflow, "open", T0, T0 + timedelta(days=7)) is None
    assert next_timer(workflow, "done", T0, None) is None
