"""What the browser tests share: Chromium's offline flags, screenshots, a SQLite database."""

from __future__ import annotations

from pathlib import Path

import pytest

PUBLIC_URL = "http://127.0.0.1:8080"  # CORDEE_PUBLIC_URL in the `settings` fixture
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# Without these, Chromium keeps trying to reach the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite is enough here: the pages' database behaviour is covered on both backends."""
    return f"sqlite:///{tmp_path / 'cordee.db'}"
