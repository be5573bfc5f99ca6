"""IDLE to decision on a loopback Dovecot: from a reply's LMTP delivery to its committed decision.

Environment knobs:
  CORDEE_BENCH_IDLE_REPLIES  replies delivered one at a time (default 20)
  CORDEE_BENCH_DIR           where to write the database and Dovecot's files (default: temporary)

Setup, not timed: Dovecot as the integration tests start it (tests/support/dovecot.py), a fresh
SQLite database with N pending access requests and one reply to each, built as mail_ingest builds
them. The app's IMAP inbox comes from its settings, with an hour between polls: only an IDLE push
can bring a reply in time.

Each reply is handed to Dovecot by LMTP; the clock starts when the LMTP session opens. Cordée's
time stops when the app's mail handler returns, the decision committed (and the confirmations
handed to an in-memory channel). The anchor is a bare aioimaplib client on the same mailbox, in
IDLE throughout: its time stops when the EXISTS push of the same delivery arrives. A pause before
each delivery lets the inbox loop return to IDLE; it is not counted.
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from aioimaplib import aioimaplib  # type: ignore[import-untyped]
from sqlalchemy import func, select

from bot.app import build_app
from bot.channels.imap_inbox import ImapInbox
from bot.channels.memory import MemoryChannel
from bot.clock import SystemClock
from bot.store.models import WorkflowInstance
from tests.bench.mail_ingest import (
    CountingChannel,
    bench_settings,
    build_replies,
    decision_for,
    fresh_database,
    print_table,
    seed_directory,
    start_requests,
    temporary_folder,
)
from tests.support.dovecot import (
    BOT,
    PASSWORD,
    Dovecot,
    DovecotUnavailable,
    deliver_by_lmtp,
    dovecot_executable,
    running_dovecot,
)

TARGET_SECONDS = 1.0
# Long enough for the inbox loop to file the previous reply and send IDLE again.
SETTLE_SECONDS = 0.5
WAIT_SECONDS = 30.0
IDLE_SECONDS = 25 * 60.0


class ExistsWatcher:
    """The anchor: a bare aioimaplib client in IDLE, noting when each EXISTS push arrives."""

    def __init__(self, port: int) -> None:
        self.client = aioimaplib.IMAP4("127.0.0.1", port, timeout=WAIT_SECONDS)
        self.pushes: asyncio.Queue[float] = asyncio.Queue()
        self._idle: Any = None
        self._listening: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.client.wait_hello_from_server()
        for response in (
            await self.client.login(BOT, PASSWORD),
            await self.client.select("INBOX"),
        ):
            if response.result != "OK":
                raise RuntimeError("le client IMAP d'ancrage n'a pas pu ouvrir la boîte")
        self._idle = await self.client.idle_start(timeout=IDLE_SECONDS)
        self._listening = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        while True:
            lines = await self.client.wait_server_push(IDLE_SECONDS)
            if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                return
            arrived = time.perf_counter()
            if any(b"EXISTS" in bytes(line) for line in lines if isinstance(line, bytes)):
                self.pushes.put_nowait(arrived)

    def drain(self) -> None:
        while not self.pushes.empty():
            self.pushes.get_nowait()

    async def stop(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            await asyncio.gather(self._listening, return_exceptions=True)
        if self._idle is not None:
            self.client.idle_done()
            await asyncio.wait_for(self._idle, WAIT_SECONDS)
        await asyncio.wait_for(self.client.logout(), WAIT_SECONDS)


@dataclass(frozen=True)
class Sample:
    lmtp: float
    anchor: float
    ours: float
    outcome: str


def _warm_up_mail(sender: str) -> bytes:
    """A mail that answers nothing: both clients see one delivery before the measured ones."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = BOT
    message["Subject"] = "Bonjour"
    message["Date"] = format_datetime(SystemClock().now())
    message["Message-ID"] = "<warm-up@bench.example>"
    message.set_content("Bonjour, une question sans rapport.\n")
    return bytes(message)


async def _deliver_and_wait(
    server: Dovecot,
    sender: str,
    raw: bytes,
    watcher: ExistsWatcher,
    decided: asyncio.Queue[tuple[float, str]],
) -> Sample:
    await asyncio.sleep(SETTLE_SECONDS)
    watcher.drain()
    while not decided.empty():
        decided.get_nowait()
    start = time.perf_counter()
    await asyncio.to_thread(deliver_by_lmtp, server, sender, raw)
    delivered = time.perf_counter()
    pushed = await asyncio.wait_for(watcher.pushes.get(), WAIT_SECONDS)
    handled, outcome = await asyncio.wait_for(decided.get(), WAIT_SECONDS)
    return Sample(delivered - start, pushed - start, handled - start, outcome)


async def _measure(
    folder: Path, server: Dovecot, count: int
) -> tuple[list[Sample], dict[str, int]]:
    url = fresh_database(folder / "idle.db")
    imap = {
        "CORDEE_IMAP_HOST": "127.0.0.1",
        "CORDEE_IMAP_PORT": str(server.imap_port),
        "CORDEE_IMAP_SECURITY": "none",
        "CORDEE_IMAP_USERNAME": BOT,
        "CORDEE_IMAP_PASSWORD": PASSWORD,
        "CORDEE_IMAP_POLL_SECONDS": "3600",
    }
    mail = MemoryChannel("mail")
    app = build_app(
        bench_settings(folder, url, imap),
        channels={"mail": mail, "staff": CountingChannel("staff")},
    )
    assert isinstance(app.inbox, ImapInbox)
    now = SystemClock().now()
    certifier_id, contacts = seed_directory(app.db, count, now)
    requests = await start_requests(app, certifier_id, contacts, mail)
    replies = build_replies(requests, contacts, now + timedelta(hours=2))
    decided: asyncio.Queue[tuple[float, str]] = asyncio.Queue()

    async def handler(raw: bytes) -> object:
        outcome = await app.handle_mail(raw)
        decided.put_nowait((time.perf_counter(), str(outcome)))
        return outcome

    watcher = ExistsWatcher(server.imap_port)
    samples: list[Sample] = []
    try:
        await watcher.start()
        await app.inbox.start(handler)
        first = contacts[0].email
        await _deliver_and_wait(server, first, _warm_up_mail(first), watcher, decided)
        for contact, raw in zip(contacts, replies, strict=True):
            samples.append(await _deliver_and_wait(server, contact.email, raw, watcher, decided))
        await watcher.stop()
        await app.inbox.stop()
        states = app.db.run_sync(
            lambda s: dict(
                s.execute(
                    select(WorkflowInstance.state, func.count()).group_by(WorkflowInstance.state)
                ).all()
            )
        )
    finally:
        await app.close()
    return samples, states


def p95(values: Sequence[float]) -> float:
    """Nearest-rank 95th percentile: with 20 values, the 19th smallest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def main() -> int:
    count = int(os.environ.get("CORDEE_BENCH_IDLE_REPLIES", "20"))
    if dovecot_executable() is None:
        print(
            "Dovecot est introuvable (paquets dovecot-imapd dovecot-lmtpd) : benchmark impossible."
        )
        return 1
    folder, holder = temporary_folder("cordee-bench-idle-")
    print(f"Préparation : Dovecot et {count} demandes en attente dans {folder}…", flush=True)
    try:
        with running_dovecot(folder / "dovecot") as server:
            samples, states = asyncio.run(_measure(folder, server, count))
    except DovecotUnavailable as error:
        print(error)
        return 1
    finally:
        if holder is not None:
            holder.cleanup()
    refusals = sum(1 for index in range(count) if decision_for(index) == "refuse")
    correct = all(s.outcome == "applied" for s in samples) and states == {
        "authorised": count - refusals,
        "refused": refusals,
    }
    anchor = [s.anchor for s in samples]
    ours = [s.ours for s in samples]
    a, o = statistics.median(anchor), statistics.median(ours)
    ok = correct and o <= TARGET_SECONDS
    verdict = "OK" if ok else ("ÉCHEC" if correct else "ÉCHEC (résultat faux)")
    print_table(
        ("cas", "ancre (EXISTS)", "Cordée", "ratio", "p95 ancre / Cordée", "cible", "résultat"),
        [
            (
                f"{count} réponses, IDLE sur Dovecot local",
                f"{a * 1000:.0f} ms",
                f"{o * 1000:.0f} ms",
                f"{o / a:.2f} x",
                f"{p95(anchor) * 1000:.0f} ms / {p95(ours) * 1000:.0f} ms",
                f"médiane ≤ {TARGET_SECONDS * 1000:.0f} ms",
                verdict,
            )
        ],
    )
    lmtp = statistics.median(s.lmtp for s in samples)
    print(
        f"\nMédianes de {count} remises une à une, chronométrées depuis l'ouverture de la session "
        f"LMTP (remise LMTP seule : {lmtp * 1000:.0f} ms). Cordée : jusqu'au retour du "
        "traitement du courriel (décision enregistrée, confirmations remises à un canal en "
        "mémoire) ; ancre : client aioimaplib nu en IDLE sur la même boîte, jusqu'au push EXISTS."
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
