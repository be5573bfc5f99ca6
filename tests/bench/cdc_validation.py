"""CDC file validation against `xmllint --stream`: wall time (median) and peak memory.

Environment knobs (a quick run: CORDEE_BENCH_PASSAGES=20000 CORDEE_BENCH_RUNS=1):
  CORDEE_BENCH_PASSAGES  passages in the generated files (default 200000, about 235 MB)
  CORDEE_BENCH_ERRORS    errors in the "errors" file (default 10000)
  CORDEE_BENCH_RUNS      runs per tool and case; the median is kept (default 3)
  CORDEE_BENCH_DIR       where to write the files (default: a temporary directory)

Each run is a fresh subprocess; its peak RSS comes from os.wait4. xmllint and Cordée alternate
so that both see the same machine load.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.cdc_factory import write_big_flux

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "xsd" / "cdc-1.1.2.xsd"
XMLLINT = shutil.which("xmllint") or "/usr/bin/xmllint"
RSS_TARGET_MB = 100.0


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    target: float
    expected_errors: int


@dataclass(frozen=True)
class Run:
    seconds: float
    rss_mb: float
    output: str


def _measure(command: list[str]) -> Run:
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO, text=True
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return Run(elapsed, usage.ru_maxrss / 1024, output)


def _ours(path: Path) -> list[str]:
    return [sys.executable, "-m", "tests.bench.cdc_validation", "--one", str(path)]


def _xmllint(path: Path) -> list[str]:
    return [XMLLINT, "--noout", "--stream", "--schema", str(SCHEMA), str(path)]


def run_one(path: str) -> int:
    """Child process: validate one file, print a summary as JSON.

    `rss_mb` adds this process's peak to that of its XSD worker process (if one ran): the
    memory the validation needs in total, whatever wait4 reports for this process alone.
    """
    import resource

    from bot.cdc import validate_file

    report = validate_file(path)
    codes: dict[str, int] = {}
    for error in report.errors:
        codes[error.code.value] = codes.get(error.code.value, 0) + 1
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps({"passages": report.passages, "codes": codes, "rss_mb": (own + worker) / 1024})
    )
    return 0


def _cases(folder: Path, passages: int, errors: int) -> list[Case]:
    valid = folder / "cdc-valide.xml"
    invalid = folder / "cdc-erreurs.xml"
    every = max(1, passages // errors) if errors else 0
    print(f"Génération de 2 fichiers de {passages} passages dans {folder}…", flush=True)
    write_big_flux(valid, passages)
    write_big_flux(invalid, passages, error_every=every)
    expected = passages // every if every else 0
    return [
        Case(f"{passages} passages, valide", valid, 1.25, 0),
        Case(f"{passages} passages, {expected} erreurs", invalid, 1.5, expected),
    ]


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        return run_one(sys.argv[2])
    passages = int(os.environ.get("CORDEE_BENCH_PASSAGES", "200000"))
    errors = int(os.environ.get("CORDEE_BENCH_ERRORS", "10000"))
    runs = int(os.environ.get("CORDEE_BENCH_RUNS", "3"))
    if not Path(XMLLINT).exists():
        print("xmllint est introuvable (paquet libxml2-utils) : benchmark impossible.")
        return 1
    chosen = os.environ.get("CORDEE_BENCH_DIR")
    holder = None if chosen else tempfile.TemporaryDirectory(prefix="cordee-bench-")
    folder = Path(chosen) if chosen else Path(holder.name)  # type: ignore[union-attr]
    folder.mkdir(parents=True, exist_ok=True)
    failures = 0
    rows = []
    try:
        for case in _cases(folder, passages, errors):
            anchor: list[Run] = []
            ours: list[Run] = []
            for _ in range(runs):
                anchor.append(_measure(_xmllint(case.path)))
                ours.append(_measure(_ours(case.path)))
            summary = json.loads(ours[-1].output)
            xsd_errors = sum(n for code, n in summary["codes"].items() if code.startswith("XSD_"))
            correct = summary["passages"] == passages and xsd_errors == case.expected_errors
            a = statistics.median(r.seconds for r in anchor)
            o = statistics.median(r.seconds for r in ours)
            rss = max(max(r.rss_mb, json.loads(r.output)["rss_mb"]) for r in ours)
            ok = correct and o / a <= case.target and rss <= RSS_TARGET_MB
            failures += not ok
            size = case.path.stat().st_size / 1e6
            rows.append((case.name, f"{size:.0f} Mo", a, o, o / a, case.target, rss, ok, correct))
    finally:
        if holder is not None:
            holder.cleanup()
    header = ("cas", "taille", "xmllint", "Cordée", "ratio", "cible", "RSS max*", "résultat")
    print()
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for name, size, a, o, ratio, target, rss, ok, correct in rows:
        verdict = "OK" if ok else ("ÉCHEC" if correct else "ÉCHEC (résultat faux)")
        print(
            f"{name} | {size} | {a:.2f} s | {o:.2f} s | {ratio:.2f} x | ≤ {target:.2f} x | "
            f"{rss:.0f} Mo (≤ {RSS_TARGET_MB:.0f}) | {verdict}"
        )
    print("\n* Cordée : processus principal + processus de validation XSD, additionnés.")
    print(f"Médiane de {runs} exécution(s) par outil ; ancre : {' '.join(_xmllint(Path('F')))}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
