"""Reply ingestion on SQLite: N replies parsed, matched and applied, against bare stdlib parsing.

Environment knobs (a quick run: CORDEE_BENCH_REPLIES=1000 CORDEE_BENCH_RUNS=1):
  CORDEE_BENCH_REPLIES  pending requests seeded, one reply each (default 10000)
  CORDEE_BENCH_RUNS     runs per side; the median is kept (default 3)
  CORDEE_BENCH_DIR      where to write the database and the replies (default: a temporary folder)

Setup, not timed, in this process: a fresh migrated SQLite database with N organisations, one
partnership each and one pending access request started through the engine (its mail delivered
to an in-memory channel); then one reply per request, built from that mail the way a mail client
would, written to a file.

Each run is a fresh child process on a fresh copy of that database: it loads the replies, builds
the app with in-memory channels, then times what the app's inboxes do with a backlog: the
replies handed to the batch intake (`handle_replies`, the body of App.handle_mails) in batches of
the inbox batch size (App.mail_handler.size). Timed: parsing every reply, deduplication and
correlation (a few queries per chunk of 200), applying the replies (a chunk's clear answers
together, in one savepoint) with their Message-IDs recorded, the commits, and the delivery of the
resulting mails (a confirmation to the contact and a notice to the staff per reply) to counting
in-memory channels that stand for the embedded defaults: the Maildir outbox (idempotent, its
mails recorded as sent per batch) and the console notifications (recorded one by one). Not
timed: reading the mailbox (Maildir files, IMAP fetch) and filing the messages away. The anchor
child times `email.message_from_bytes` (default policy) + `get_body` + `get_content` over the same
bytes. Peak RSS is the child's own high-water mark (VmHWM, see peak_rss_mb): interpreter,
imports, the N replies held in memory and the intake itself, but not the seeding done by this
process; the child also reports its peak just before the timed loop, so that what the loop adds
shows.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import resource
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from functools import partial
from html import escape
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from stdnum import luhn

from bot.access_requests import send_request
from bot.app import App, build_app
from bot.channels.base import Dispatch
from bot.channels.mail import build_email
from bot.channels.memory import MemoryChannel
from bot.clock import SystemClock
from bot.config import Settings, load_settings
from bot.directory import (
    NewCertifier,
    add_certification,
    add_certifier,
    add_contact,
    add_organisation,
    add_partnership,
    find_certifier,
)
from bot.events import Outbound, Receipt
from bot.mail_intake import handle_replies
from bot.store.db import Database, upgrade
from bot.store.models import WorkflowInstance
from tests.support.builders import CERTIFIER_SIRET

REPO = Path(__file__).resolve().parents[2]
TARGET_PER_SECOND = 500.0
SECRET_KEY = "bench-secret-key-" + "x" * 32
MAIL_FROM = "Cordée <ne-pas-repondre@cordee.localhost>"
CODES = ("RNCP34567", "RS5875")
TITLES = {"RNCP34567": "Développeur web et web mobile", "RS5875": "Gestion de projet agile"}
SEED_CHUNK = 1000

# ------------------------------------------------------------------ shared with the other benches


def bench_settings(
    folder: Path, database_url: str, extra: Mapping[str, str] | None = None
) -> Settings:
    """Settings of every benchmark app: nothing from the developer's environment or cordee.toml."""
    return load_settings(
        {
            "CORDEE_DATA_DIR": str(folder / "var"),
            "CORDEE_DATABASE_URL": database_url,
            "CORDEE_SECRET_KEY": SECRET_KEY,
            "CORDEE_PUBLIC_URL": "http://127.0.0.1:8080",
            "CORDEE_MAIL_FROM": MAIL_FROM,
            **(extra or {}),
        },
        config_file=folder / "absent.toml",
    )


def fresh_database(path: Path) -> str:
    """A new, migrated SQLite database at `path` (replacing any earlier one)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


def copy_database(source: Path, target: Path) -> str:
    """A consistent copy of a SQLite database (its WAL included), as a fresh file."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    return f"sqlite:///{target}"


def organisation_siret(index: int) -> str:
    """The index-th fictitious SIRET with valid Luhn keys (SIREN and SIRET)."""
    siren = f"{index + 1:08d}"
    siren += luhn.calc_check_digit(siren)
    establishment = siren + "0001"
    return establishment + luhn.calc_check_digit(establishment)


@dataclass(frozen=True)
class Invitee:
    """A partner organisation's contact, who receives the request and answers it."""

    organisation_id: int
    name: str
    email: str
    language: str


def seed_directory(db: Database, count: int, now: datetime) -> tuple[int, list[Invitee]]:
    """One certifier, `count` partner organisations with one contact each (a third in English)."""

    def certifier_work(session: Session) -> int:
        certifier = add_certifier(
            session,
            NewCertifier(
                "Certif & Co",
                CERTIFIER_SIRET,
                "12ABC345",
                "MCFCER000123",
                contact_email="partenariats@certif.example",
            ),
            now,
        )
        for code in CODES:
            add_certification(session, code, TITLES[code], [str(certifier.id)])
        return certifier.id

    certifier_id = db.run_sync(certifier_work)

    def chunk_work(session: Session, indexes: range) -> list[Invitee]:
        certifier = find_certifier(session, str(certifier_id))
        made = []
        for index in indexes:
            organisation = add_organisation(
                session, f"Formations {index}", organisation_siret(index), now
            )
            language = "en" if index % 3 == 2 else "fr"
            name = f"Claire Martin {index}"
            address = f"contact{index}@of{index}.example"
            add_contact(session, organisation, address, name, language, now)
            add_partnership(session, certifier, organisation, list(CODES), now)
            made.append(Invitee(organisation.id, name, address, language))
        return made

    contacts: list[Invitee] = []
    for start in range(0, count, SEED_CHUNK):
        indexes = range(start, min(count, start + SEED_CHUNK))
        contacts += db.run_sync(partial(chunk_work, indexes=indexes))
    return certifier_id, contacts


async def start_requests(
    app: App, certifier_id: int, contacts: Sequence[Invitee], mail: MemoryChannel
) -> dict[str, Outbound]:
    """One access request per organisation through the real path; the request mail by address."""
    requests: dict[str, Outbound] = {}
    for contact in contacts:
        await send_request(
            app.engine, certifier=str(certifier_id), partner=str(contact.organisation_id)
        )
        requests[contact.email] = mail.sent[-1]
        mail.sent.clear()  # 10,000 transcripts would only cost memory here
    return requests


ANSWERS = {
    ("fr", "authorise"): ("Oui, j'autorise.", "Bon pour accord.", "D'accord.", "J'accepte."),
    ("fr", "refuse"): ("Non merci.", "Je refuse.", "Nous refusons."),
    ("en", "authorise"): ("Yes, I authorise.", "Approved.", "I agree."),
    ("en", "refuse"): ("No thanks.", "I decline.", "We refuse."),
}
INTRO = {
    "fr": "Le {date}, {sender} a écrit :",
    "en": "On {date}, {sender} wrote:",
}


@dataclass(frozen=True)
class Style:
    """How a mail client writes the reply."""

    html_only: bool = False
    alternative: bool = False
    cte: str = "8bit"
    signature: bool = False


def style_for(index: int) -> Style:
    """Mostly plain 8bit text; some text + HTML, a few HTML-only, a few quoted-printable."""
    kind = index % 20
    if kind == 0:
        return Style(html_only=True)
    if kind == 1:
        return Style(cte="quoted-printable")
    if kind in {2, 3, 4, 5}:
        return Style(alternative=True, cte="quoted-printable" if kind == 5 else "8bit")
    return Style(signature=kind % 3 == 0)


def decision_for(index: int) -> str:
    return "refuse" if index % 4 == 3 else "authorise"


def reply_to(
    original: EmailMessage,
    *,
    sender: str,
    answer: str,
    language: str,
    message_id: str,
    when: datetime,
    style: Style,
) -> bytes:
    """A reply as a mail client writes it: to the Reply-To (else From), threaded, quoting."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = str(original["Reply-To"] or original["From"])
    message["Subject"] = f"RE: {original['Subject']}"
    message["Date"] = format_datetime(when)
    message["Message-ID"] = message_id
    message["In-Reply-To"] = str(original["Message-ID"])
    message["References"] = str(original["Message-ID"])
    intro = INTRO[language].format(
        date=format_datetime(original_date(original)), sender=str(original["From"])
    )
    plain_part = original.get_body(("plain",))
    original_text = plain_part.get_content() if plain_part is not None else ""
    fresh = answer + ("\n\n--\n" + parseaddr(sender)[0] if style.signature else "")
    quoted = "\n".join(f"> {line}" if line else ">" for line in original_text.splitlines())
    text = f"{fresh}\n\n{intro}\n{quoted}\n"
    html = (
        f'<div dir="ltr">{escape(answer)}</div><br><div class="gmail_quote">'
        f'<div dir="ltr" class="gmail_attr">{escape(intro)}<br></div>'
        '<blockquote class="gmail_quote" style="margin:0 0 0 .8ex;border-left:1px #ccc solid">'
        + "<br>\n".join(escape(line) for line in original_text.splitlines())
        + "</blockquote></div>\n"
    )
    if style.html_only:
        message.set_content(html, subtype="html", cte=style.cte)
    else:
        message.set_content(text, cte=style.cte)
        if style.alternative:
            message.add_alternative(html, subtype="html", cte=style.cte)
    return bytes(message)


def original_date(original: EmailMessage) -> datetime:
    value = original["Date"]
    return value.datetime if value is not None else SystemClock().now()


def build_replies(
    requests: dict[str, Outbound], contacts: Sequence[Invitee], when: datetime
) -> list[bytes]:
    replies = []
    for index, contact in enumerate(contacts):
        original = build_email(requests[contact.email], MAIL_FROM)
        choices = ANSWERS[(contact.language, decision_for(index))]
        replies.append(
            reply_to(
                original,
                sender=formataddr((contact.name, contact.email)),
                answer=choices[index % len(choices)],
                language=contact.language,
                message_id=f"<reply-{index}@{contact.email.rpartition('@')[2]}>",
                when=when,
                style=style_for(index),
            )
        )
    return replies


def write_replies(path: Path, replies: Iterable[bytes]) -> None:
    with path.open("wb") as handle:
        for raw in replies:
            handle.write(struct.pack(">I", len(raw)))
            handle.write(raw)


def read_replies(path: Path) -> list[bytes]:
    """The replies, read one by one: the file is never held twice in memory."""
    replies = []
    with path.open("rb") as handle:
        while header := handle.read(4):
            (size,) = struct.unpack(">I", header)
            replies.append(handle.read(size))
    return replies


def peak_rss_mb() -> float:
    """This process's peak RSS since it started (Linux: VmHWM).

    Not ru_maxrss: across fork/vfork + exec, Linux keeps the parent's high-water mark in it,
    so a child started by a big parent would report the parent's memory.
    """
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CountingChannel:
    """In-memory delivery that counts instead of keeping a transcript.

    MemoryChannel would keep 20,000 rendered mails (text and HTML): its transcript, not the
    intake, would then dominate the peak RSS. `idempotent` says which embedded default it
    stands for: the Maildir outbox (idempotent, "sent" recorded per batch) or the console
    notifications (recorded mail by mail).
    """

    def __init__(self, name: str, *, idempotent: bool = False) -> None:
        self.name = name
        self.idempotent = idempotent
        self.count = 0

    async def send(self, outbound: Outbound) -> Receipt:
        self.count += 1
        return Receipt(self.name, outbound.message_id, "en mémoire")

    async def start(self, dispatch: Dispatch) -> None:
        return None

    async def stop(self) -> None:
        return None


@dataclass(frozen=True)
class Run:
    seconds: float
    rss_mb: float
    summary: dict[str, Any]


def measure_child(arguments: list[str]) -> Run:
    """Run `python -m tests.bench.<module> ARGS`; its last output line is a JSON summary."""
    result = subprocess.run(
        [sys.executable, "-m", *arguments], stdout=subprocess.PIPE, cwd=REPO, text=True, check=True
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return Run(float(summary["seconds"]), float(summary["rss_mb"]), summary)


def temporary_folder(prefix: str) -> tuple[Path, tempfile.TemporaryDirectory[str] | None]:
    chosen = os.environ.get("CORDEE_BENCH_DIR")
    holder = None if chosen else tempfile.TemporaryDirectory(prefix=prefix)
    folder = Path(chosen) if chosen else Path(holder.name)  # type: ignore[union-attr]
    folder.mkdir(parents=True, exist_ok=True)
    return folder, holder


def print_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    print()
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for row in rows:
        print(" | ".join(row))


# ------------------------------------------------------------------------------- children


async def _ingest(folder: Path, database_url: str, replies_path: Path) -> dict[str, object]:
    mail, staff = CountingChannel("mail", idempotent=True), CountingChannel("staff")
    app = build_app(bench_settings(folder, database_url), channels={"mail": mail, "staff": staff})
    replies = read_replies(replies_path)
    rss_before = peak_rss_mb()
    outcomes: Counter[str] = Counter()
    size = app.mail_handler.size
    start = time.perf_counter()
    for first in range(0, len(replies), size):
        # What the app's inboxes do with a backlog: hand it to the batch intake `size` messages
        # at a time (App.handle_mails, which calls handle_replies with the app's settings).
        outcomes.update(
            str(outcome)
            for outcome in await handle_replies(
                app.engine,
                replies[first : first + size],
                trusted_authserv_id=app.settings.trusted_authserv_id,
            )
        )
    seconds = time.perf_counter() - start
    rss_peak = peak_rss_mb()
    states = app.db.run_sync(
        lambda s: dict(
            s.execute(
                select(WorkflowInstance.state, func.count()).group_by(WorkflowInstance.state)
            ).all()
        )
    )
    await app.close()
    return {
        "seconds": seconds,
        "replies": len(replies),
        "outcomes": dict(outcomes),
        "states": states,
        "mails": mail.count,
        "staff": staff.count,
        "rss_before_mb": rss_before,
        "rss_mb": rss_peak,
    }


def run_ours(folder: str, database_url: str, replies_path: str) -> int:
    summary = asyncio.run(_ingest(Path(folder), database_url, Path(replies_path)))
    print(json.dumps(summary))
    return 0


def run_anchor(replies_path: str) -> int:
    replies = read_replies(Path(replies_path))
    rss_before = peak_rss_mb()
    characters = 0
    start = time.perf_counter()
    for raw in replies:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(("plain", "html"))
        if body is not None:
            characters += len(body.get_content())
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": seconds,
                "replies": len(replies),
                "characters": characters,
                "rss_before_mb": rss_before,
                "rss_mb": peak_rss_mb(),
            }
        )
    )
    return 0


# ------------------------------------------------------------------------------- parent


async def _prepare(folder: Path, count: int) -> Path:
    """Seed the database and write the replies; returns the replies file."""
    url = fresh_database(folder / "seeded.db")
    mail = MemoryChannel("mail")
    app = build_app(
        bench_settings(folder, url), channels={"mail": mail, "staff": CountingChannel("staff")}
    )
    try:
        now = SystemClock().now()
        certifier_id, contacts = seed_directory(app.db, count, now)
        requests = await start_requests(app, certifier_id, contacts, mail)
    finally:
        await app.close()
    replies_path = folder / "replies.bin"
    write_replies(replies_path, build_replies(requests, contacts, now + timedelta(hours=2)))
    return replies_path


def main() -> int:
    arguments = sys.argv[1:]
    if len(arguments) == 4 and arguments[0] == "--one":
        return run_ours(*arguments[1:])
    if len(arguments) == 2 and arguments[0] == "--anchor":
        return run_anchor(arguments[1])
    count = int(os.environ.get("CORDEE_BENCH_REPLIES", "10000"))
    runs = int(os.environ.get("CORDEE_BENCH_RUNS", "3"))
    folder, holder = temporary_folder("cordee-bench-ingest-")
    try:
        print(f"Préparation : {count} demandes en attente et leurs réponses dans {folder}…")
        started = time.perf_counter()
        replies_path = asyncio.run(_prepare(folder, count))
        print(f"Préparation faite en {time.perf_counter() - started:.0f} s.", flush=True)
        anchor: list[Run] = []
        ours: list[Run] = []
        for run in range(runs):
            anchor.append(measure_child(["tests.bench.mail_ingest", "--anchor", str(replies_path)]))
            url = copy_database(folder / "seeded.db", folder / f"run-{run}.db")
            ours.append(
                measure_child(
                    ["tests.bench.mail_ingest", "--one", str(folder), url, str(replies_path)]
                )
            )
    finally:
        if holder is not None:
            holder.cleanup()
    return report(count, runs, anchor, ours)


def report(count: int, runs: int, anchor: Sequence[Run], ours: Sequence[Run]) -> int:
    refusals = sum(1 for index in range(count) if decision_for(index) == "refuse")
    expected_states = {"authorised": count - refusals, "refused": refusals}
    correct = all(
        r.summary["outcomes"] == {"applied": count}
        and r.summary["states"] == expected_states
        and r.summary["mails"] == count
        and r.summary["staff"] == count
        for r in ours
    )
    a = statistics.median(r.seconds for r in anchor)
    o = statistics.median(r.seconds for r in ours)
    rate = count / o
    rss = max(r.rss_mb for r in ours)
    before = max(float(r.summary["rss_before_mb"]) for r in ours)
    ok = correct and rate >= TARGET_PER_SECOND
    verdict = "OK" if ok else ("ÉCHEC" if correct else "ÉCHEC (résultat faux)")
    print_table(
        ("cas", "ancre", "Cordée", "ratio", "débit", "cible", "RSS max*", "résultat"),
        [
            (
                f"{count} réponses par courriel, SQLite",
                f"{a:.2f} s ({count / a:.0f}/s)",
                f"{o:.2f} s",
                f"{o / a:.2f} x",
                f"{rate:.0f} réponses/s",
                f"≥ {TARGET_PER_SECOND:.0f}/s",
                f"{rss:.0f} Mo (dont {before:.0f} avant la boucle)",
                verdict,
            )
        ],
    )
    print(
        "\n* Pic (VmHWM) du processus enfant qui traite les réponses : interpréteur, imports, "
        f"les {count} réponses en mémoire et le traitement ; pas la préparation de la base."
    )
    print(
        f"Médiane de {runs} exécution(s) par côté ; Cordée : handle_replies par lots de "
        "la taille des boîtes de réception (analyse, dédoublonnage, rapprochement, transition "
        "dans un savepoint, enregistrement du Message-ID, commits, envoi des "
        "courriels produits à des canaux en mémoire qui tiennent lieu de la boîte Maildir et "
        "des notifications console par défaut), sans la lecture de la boîte ni le "
        "classement des messages ; ancre : "
        "email.message_from_bytes(policy=default) + get_body + get_content sur les mêmes octets."
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
