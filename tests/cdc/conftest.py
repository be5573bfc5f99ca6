"""Shared fixtures for the CDC validation tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "cdc"
NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
"""The instant the corpus is checked at (its horodatage values are before it)."""


@pytest.fixture
def data() -> Path:
    return DATA
