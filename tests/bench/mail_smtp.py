"""Outgoing mail over SMTP: the outbox delivered by the engine, against a bare aiosmtplib loop.

Environment knobs (a quick run: CORDEE_BENCH_MAILS=200 CORDEE_BENCH_RUNS=1):
  CORDEE_BENCH_MAILS  access requests whose mail waits in the outbox (default 1000)
  CORDEE_BENCH_RUNS   runs per side; the median is kept (default 3)
  CORDEE_BENCH_DIR    where to write the databases (default: a temporary folder)

Setup, not timed: N access requests started through the engine on a fresh SQLite database (their
mails delivered to an in-memory channel), then, in a copy of that database for each run, the N
request mails put back in the outbox as never sent: the rows the real path wrote, due now.

Cordée: `engine.deliver()` with the real SmtpChannel, until the outbox is empty, then QUIT.
Anchor (the issue's): one aiosmtplib connection, `send_message` of the same N messages, built
beforehand with `build_email` (so the anchor does not pay for building them), QUIT.
Raw loop (stricter, for information): one connection, `sendmail` of the same N messages as bytes
flattened beforehand (paying neither for building nor for flattening), same envelope, QUIT.
All three talk to the same aiosmtpd Controller on 127.0.0.1 (port chosen by the OS) that accepts
and discards, run in a child process as a real server would be (see ServerProcess); they
alternate, run after run. The table also gives the CPU time of this process (the client side)
over the timed part, steadier than wall time on a busy machine.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import aiosmtplib
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from bot.app import build_app
from bot.channels.mail import build_email, email_bytes
from bot.channels.memory import MemoryChannel
from bot.channels.smtp import SmtpChannel
from bot.clock import SystemClock
from bot.store.models import OutboxMessage
from tests.bench.mail_ingest import (
    MAIL_FROM,
    CountingChannel,
    bench_settings,
    copy_database,
    fresh_database,
    print_table,
    seed_directory,
    start_requests,
    temporary_folder,
)

REPO = Path(__file__).resolve().parents[2]
TARGET_RATIO = 1.3


class Discard:
    """aiosmtpd handler: accept every message, keep only a count."""

    def __init__(self) -> None:
        self.accepted = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.accepted += 1
        return "250 OK"


class LoopbackController(Controller):
    """aiosmtpd's Controller on a port chosen by the OS (it would probe port 0 otherwise)."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


def serve() -> int:
    """Child process: an aiosmtpd server; prints its port, answers `count`, stops at EOF."""
    handler = Discard()
    controller = LoopbackController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        print(controller.port, flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                print(handler.accepted, flush=True)
    finally:
        controller.stop()
    return 0


class ServerProcess:
    """The SMTP server in its own process, as a real one would be.

    In a thread of this process it would compete for the GIL with the client being measured,
    and each side's CPU time would show up in the other's latency.
    """

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.mail_smtp", "--server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO,
            text=True,
        )
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._stdin, self._stdout = self._process.stdin, self._process.stdout
        self.port = int(self._stdout.readline())

    @property
    def accepted(self) -> int:
        self._stdin.write("count\n")
        self._stdin.flush()
        return int(self._stdout.readline())

    def close(self) -> None:
        self._stdin.close()
        self._process.wait(timeout=30)


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu: float  # of this process (the client side), all threads
    accepted: int
    recorded: int


@dataclass(frozen=True)
class Prepared:
    message: EmailMessage
    recipient: str
    data: bytes


async def _prepare(folder: Path, count: int) -> list[Prepared]:
    """Seed the database; returns the request mails as the anchor will send them."""
    url = fresh_database(folder / "seeded.db")
    mail = MemoryChannel("mail")
    app = build_app(
        bench_settings(folder, url), channels={"mail": mail, "staff": CountingChannel("staff")}
    )
    try:
        certifier_id, contacts = seed_directory(app.db, count, SystemClock().now())
        requests = await start_requests(app, certifier_id, contacts, mail)
    finally:
        await app.close()
    return [
        Prepared(
            build_email(outbound, MAIL_FROM),
            outbound.recipient,
            email_bytes(outbound, MAIL_FROM),
        )
        for outbound in requests.values()
    ]


def _requeue(database: Path) -> int:
    """Put every mail to a partner back in the outbox, due now, as if never sent."""
    with closing(sqlite3.connect(database)) as connection, connection:
        cursor = connection.execute(
            "UPDATE outbox SET status = 'pending', attempts = 0, sent_at = NULL, "
            "last_error = NULL, next_attempt_at = created_at WHERE channel = 'mail'"
        )
        return cursor.rowcount


async def _ours(folder: Path, run: int, server: ServerProcess, count: int) -> Run:
    database = folder / f"run-{run}.db"
    url = copy_database(folder / "seeded.db", database)
    if _requeue(database) != count:
        raise RuntimeError("la copie de la base n'a pas le nombre de courriels attendu")
    channel = SmtpChannel("127.0.0.1", server.port, security="none", mail_from=MAIL_FROM)
    app = build_app(
        bench_settings(folder, url),
        channels={"mail": channel, "staff": CountingChannel("staff")},
    )
    try:
        app.db.run_sync(lambda s: s.execute(select(1)))  # the pool's connection, opened once
        before = server.accepted
        start, cpu = time.perf_counter(), time.process_time()
        await app.engine.deliver()
        await channel.stop()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        recorded = app.db.run_sync(
            lambda s: s.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.channel == "mail", OutboxMessage.status == "sent")
            )
        )
    finally:
        await app.close()
    return Run(seconds, cpu, server.accepted - before, int(recorded or 0))


async def _anchor(server: ServerProcess, messages: Sequence[Prepared], *, raw: bool) -> Run:
    before = server.accepted
    start, cpu = time.perf_counter(), time.process_time()
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, start_tls=False, use_tls=False)
    await client.connect()
    sender = parseaddr(MAIL_FROM)[1]
    for prepared in messages:
        if raw:
            await client.sendmail(
                sender, [prepared.recipient], prepared.data, mail_options=["BODY=8BITMIME"]
            )
        else:
            await client.send_message(prepared.message)
    await client.quit()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    accepted = server.accepted - before
    return Run(seconds, cpu, accepted, accepted)


async def _measure(folder: Path, count: int, runs: int) -> dict[str, list[Run]]:
    print(f"Préparation : {count} demandes d'accès dans {folder}…", flush=True)
    started = time.perf_counter()
    messages = await _prepare(folder, count)
    print(f"Préparation faite en {time.perf_counter() - started:.0f} s.", flush=True)
    server = ServerProcess()
    measured: dict[str, list[Run]] = {"anchor": [], "raw": [], "ours": []}
    try:
        for run in range(runs):
            measured["anchor"].append(await _anchor(server, messages, raw=False))
            measured["raw"].append(await _anchor(server, messages, raw=True))
            measured["ours"].append(await _ours(folder, run, server, count))
    finally:
        server.close()
    return measured


def main() -> int:
    if sys.argv[1:] == ["--server"]:
        return serve()
    count = int(os.environ.get("CORDEE_BENCH_MAILS", "1000"))
    runs = int(os.environ.get("CORDEE_BENCH_RUNS", "3"))
    folder, holder = temporary_folder("cordee-bench-smtp-")
    try:
        measured = asyncio.run(_measure(folder, count, runs))
    finally:
        if holder is not None:
            holder.cleanup()
    every = [run for runs_of_one in measured.values() for run in runs_of_one]
    correct = all(r.accepted == count and r.recorded == count for r in every)
    seconds = {side: statistics.median(r.seconds for r in measured[side]) for side in measured}
    cpu = {side: statistics.median(r.cpu for r in measured[side]) for side in measured}
    ours = seconds["ours"]
    ok = correct and ours / seconds["anchor"] <= TARGET_RATIO
    verdict = "OK" if ok else ("ÉCHEC" if correct else "ÉCHEC (résultat faux)")
    rows = [
        (
            f"{count} courriels, ancre send_message (cible)",
            f"{seconds['anchor']:.2f} s",
            f"{ours:.2f} s ({count / ours:.0f}/s)",
            f"{ours / seconds['anchor']:.2f} x",
            f"≤ {TARGET_RATIO:.2f} x",
            f"{cpu['anchor']:.2f} s / {cpu['ours']:.2f} s",
            verdict,
        ),
        (
            f"{count} courriels, boucle brute sendmail (info)",
            f"{seconds['raw']:.2f} s",
            f"{ours:.2f} s",
            f"{ours / seconds['raw']:.2f} x",
            "—",
            f"{cpu['raw']:.2f} s / {cpu['ours']:.2f} s",
            "—",
        ),
    ]
    print_table(
        ("cas", "ancre", "Cordée", "ratio", "cible", "CPU client* ancre / Cordée", "résultat"),
        rows,
    )
    print("\n* Temps CPU de ce processus, serveur SMTP exclu (aiosmtpd dans un autre processus).")
    print(
        f"Médiane de {runs} exécution(s) par côté, alternées. Cordée : engine.deliver() avec "
        "SmtpChannel (construction MIME, envoi, état « envoyé » enregistré en base SQLite avant "
        "le courriel suivant) puis QUIT. Ancre : une connexion aiosmtplib, send_message des mêmes "
        "messages déjà construits, QUIT. Boucle brute : sendmail des mêmes octets déjà aplatis."
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
