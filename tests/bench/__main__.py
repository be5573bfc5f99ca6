"""`python -m tests.bench [NAME…]`: runs the benchmarks; exits 1 when a target is missed.

Without a name every benchmark runs, in the order below; `python -m tests.bench mail_smtp` runs
one. Each prints its own table (anchor, Cordée, ratio, target) as it finishes; options come
from the environment (see each module's docstring).
"""

from __future__ import annotations

import importlib
import sys

# Each module is imported only when its turn comes: a benchmark's children inherit this
# process's peak RSS in their ru_maxrss (Linux keeps it across fork + exec), and the CDC
# benchmark measures its children that way.
BENCHMARKS = ("cdc_validation", "mail_ingest", "mail_smtp", "mail_idle", "sync")


def main(names: list[str]) -> int:
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"Benchmark inconnu : {', '.join(unknown)} (au choix : {', '.join(BENCHMARKS)})")
        return 2
    chosen = names or list(BENCHMARKS)
    results: dict[str, int] = {}
    for name in chosen:
        print(f"\n== {name} ==", flush=True)
        module = importlib.import_module(f"tests.bench.{name}")
        results[name] = int(module.main())
    if len(chosen) > 1:
        print("\n" + " | ".join(("benchmark", "résultat")))
        print("--- | ---")
        for name, code in results.items():
            print(f"{name} | {'OK' if code == 0 else 'ÉCHEC'}")
    return 1 if any(results.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
