"""The narrow contract every channel fulfils."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, cast, runtime_checkable

from bot.events import Inbound, Outbound, Receipt

Dispatch = Callable[[Inbound], Awaitable[None]]


class Channel(Protocol):
    """A way to reach people.

    A channel may also declare `idempotent = True` when delivering the same message twice
    changes nothing: the engine then records its sends per batch.
    """

    name: str

    async def send(self, outbound: Outbound) -> Receipt:
        """Deliver one message; raise ChannelUnavailable (retry) or DeliveryFailed (give up)."""
        ...

    async def start(self, dispatch: Dispatch) -> None:
        """Begin listening for inbound messages (no-op for send-only channels)."""
        ...

    async def stop(self) -> None: ...


@runtime_checkable
class Pipelining(Protocol):
    """A channel that overlaps its work on one message with the engine's work on the next.

    prepare() builds the next message while the current one is on the wire; send() awaits
    `after` (the previous message's « sent » record) only at the moment it hands the new one
    over, so that database write overlaps with the network exchange.
    """

    def prepare(self, outbound: Outbound) -> None:
        """Best effort, never raises: send() does the work itself when this did not."""
        ...

    async def send(self, outbound: Outbound, *, after: Awaitable[None] | None = None) -> Receipt:
        """Like Channel.send; `after` must have completed before the message is handed over."""
        ...


_PIPELINING_TYPES: dict[type, bool] = {}


def as_pipelining(channel: object) -> Pipelining | None:
    """The channel as a Pipelining one, or None.

    Checked once per channel class: a runtime protocol check costs tens of microseconds, paid
    for every mail otherwise.
    """
    kind = type(channel)
    known = _PIPELINING_TYPES.get(kind)
    if known is None:
        known = _PIPELINING_TYPES[kind] = isinstance(channel, Pipelining)
    return cast(Pipelining, channel) if known else None
