"""Incoming mail from a Maildir (the embedded default): each message handled once, then filed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

from bot.channels.inbox import MailHandler, batch_size, handle_batch
from bot.channels.mail import ensure_maildir

log = logging.getLogger("cordee.inbox")


class MaildirInbox:
    """Reads `new/`; a handled message moves to `cur/` marked seen (`:2,S`), so it is
    never handled twice; one that could not be handled is marked flagged (`:2,F`) for a person
    to look at, instead of failing again at every poll."""

    def __init__(self, directory: Path, poll_seconds: float = 2.0) -> None:
        self.directory = directory
        self.poll_seconds = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def poll(self, handler: MailHandler) -> int:
        """Handle every message waiting in new/; return how many were handled.

        A Batch handler gets them `size` at a time; they are filed once it has returned.
        """
        ensure_maildir(self.directory)
        waiting = sorted(p for p in (self.directory / "new").iterdir() if p.is_file())
        size = batch_size(handler)
        for start in range(0, len(waiting), size):
            paths = waiting[start : start + size]
            raws = await asyncio.to_thread(_read_all, paths)
            for path, problem in zip(paths, await handle_batch(handler, raws), strict=True):
                flag = "S"
                if problem is not None:
                    log.error("inbox: %s could not be handled (%s)", path.name, problem)
                    flag = "F"
                await asyncio.to_thread(
                    path.rename, self.directory / "cur" / f"{path.name}:2,{flag}"
                )
        return len(waiting)

    async def start(self, handler: MailHandler) -> None:
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


def _read_all(paths: Sequence[Path]) -> list[bytes]:
    return [path.read_bytes() for path in paths]
