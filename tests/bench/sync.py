"""Partner folder sync into SQLite: 100,000 folders from a CSV export and from a REST API.

Targets (issue 6): initial sync ≥ 5,000 folders/s from either source; incremental sync of
1,000 changed folders among 100,000 ≤ 2 s; peak RSS ≤ 300 MB. The anchor, measured in the same
run and alternating with Cordée, is a raw SQLAlchemy Core bulk insert (executemany, as many
rows per transaction as Cordée) of the same rows into a table of the same columns: the ratio
says what the sharing rules, the parsing, the idempotence and the audit trail cost on top of
bare inserts.

Environment knobs (a quick run: CORDEE_BENCH_FOLDERS=20000 CORDEE_BENCH_RUNS=1):
  CORDEE_BENCH_FOLDERS  folders in the export and behind the API (default 100000)
  CORDEE_BENCH_CHANGED  folders changed for the incremental runs (default 1000)
  CORDEE_BENCH_RUNS     runs per case; the median is kept (default 3)
  CORDEE_BENCH_DIR      where to write files and databases (default: a temporary directory)

Each measurement is a fresh child process (`--child CASE DIR [PORT]`); its peak RSS comes from
os.wait4. The fake API is another child process (`--serve`), so its memory is not counted.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.sync.run import BATCH_SIZE

REPO = Path(__file__).resolve().parents[2]
# The anchor writes as many rows per transaction as Cordée does.
BATCH = BATCH_SIZE
RATE_TARGET = 5000.0
INCREMENTAL_TARGET_S = 2.0
RSS_TARGET_MB = 300.0
API_KEY = "bench-api-key"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
HEADER = (
    "N° du dossier;Nom;Prénom;Courriel;Téléphone;Certification;Date de début;Date de fin;"
    "État;Date de l'état;Prix TTC;Notes internes"
)


# ------------------------------------------------------------------ the data


def is_changed(index: int, total: int, changed: int) -> bool:
    """`changed` folders spread evenly among `total`."""
    step = max(1, total // changed) if changed else 0
    return step > 0 and index % step == 0 and index // step < changed


def folder(index: int, changed: bool) -> dict[str, Any]:
    """The same folder for the CSV, the API and the anchor (changed: now in training)."""
    return {
        "number": f"EDOF{index:09d}",
        "last_name": f"Nom{index}",
        "first_name": f"Prénom{index % 977}",
        "email": f"stagiaire{index}@example.org",
        "phone": f"06{index % 100_000_000:08d}",
        "code": "RNCP34567" if index % 3 else "RS5875",
        "start": date(2026, 1 + index % 12, 1 + index % 28),
        "end": date(2026, 1 + index % 12, 1 + index % 28) + timedelta(days=90),
        "state": "inTraining" if changed else "accepted",
        "state_on": date(2025, 12, 1 + index % 28),
    }


def write_csv(path: Path, total: int, changed: int) -> None:
    labels = {"accepted": "Accepté", "inTraining": "En formation"}
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(HEADER + "\n")
        for index in range(total):
            f = folder(index, is_changed(index, total, changed))
            handle.write(
                f"{f['number']};{f['last_name']};{f['first_name']};{f['email']};{f['phone']};"
                f"{f['code']};{f['start']:%d/%m/%Y};{f['end']:%d/%m/%Y};{labels[f['state']]};"
                f"{f['state_on']:%d/%m/%Y};1490,00;à relancer\n"
            )


def api_record(index: int, changed: bool, total: int) -> dict[str, Any]:
    f = folder(index, changed)
    stamp = T0 + timedelta(seconds=total + index if changed else index)
    return {
        "externalId": f["number"],
        "state": f["state"],
        "lastUpdate": stamp.isoformat(),
        "attendee": {
            "firstName": f["first_name"],
            "lastName": f["last_name"],
            "email": f["email"],
            "phoneNumber": f["phone"],
        },
        "trainingActionInfo": {
            "sessionStartDate": f["start"].isoformat(),
            "sessionEndDate": f["end"].isoformat(),
            "totalIncl": 1490.0,
        },
        "certification": {"code": f["code"]},
        "history": {f"{f['state']}Date": f["state_on"].isoformat()},
        "billingState": "toBill",
        "notes": "à relancer",
    }


# ------------------------------------------------------------- the fake API


def serve(total: int, changed: int) -> int:
    """Child process: the API, records computed on demand; `POST /change` applies the changes."""
    import bisect

    from aiohttp import web

    moved: set[int] = set()
    listing: dict[str, list[Any]] = {}
    # Encoded once, before any measurement: the cost of a real API is not Cordée's.
    encoded = [json.dumps(api_record(i, False, total)) for i in range(total)]

    def arrange() -> None:
        """Oldest update first: the changed folders move to the end."""
        indexes = [i for i in range(total) if i not in moved] + sorted(moved)
        listing["indexes"] = indexes
        listing["stamps"] = [
            T0 + timedelta(seconds=total + i if i in moved else i) for i in indexes
        ]

    async def folders(request: web.Request) -> web.Response:
        if request.headers.get("X-Api-Key") != API_KEY:
            return web.json_response({"error": "invalid key"}, status=401)
        indexes, stamps = listing["indexes"], listing["stamps"]
        since = request.query.get("updatedSince")
        start = bisect.bisect_left(stamps, datetime.fromisoformat(since)) if since else 0
        page, limit = int(request.query["page"]), int(request.query["limit"])
        first = start + (page - 1) * limit
        body = "[" + ",".join(encoded[i] for i in indexes[first : first + limit]) + "]"
        return web.Response(
            text=body,
            content_type="application/json",
            headers={"X-Total-Count": str(len(indexes) - start)},
        )

    async def change(_request: web.Request) -> web.Response:
        moved.update(i for i in range(total) if is_changed(i, total, changed))
        for i in moved:
            encoded[i] = json.dumps(api_record(i, True, total))
        arrange()
        return web.Response(text="ok")

    async def main() -> None:
        arrange()
        app = web.Application()
        app.router.add_get("/api/registrationFolders", folders)
        app.router.add_post("/change", change)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(runner.addresses[0][1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    return 0


# ---------------------------------------------------------------- the cases


def settings_for(directory: Path, database: Path) -> Any:
    from bot.config import load_settings

    return load_settings(
        {
            "CORDEE_DATA_DIR": str(directory / "var"),
            "CORDEE_DATABASE_URL": f"sqlite:///{database}",
            "CORDEE_SECRET_KEY": "bench-secret-key-" + "b" * 32,
        },
        config_file=directory / "absent.toml",
    )


def make_template(directory: Path) -> Path:
    """A migrated database with an authorised partnership (not timed)."""
    from bot.access_requests import send_request
    from bot.app import build_app
    from bot.channels.memory import MemoryChannel
    from bot.clock import SystemClock
    from bot.store.db import upgrade
    from tests.support.builders import seed_partnership
    from workflows.access_request import Event

    database = directory / "template.db"
    upgrade(f"sqlite:///{database}")

    async def authorise() -> None:
        app = build_app(
            settings_for(directory, database),
            channels={"mail": MemoryChannel("mail"), "staff": MemoryChannel("staff")},
        )
        try:
            seed_partnership(app.db, now=SystemClock().now())
            view = await send_request(app.engine, certifier="1", partner="1")
            await app.engine.fire(view.public_id, Event.AUTHORISE, actor="bench")
        finally:
            await app.close()

    asyncio.run(authorise())
    return database


def child(case: str, directory: Path, port: int | None) -> int:
    """Child process: one measurement, printed as JSON."""
    import resource

    if case == "anchor":
        seconds, rows = anchor(directory)
    else:
        seconds, rows = asyncio.run(ours(case, directory, port))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rows": rows, "rss_mb": rss}))
    return 0


def anchor(directory: Path) -> tuple[float, int]:
    """A raw Core bulk insert of the same rows into a table of the same columns."""
    from sqlalchemy import Column, Date, Integer, MetaData, String, Table, create_engine, insert

    total = int(os.environ["CORDEE_BENCH_FOLDERS"])
    database = directory / "anchor.db"
    database.unlink(missing_ok=True)
    engine = create_engine(f"sqlite:///{database}")
    metadata = MetaData()
    table = Table(
        "folder",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("folder_number", String(64), unique=True),
        Column("attendee_last_name", String(100)),
        Column("attendee_first_name", String(100)),
        Column("attendee_email", String(320)),
        Column("attendee_phone", String(32)),
        Column("certification_code", String(20)),
        Column("session_start", Date),
        Column("session_end", Date),
        Column("training_state", String(40)),
        Column("training_state_on", Date),
    )
    metadata.create_all(engine)
    rows = [
        {
            "folder_number": f["number"],
            "attendee_last_name": f["last_name"],
            "attendee_first_name": f["first_name"],
            "attendee_email": f["email"],
            "attendee_phone": f["phone"],
            "certification_code": f["code"],
            "session_start": f["start"],
            "session_end": f["end"],
            "training_state": f["state"],
            "training_state_on": f["state_on"],
        }
        for f in (folder(index, False) for index in range(total))
    ]
    start = time.perf_counter()
    for first in range(0, total, BATCH):
        with engine.begin() as connection:
            connection.execute(insert(table), rows[first : first + BATCH])
    seconds = time.perf_counter() - start
    engine.dispose()
    return seconds, total


async def ours(case: str, directory: Path, port: int | None) -> tuple[float, int]:
    from bot.app import build_app
    from bot.channels.memory import MemoryChannel
    from bot.sync.run import PartnerSyncRunner
    from bot.sync.services import SyncServices
    from bot.sync.sources import FileSource
    from bot.sync.status import configure_api

    source_kind, phase = case.split("-")
    database = directory / f"{source_kind}.db"
    if phase == "initial":
        shutil.copyfile(directory / "template.db", database)
    app = build_app(
        settings_for(directory, database),
        channels={"mail": MemoryChannel("mail"), "staff": MemoryChannel("staff")},
    )
    try:
        services = SyncServices.of(app)
        runner = PartnerSyncRunner(services)
        if source_kind == "api":
            if phase == "initial":
                await configure_api(
                    services,
                    1,
                    certifier_id=1,
                    base_url=f"http://127.0.0.1:{port}/api",
                    api_key=API_KEY,
                    interval_minutes=None,
                )
            start = time.perf_counter()
            report = await runner.run_configured(1, actor="bench")
        else:
            name = "folders.csv" if phase == "initial" else "folders-changed.csv"
            start = time.perf_counter()
            report = await runner.run(1, await FileSource.open(directory / name), actor="bench")
        seconds = time.perf_counter() - start
    finally:
        await app.close()
    if report.outcome != "ok":
        raise SystemExit(f"{case}: {report.outcome} {report.failure} {report.errors[:3]}")
    return seconds, report.created + report.updated


# ------------------------------------------------------------------ parent


@dataclass(frozen=True)
class Run:
    seconds: float
    rows: int
    rss_mb: float


def measure(arguments: list[str]) -> Run:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.sync", *arguments],
        stdout=subprocess.PIPE,
        cwd=REPO,
        text=True,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"échec de la mesure {arguments}")
    result = json.loads(output.strip().splitlines()[-1])
    return Run(result["seconds"], result["rows"], max(result["rss_mb"], usage.ru_maxrss / 1024))


@contextmanager
def fake_api(total: int, changed: int) -> Iterator[int]:
    """The fake API in its own process; yields its port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.sync", "--serve", str(total), str(changed)],
        stdout=subprocess.PIPE,
        cwd=REPO,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield int(process.stdout.readline())
    finally:
        process.terminate()
        process.wait(10)


def change_api(port: int) -> None:
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{port}/change", method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
        answer.read()


def main() -> int:
    if len(sys.argv) >= 4 and sys.argv[1] == "--child":
        port = int(sys.argv[4]) if len(sys.argv) > 4 else None
        return child(sys.argv[2], Path(sys.argv[3]), port)
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        return serve(int(sys.argv[2]), int(sys.argv[3]))
    total = int(os.environ.setdefault("CORDEE_BENCH_FOLDERS", "100000"))
    changed = int(os.environ.setdefault("CORDEE_BENCH_CHANGED", "1000"))
    runs = int(os.environ.get("CORDEE_BENCH_RUNS", "3"))
    chosen = os.environ.get("CORDEE_BENCH_DIR")
    holder = None if chosen else tempfile.TemporaryDirectory(prefix="cordee-bench-sync-")
    directory = Path(chosen) if chosen else Path(holder.name)  # type: ignore[union-attr]
    directory.mkdir(parents=True, exist_ok=True)
    print(f"Préparation : {total} dossiers (CSV, API), base modèle dans {directory}…", flush=True)
    write_csv(directory / "folders.csv", total, 0)
    write_csv(directory / "folders-changed.csv", total, changed)
    make_template(directory)
    measured: dict[str, list[Run]] = {}
    try:
        for _ in range(runs):
            with fake_api(total, changed) as port:
                for case in ("anchor", "csv-initial", "csv-incremental", "api-initial"):
                    measured.setdefault(case, []).append(
                        measure(["--child", case, str(directory), str(port)])
                    )
                change_api(port)
                measured.setdefault("api-incremental", []).append(
                    measure(["--child", "api-incremental", str(directory), str(port)])
                )
    finally:
        if holder is not None:
            holder.cleanup()
    return report(measured, total, changed, runs)


def thousands(value: float) -> str:
    """« 12 345 », with the narrow no-break space French typography uses."""
    return f"{value:,.0f}".replace(",", "\u202f")


def report(measured: dict[str, list[Run]], total: int, changed: int, runs: int) -> int:
    anchor_s = statistics.median(r.seconds for r in measured["anchor"])
    names = {
        "csv-initial": f"CSV, synchro initiale de {thousands(total)}",
        "api-initial": f"API, synchro initiale de {thousands(total)}",
        "csv-incremental": f"CSV, {thousands(changed)} modifiés parmi {thousands(total)}",
        "api-incremental": f"API, {thousands(changed)} modifiés parmi {thousands(total)}",
    }
    header = ("cas", "ancre Core", "Cordée", "débit", "ratio", "cible", "RSS max", "résultat")
    print()
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    failures = 0
    for case, name in names.items():
        seconds = statistics.median(r.seconds for r in measured[case])
        rows = measured[case][-1].rows
        rate = rows / seconds if seconds else float("inf")
        rss = max(r.rss_mb for r in measured[case])
        if case.endswith("initial"):
            ok = rate >= RATE_TARGET and rows == total
            target = f"≥ {thousands(RATE_TARGET)} dossiers/s"
        else:
            ok = seconds <= INCREMENTAL_TARGET_S and rows == changed
            target = f"≤ {INCREMENTAL_TARGET_S:.0f} s"
        ok = ok and rss <= RSS_TARGET_MB
        failures += not ok
        print(
            f"{name} | {anchor_s:.2f} s | {seconds:.2f} s | {thousands(rate)} dossiers/s | "
            f"{seconds / anchor_s:.2f} x | {target} | {rss:.0f} Mo (≤ {RSS_TARGET_MB:.0f}) | "
            f"{'OK' if ok else 'ÉCHEC'}"
        )
    print(
        f"\nAncre : insertion brute SQLAlchemy Core (executemany, {BATCH} lignes par "
        f"transaction) des mêmes {thousands(total)} lignes dans une table aux mêmes colonnes : "
        f"{anchor_s:.2f} s, soit {thousands(total / anchor_s)} lignes/s. "
        f"Ratio = durée Cordée / durée de l'ancre. Médiane de {runs} exécution(s)."
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
