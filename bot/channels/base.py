"""The narrow contract every channel fulfils."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.events import Inbound, Outbound, Receipt

Dispatch = Callable[[Inbound], Awaitable[None]]


class Channel(Protocol):
    name: str

    async def send(self, outbound: Outbound) -> Receipt:
        """Deliver one message; raise ChannelUnavailable (retry) or DeliveryFailed (give up)."""
        ...

    async def start(self, dispatch: Dispatch) -> None:
        """Begin listening for inbound messages (no-op for send-only channels)."""
        ...

    async def stop(self) -> None: ...
