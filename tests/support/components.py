"""Real local components: skip with a reason on a laptop, fail under CI=true."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(available: bool, what: str) -> None:
    """Skip (locally) or fail (CI) when a real component the test needs is missing."""
    if available:
        return
    message = f"{what} is not available"
    if in_ci():
        pytest.fail(f"{message} (CI=true: real components are mandatory)")
    pytest.skip(message)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")
