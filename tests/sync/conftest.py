"""Sync fixtures: an authorised partnership, export files, the sync services and runner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.access_requests import send_request
from bot.app import App
from bot.sync.run import PartnerSyncRunner
from bot.sync.services import SyncServices
from bot.sync.status import configure_api
from tests.support.builders import Seed
from tests.support.fake_wedof import API_KEY, FakeWedof, record
from workflows.access_request import Event

HEADER = "N° du dossier;Nom;Prénom;Courriel;Téléphone;Certification;Date de début;Date de fin;État"


@pytest.fixture
def services(app: App) -> SyncServices:
    return SyncServices.of(app)


@pytest.fixture
def runner(services: SyncServices) -> PartnerSyncRunner:
    return PartnerSyncRunner(services, batch_size=3)


@pytest.fixture
async def authorised(app: App, seed: Seed) -> Seed:
    """The seed's organisation has authorised its certifier for both certifications."""
    view = await send_request(
        app.engine, certifier=str(seed.certifier_id), partner=str(seed.organisation_id)
    )
    await app.engine.fire(view.public_id, Event.AUTHORISE, actor="partner_contact:web")
    return seed


def write_csv(
    folder: Path, rows: list[str], *, header: str = HEADER, encoding: str = "utf-8"
) -> Path:
    path = folder / "export.csv"
    path.write_bytes(("\n".join([header, *rows]) + "\n").encode(encoding))
    return path


@pytest.fixture
async def wedof() -> AsyncIterator[FakeWedof]:
    fake = FakeWedof(folders=[record(n) for n in range(1, 251)])
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def configured(services: SyncServices, authorised: Seed, wedof: FakeWedof) -> Seed:
    await configure_api(
        services,
        authorised.partnership_id,
        certifier_id=authorised.certifier_id,
        base_url=wedof.base_url,
        api_key=API_KEY,
        interval_minutes=None,
    )
    return authorised


@pytest.fixture
def api_runner(services: SyncServices) -> PartnerSyncRunner:
    return PartnerSyncRunner(services, batch_size=120, http_timeout=0.5)
