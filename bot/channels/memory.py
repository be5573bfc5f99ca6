"""In-memory channel: records a transcript; for tests and dry runs."""

from __future__ import annotations

from bot.channels.base import Dispatch
from bot.errors import ChannelUnavailable
from bot.events import Inbound, Outbound, Receipt


class MemoryChannel:
    def __init__(self, name: str, *, idempotent: bool = False) -> None:
        self.name = name
        # Stands for a channel where a second delivery changes nothing (see Engine.deliver).
        self.idempotent = idempotent
        self.sent: list[Outbound] = []
        self.failures_to_inject = 0
        self._dispatch: Dispatch | None = None

    async def send(self, outbound: Outbound) -> Receipt:
        if self.failures_to_inject > 0:
            self.failures_to_inject -= 1
            raise ChannelUnavailable("panne simulée")
        self.sent.append(outbound)
        return Receipt(self.name, outbound.message_id, "en mémoire")

    async def start(self, dispatch: Dispatch) -> None:
        self._dispatch = dispatch

    async def stop(self) -> None:
        self._dispatch = None

    async def receive(self, inbound: Inbound) -> None:
        """Inject an inbound message as if a person had answered."""
        if self._dispatch is None:
            raise RuntimeError("channel not started")
        await self._dispatch(inbound)
