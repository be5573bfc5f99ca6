"""Timers survive a restart: a reminder still fires when a new process takes over the database."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.access_requests import send_request
from bot.app import build_app
from bot.channels.memory import MemoryChannel
from bot.clock import FrozenClock
from bot.config import Settings
from tests.conftest import T0
from tests.support.builders import seed_partnership


async def wait_for(predicate: object, seconds: float = 10.0) -> bool:
    assert callable(predicate)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())


async def test_reminder_fires_after_the_process_restarts(settings: Settings) -> None:
    first_mail, first_staff = MemoryChannel("mail"), MemoryChannel("staff")
    first = build_app(
        settings, clock=FrozenClock(T0), channels={"mail": first_mail, "staff": first_staff}
    )
    seed = seed_partnership(first.db, now=T0)
    view = await send_request(
        first.engine, certifier=str(seed.certifier_id), partner=str(seed.organisation_id)
    )
    await first.close()
    assert len(first_mail.sent) == 1

    # A new process, four days later, with nothing in memory but the database.
    quick = settings.model_copy(update={"tick_seconds": 0.05})
    later = FrozenClock(T0 + timedelta(days=4))
    mail, staff = MemoryChannel("mail"), MemoryChannel("staff")
    second = build_app(quick, clock=later, channels={"mail": mail, "staff": staff})
    try:
        await second.serve(host="127.0.0.1", port=0)
        assert await wait_for(lambda: len(mail.sent) == 1), (
            "the scheduler did not fire the reminder"
        )
        reminder = mail.sent[0]
        assert reminder.recipient == seed.contact_email
        assert view.public_id in reminder.text
        restarted = await second.engine.view(view.public_id, history=True)
        assert [entry.event for entry in restarted.history] == ["start", "remind"]
        assert restarted.due_at == T0 + timedelta(days=7)
    finally:
        await second.close()
