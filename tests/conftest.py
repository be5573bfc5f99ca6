"""Shared fixtures: clean environment, databases (SQLite and PostgreSQL), clock, channels, app."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from bot.app import App, build_app
from bot.channels.memory import MemoryChannel
from bot.clock import FrozenClock
from bot.config import Settings, load_settings
from bot.store.db import upgrade
from tests.support.builders import Seed, seed_partnership
from tests.support.components import require
from tests.support.dovecot import (
    Dovecot,
    DovecotUnavailable,
    dovecot_executable,
    running_dovecot,
)

ADMIN_URL = os.environ.get(
    "CORDEE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
# A Monday morning in winter (UTC+1 in Paris).
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's CORDEE_* settings or cordee.toml."""
    for name in list(os.environ):
        if name.startswith("CORDEE_") and name != "CORDEE_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _postgres_available() -> bool:
    try:
        with psycopg.connect(_libpq(ADMIN_URL), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    require(_postgres_available(), f"PostgreSQL at {make_url(ADMIN_URL).host}")
    return ADMIN_URL


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A throwaway database, dropped at the end of the test."""
    name = f"cordee_test_{secrets.token_hex(6)}"
    with psycopg.connect(_libpq(postgres_admin_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(postgres_admin_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cordee.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def migrated_url(db_url: str) -> str:
    upgrade(db_url)
    return db_url


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def settings(tmp_path: Path, migrated_url: str) -> Settings:
    return load_settings(
        {
            "CORDEE_DATA_DIR": str(tmp_path / "var"),
            "CORDEE_DATABASE_URL": migrated_url,
            "CORDEE_SECRET_KEY": "test-secret-key-" + "x" * 32,
            "CORDEE_PUBLIC_URL": "http://127.0.0.1:8080",
        },
        config_file=tmp_path / "absent.toml",
    )


@pytest.fixture
def mail() -> MemoryChannel:
    return MemoryChannel("mail")


@pytest.fixture
def staff() -> MemoryChannel:
    return MemoryChannel("staff")


@pytest.fixture
async def app(
    settings: Settings, clock: FrozenClock, mail: MemoryChannel, staff: MemoryChannel
) -> AsyncIterator[App]:
    application = build_app(settings, clock=clock, channels={"mail": mail, "staff": staff})
    try:
        yield application
    finally:
        await application.close()


@pytest.fixture
def seed(app: App, clock: FrozenClock) -> Seed:
    return seed_partnership(app.db, now=clock.now())


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    """A real Dovecot on 127.0.0.1 (IMAP, IMAPS, LMTP), started for one test."""
    require(dovecot_executable() is not None, "Dovecot")
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(running_dovecot(tmp_path / "dovecot"))
        except DovecotUnavailable as error:
            pytest.fail(str(error))
        yield server
