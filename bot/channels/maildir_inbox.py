"""Incoming mail from a Maildir (the embedded default): each message handled once, then filed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.channels.mail import ensure_maildir
from bot.errors import CordeeError

log = logging.getLogger("cordee.inbox")

Handler = Callable[[bytes], Awaitable[object]]


class MaildirInbox:
    """Reads `new/`; a handled message moves to `cur/` marked seen (`:2,S`), so it is
    never handled twice; one that could not be handled is marked flagged (`:2,F`) for a person
    to look at, instead of failing again at every poll."""

    def __init__(self, directory: Path, poll_seconds: float = 2.0) -> None:
        self.directory = directory
        self.poll_seconds = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def poll(self, handler: Handler) -> int:
        """Handle every message waiting in new/; return how many were handled."""
        ensure_maildir(self.directory)
        waiting = sorted(p for p in (self.directory / "new").iterdir() if p.is_file())
        for path in waiting:
            flag = "S"
            try:
                await handler(await asyncio.to_thread(path.read_bytes))
            except (CordeeError, ValueError, UnicodeError) as error:
                log.error("inbox: %s could not be handled (%s)", path.name, type(error).__name__)
                flag = "F"
            await asyncio.to_thread(path.rename, self.directory / "cur" / f"{path.name}:2,{flag}")
        return len(waiting)

    async def start(self, handler: Handler) -> None:
        self._stopping.clear()

        async def loop() -> None:
            while not self._stopping.is_set():
                await self.poll(handler)
                # Sleep, but wake at once when asked to stop.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.poll_seconds)

        self._task = asyncio.create_task(loop())

    async def stop(self) -> None:
        """Let a message being handled finish (never abandon its transaction), then stop."""
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
