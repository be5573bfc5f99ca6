"""Frozen dataclasses crossing the line between the pure core and the async edges."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Outbound:
    """A rendered message ready for a channel (`mail` to a person, `staff` to certifier staff)."""

    channel: str
    recipient: str
    language: str
    subject: str
    text: str
    html: str
    message_id: str
    idempotency_key: str
    certifier_id: int | None
    created_at: datetime
    reply_to: str | None = None
    # Block Kit JSON for Slack (the text stays the fallback), when the message has some.
    blocks: str | None = None


@dataclass(frozen=True)
class Receipt:
    channel: str
    message_id: str
    detail: str = ""


@dataclass(frozen=True)
class Inbound:
    """Something a person did, already correlated to a workflow instance by its channel."""

    public_id: str
    event: str
    actor: str
    channel: str


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    from_state: str | None
    event: str
    to_state: str
    actor: str


@dataclass(frozen=True)
class InstanceView:
    """What the edges may show about a workflow instance."""

    id: int
    public_id: str
    workflow: str
    certifier_id: int | None
    partnership_id: int | None
    state: str
    data: dict[str, Any]
    created_at: datetime
    state_entered_at: datetime
    due_at: datetime | None
    due_event: str | None
    # When the current state ends by itself (e.g. a pending request expires); None if never.
    deadline: datetime | None
    terminal: bool
    history: tuple[HistoryEntry, ...] = field(default=())


@dataclass(frozen=True)
class Outcome:
    """Result of firing an event (an impossible event raises InvalidTransition instead)."""

    instance: InstanceView
    previous_state: str
