"""The tiny workflow DSL: states, transitions, guards, timers and effects as data, checked."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.errors import InvalidTransition, WorkflowDefinitionError


class Role(StrEnum):
    """Who a message is for; the engine picks the channel that reaches them."""

    PARTNER_CONTACT = "partner_contact"
    CERTIFIER_STAFF = "certifier_staff"
    # Whoever wrote the mail being handled, when it is not the invited contact; the address
    # comes with the event and is never stored on the instance.
    REPLY_SENDER = "reply_sender"
    # A trainer invited to an organisation's space (the address is in the instance data).
    TRAINER = "trainer"
    # Whoever invited the trainer: the certifier's staff, or the training organisation's contact.
    INVITER_STAFF = "inviter_staff"


@dataclass(frozen=True)
class Send:
    """Send the message `template` (a `<workflow>/<message>` name) to a role."""

    template: str
    to: Role


@dataclass(frozen=True)
class SetSharing:
    """Switch data sharing of the covered certifications on or off (read by the sync)."""

    enabled: bool


Effect = Send | SetSharing


@dataclass(frozen=True)
class Guard:
    """A named predicate on the instance data; the name appears in diagrams."""

    name: str
    predicate: Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class Transition:
    source: str
    event: str
    target: str
    effects: tuple[Effect, ...] = ()
    guard: Guard | None = None


@dataclass(frozen=True)
class Timer:
    """Fire `event` when the instance has stayed `after` in `state`."""

    state: str
    after: timedelta
    event: str


@dataclass(frozen=True)
class Workflow:
    name: str
    title: str
    states: tuple[str, ...]
    events: tuple[str, ...]
    initial: str
    start_effects: tuple[Effect, ...]
    transitions: tuple[Transition, ...]
    timers: tuple[Timer, ...] = ()
    terminal: frozenset[str] = frozenset()
    # Human-friendly references look like "DA-7KQ2M9XP4R"; the prefix names the workflow.
    reference_prefix: str = "WF"
    # Signed-link actions a person may take from an email, mapped to the event they fire.
    link_actions: Mapping[str, str] = field(default_factory=dict)

    @property
    def templates(self) -> frozenset[str]:
        effects = list(self.start_effects)
        for transition in self.transitions:
            effects.extend(transition.effects)
        return frozenset(effect.template for effect in effects if isinstance(effect, Send))


@dataclass(frozen=True)
class Step:
    """The outcome of one event: where the instance goes and what must happen."""

    source: str
    event: str
    target: str
    effects: tuple[Effect, ...]


def step(workflow: Workflow, state: str, event: str, data: Mapping[str, Any]) -> Step:
    """Pure: apply `event` to an instance in `state`; raise InvalidTransition when not allowed."""
    for transition in workflow.transitions:
        if transition.source != state or transition.event != event:
            continue
        if transition.guard is None or transition.guard.predicate(data):
            return Step(state, event, transition.target, transition.effects)
    raise InvalidTransition(workflow.name, state, event)


def next_timer(
    workflow: Workflow, state: str, entered_at: datetime, after: datetime | None
) -> tuple[datetime, str] | None:
    """The first timer of `state` due strictly after `after` (or at all, when None)."""
    due = sorted(
        (entered_at + timer.after, timer.event) for timer in workflow.timers if timer.state == state
    )
    for due_at, event in due:
        if after is None or due_at > after:
            return due_at, event
    return None


def check(workflow: Workflow, template_exists: Callable[[str], bool] | None = None) -> Workflow:
    """Validate a declaration; raise WorkflowDefinitionError naming the first problem."""
    problems = list(_problems(workflow, template_exists))
    if problems:
        raise WorkflowDefinitionError(f"workflow « {workflow.name} » : " + " ; ".join(problems))
    return workflow


def _problems(workflow: Workflow, template_exists: Callable[[str], bool] | None) -> Iterable[str]:
    states = set(workflow.states)
    events = set(workflow.events)
    if len(states) != len(workflow.states):
        yield "états en double"
    if workflow.initial not in states:
        yield f"état initial inconnu « {workflow.initial} »"
    for terminal in workflow.terminal - states:
        yield f"état final inconnu « {terminal} »"
    seen_unguarded: set[tuple[str, str]] = set()
    for transition in workflow.transitions:
        for end in (transition.source, transition.target):
            if end not in states:
                yield f"transition vers ou depuis un état inconnu « {end} »"
        if transition.event not in events:
            yield f"événement inconnu « {transition.event} »"
        if transition.source in workflow.terminal:
            yield f"l'état final « {transition.source} » a une sortie ({transition.event})"
        if transition.guard is None:
            key = (transition.source, transition.event)
            if key in seen_unguarded:
                yield f"deux transitions sans garde pour ({transition.source}, {transition.event})"
            seen_unguarded.add(key)
    for timer in workflow.timers:
        if timer.state in workflow.terminal:
            yield f"minuterie sur l'état final « {timer.state} »"
        if not any(
            t.source == timer.state and t.event == timer.event for t in workflow.transitions
        ):
            yield f"minuterie « {timer.event} » sans transition depuis « {timer.state} »"
        if timer.after <= timedelta(0):
            yield f"minuterie « {timer.event} » avec un délai nul ou négatif"
    for action, event in workflow.link_actions.items():
        if event not in events:
            yield f"lien « {action} » vers un événement inconnu « {event} »"
    reachable = _reachable(workflow)
    for state in workflow.states:
        if state not in reachable:
            yield f"état inatteignable « {state} »"
        exits = any(t.source == state for t in workflow.transitions)
        if state not in workflow.terminal and not exits:
            yield f"l'état « {state} » n'a pas de sortie et n'est pas final"
    if template_exists is not None:
        for template in sorted(workflow.templates):
            if not template_exists(template):
                yield f"modèle de message manquant « {template} »"


def _reachable(workflow: Workflow) -> set[str]:
    seen = {workflow.initial}
    queue = deque([workflow.initial])
    while queue:
        state = queue.popleft()
        for transition in workflow.transitions:
            if transition.source == state and transition.target not in seen:
                seen.add(transition.target)
                queue.append(transition.target)
    return seen


def mermaid(workflow: Workflow) -> str:
    """A Mermaid state diagram of the declaration (committed beside each workflow)."""
    lines = ["stateDiagram-v2", f"    %% {workflow.title}"]
    lines.append(f"    [*] --> {workflow.initial}")
    delays = {(t.state, t.event): t.after for t in workflow.timers}
    labelled: dict[tuple[str, str], list[str]] = {}
    for transition in workflow.transitions:
        label = transition.event
        if transition.guard is not None:
            label += f" [{transition.guard.name}]"
        timer_delays = sorted(
            _days(t.after)
            for t in workflow.timers
            if t.state == transition.source and t.event == transition.event
        )
        if (transition.source, transition.event) in delays:
            label += " (après " + ", ".join(timer_delays) + ")"
        labelled.setdefault((transition.source, transition.target), []).append(label)
    for (source, target), labels in labelled.items():
        lines.append(f"    {source} --> {target} : {' / '.join(labels)}")
    for terminal in sorted(workflow.terminal):
        lines.append(f"    {terminal} --> [*]")
    return "\n".join(lines) + "\n"


def _days(delta: timedelta) -> str:
    if delta % timedelta(days=1) == timedelta(0):
        return f"{delta.days} j"
    return str(delta)


def enum_values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(member.value for member in enum)
