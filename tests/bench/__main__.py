"""Entry point of `python -m tests.bench`: runs every benchmark, exits 1 if a target is missed."""

from __future__ import annotations

import sys

from tests.bench import cdc_validation


def main() -> int:
    return cdc_validation.main()


if __name__ == "__main__":
    sys.exit(main())
