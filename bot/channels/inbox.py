"""What an inbox hands its messages to: a handler of one message, or of a whole batch."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bot.errors import CordeeError

Handler = Callable[[bytes], Awaitable[object]]
# Per message, in order: True when handled, False when rejected (it is kept for a person).
BatchHandler = Callable[[Sequence[bytes]], Awaitable[Sequence[bool]]]

# What a one-message handler raises for a message it cannot handle; anything else (an
# outage, the process being stopped) leaves the message waiting, to be read again.
REJECTIONS = (CordeeError, ValueError, UnicodeError)


@dataclass(frozen=True)
class Batch:
    """A handler that takes the newly fetched messages `size` at a time.

    A plain Handler gets them one by one, each filed away before the next is handled.
    """

    handle: BatchHandler
    size: int = 1000


MailHandler = Handler | Batch


def batch_size(handler: MailHandler) -> int:
    return handler.size if isinstance(handler, Batch) else 1


async def handle_batch(handler: MailHandler, raws: Sequence[bytes]) -> list[str | None]:
    """Run `handler` on `raws`; per message, None when handled, else why not (for the log:
    an error type, never anything from the message)."""
    if isinstance(handler, Batch):
        return [None if ok else "rejected" for ok in await handler.handle(raws)]
    results: list[str | None] = []
    for raw in raws:
        try:
            await handler(raw)
        except REJECTIONS as error:
            results.append(type(error).__name__)
        else:
            results.append(None)
    return results
