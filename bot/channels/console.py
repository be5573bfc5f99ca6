"""Console channel: staff notifications printed on standard output (the embedded default)."""

from __future__ import annotations

import sys
from typing import TextIO

from bot.channels.base import Dispatch
from bot.clock import paris
from bot.events import Outbound, Receipt


class ConsoleChannel:
    name = "staff"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def send(self, outbound: Outbound) -> Receipt:
        stream = self._stream or sys.stdout
        stamp = paris(outbound.created_at).strftime("%d/%m/%Y %H:%M")
        stream.write(
            f"[Cordée · certificateur {outbound.recipient} · {stamp}] {outbound.subject}\n"
            f"{outbound.text.rstrip()}\n\n"
        )
        stream.flush()
        return Receipt(self.name, outbound.message_id, "console")

    async def start(self, dispatch: Dispatch) -> None:
        return None

    async def stop(self) -> None:
        return None
