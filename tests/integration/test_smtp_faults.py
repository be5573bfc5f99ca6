"""SMTP faults in the middle of a batch: every queued mail ends up delivered exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from stdnum import luhn

from bot.access_requests import send_request
from bot.app import App
from bot.channels.smtp import SmtpChannel
from bot.clock import FrozenClock
from bot.config import Settings
from bot.directory import add_contact, add_organisation, add_partnership
from bot.store.models import Certifier
from tests.integration.test_smtp import Recorder, SmtpServer, outbox_rows, smtp_app, start_server
from tests.support.builders import seed_partnership

BATCH = 8
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ScriptedRecorder(Recorder):
    """Answers message n (1-based, counted over the whole test) as `script` says, else 250."""

    script: dict[int, str] = field(default_factory=dict)
    seen: int = 0
    # When set, message `hold_at` waits for `released` and is then dropped unrecorded.
    hold_at: int | None = None
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    on_fault: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.seen += 1
        if self.seen == self.hold_at:
            self.reached.set()
            await self.released.wait()
            return "451 4.3.0 Nobody left to answer"
        answer = self.script.get(self.seen, "250 OK")
        if answer == "drop":
            # The server dies before answering: no acknowledgement, nothing kept.
            server.transport.close()
            if self.on_fault is not None:
                self.on_fault()
            return "421 4.3.2 Gone"
        self.answer = answer
        return await super().handle_DATA(server, session, envelope)


def message_ids(recorder: Recorder) -> Counter[str]:
    return Counter(str(message["Message-ID"]) for message in recorder.messages)


def seed_partners(app: App, clock: FrozenClock, count: int) -> tuple[int, list[int]]:
    """One certifier and `count` partner organisations, each with a contact."""
    first = seed_partnership(app.db, now=clock.now())

    def work(session: Session) -> list[int]:
        certifier = session.get(Certifier, first.certifier_id)
        assert certifier is not None
        partners = [first.organisation_id]
        for index in range(1, count):
            siren = f"{44306184 + index:08d}"
            base = siren + luhn.calc_check_digit(siren) + "0001"
            siret = base + luhn.calc_check_digit(base)
            organisation = add_organisation(session, f"Organisme {index}", siret, clock.now())
            add_contact(session, organisation, f"contact{index}@of.example", "", "fr", clock.now())
            add_partnership(session, certifier, organisation, list(first.codes), clock.now())
            partners.append(organisation.id)
        return partners

    return first.certifier_id, app.db.run_sync(work)


async def queue_requests(app: App, clock: FrozenClock, count: int) -> None:
    """`count` requests whose mail could not go out yet (the SMTP server was unreachable)."""
    certifier, partners = seed_partners(app, clock, count)
    for partner in partners:
        await send_request(app.engine, certifier=str(certifier), partner=str(partner))
    rows = outbox_rows(app)
    assert len(rows) == count
    assert {row.status for row in rows} == {"pending"}


async def closed_port() -> int:
    probe = await start_server(Recorder())
    await probe.stop()
    return probe.port


def smtp_channel(port: int) -> SmtpChannel:
    return SmtpChannel(
        "127.0.0.1", port, security="none", mail_from="cordee@example.org", timeout=5
    )


async def test_a_server_dying_mid_batch_loses_nothing_and_duplicates_nothing(
    settings: Settings, clock: FrozenClock
) -> None:
    port = await closed_port()
    app = smtp_app(settings, clock, smtp_channel(port))
    recorder = ScriptedRecorder(script={4: "drop"})
    server: SmtpServer | None = None
    try:
        await queue_requests(app, clock, BATCH)
        server = await start_server(recorder, port=port)
        # The listening socket goes with the connection: the rest of the batch finds no server.
        recorder.on_fault = server.server.close
        delivered = await app.engine.deliver(clock.advance(timedelta(minutes=5)))
        assert delivered == 3
        assert len(message_ids(recorder)) == 3
        await server.stop()
        server = await start_server(recorder, port=port)
        delivered = await app.engine.deliver(clock.advance(timedelta(hours=2)))
        assert delivered == BATCH - 3
        assert await app.engine.deliver(clock.advance(timedelta(days=1))) == 0
        rows = outbox_rows(app)
    finally:
        if server is not None:
            await server.stop()
        await app.close()
    assert {row.status for row in rows} == {"sent"}
    assert message_ids(recorder) == Counter({row.message_id: 1 for row in rows})


async def test_421_and_451_answers_mid_batch_are_retried_once_each(
    settings: Settings, clock: FrozenClock
) -> None:
    port = await closed_port()
    app = smtp_app(settings, clock, smtp_channel(port))
    recorder = ScriptedRecorder(
        script={3: "421 4.7.0 Too many messages, closing", 6: "451 4.3.0 Try again later"}
    )
    server = None
    try:
        await queue_requests(app, clock, BATCH)
        server = await start_server(recorder, port=port)
        assert await app.engine.deliver(clock.advance(timedelta(minutes=5))) == BATCH - 2
        retried = [row for row in outbox_rows(app) if row.status == "pending"]
        assert sorted(str(row.last_error)[:3] for row in retried) == ["421", "451"]
        assert await app.engine.deliver(clock.advance(timedelta(hours=2))) == 2
        rows = outbox_rows(app)
    finally:
        if server is not None:
            await server.stop()
        await app.close()
    assert {row.status for row in rows} == {"sent"}
    assert message_ids(recorder) == Counter({row.message_id: 1 for row in rows})


async def test_a_process_killed_mid_batch_delivers_everything_once_after_restart(
    settings: Settings,
) -> None:
    # Real time: the killed process runs `cordee tick` on the system clock.
    clock = FrozenClock(datetime.now(UTC) - timedelta(hours=1))
    port = await closed_port()
    app = smtp_app(settings, clock, smtp_channel(port))
    recorder = ScriptedRecorder(hold_at=5)
    server = await start_server(recorder, port=port)
    try:
        await server.stop()
        await queue_requests(app, clock, BATCH)
        server = await start_server(recorder, port=port)
        assert settings.secret_key is not None
        environment = {
            **os.environ,
            "CORDEE_DATA_DIR": str(settings.data_dir),
            "CORDEE_DATABASE_URL": settings.effective_database_url,
            "CORDEE_SECRET_KEY": settings.secret_key.get_secret_value(),
            "CORDEE_SMTP_HOST": "127.0.0.1",
            "CORDEE_SMTP_PORT": str(port),
            "CORDEE_SMTP_SECURITY": "none",
            # The code under test, whichever checkout the interpreter has installed.
            "PYTHONPATH": str(ROOT),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "tick",
            env=environment,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await asyncio.wait_for(recorder.reached.wait(), 60)
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()
        recorder.released.set()
        assert len(message_ids(recorder)) == 4
        # The restarted process: the interrupted message's lease has run out by now.
        restarted = smtp_app(settings, FrozenClock(datetime.now(UTC)), smtp_channel(port))
        try:
            assert await restarted.engine.deliver(datetime.now(UTC) + timedelta(minutes=10)) == 4
        finally:
            await restarted.close()
        rows = outbox_rows(app)
    finally:
        await server.stop()
        await app.close()
    assert process.returncode == -signal.SIGKILL
    assert {row.status for row in rows} == {"sent"}
    assert message_ids(recorder) == Counter({row.message_id: 1 for row in rows})


async def test_a_mail_is_not_handed_over_before_the_previous_one_is_recorded_as_sent(
    settings: Settings, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database failing while mail 2 is recorded: a fault no real SMTP server produces.
    port = await closed_port()
    app = smtp_app(settings, clock, smtp_channel(port))
    recorder = ScriptedRecorder()
    server: SmtpServer | None = None
    try:
        await queue_requests(app, clock, BATCH)
        server = await start_server(recorder, port=port)
        real_execute = app.db.execute
        records = 0

        async def failing_second_record(statement: Any, parameters: dict[str, Any]) -> None:
            nonlocal records
            records += 1
            if records == 2:
                raise OperationalError("UPDATE outbox", {}, Exception("disk I/O error"))
            await real_execute(statement, parameters)

        monkeypatch.setattr(app.db, "execute", failing_second_record)
        with pytest.raises(OperationalError):
            await app.engine.deliver(clock.advance(timedelta(minutes=5)))
        # Mail 3 had its envelope accepted but never its content: the server holds two mails.
        assert len(message_ids(recorder)) == 2
        monkeypatch.setattr(app.db, "execute", real_execute)
        # Once the lease runs out, the unrecorded mail 2 goes again (at least once), then the rest.
        delivered = await app.engine.deliver(clock.advance(timedelta(minutes=10)))
        rows = outbox_rows(app)
    finally:
        if server is not None:
            await server.stop()
        await app.close()
    assert delivered == BATCH - 1
    assert {row.status for row in rows} == {"sent"}
    received = message_ids(recorder)
    assert sorted(received.values()) == [1] * (BATCH - 1) + [2]
