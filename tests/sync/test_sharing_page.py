"""The organisation's « gérer le partage » page: pause, resume and a new API key, by POST only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import select

from bot.app import App
from bot.channels.memory import MemoryChannel
from bot.clock import FrozenClock
from bot.store.models import PartnerSync, SharingPause
from bot.sync.services import SyncServices
from tests.integration.test_web_pages import Page, Site, assert_secure
from tests.support.builders import Seed
from tests.support.fake_wedof import API_KEY
from workflows.access_request import Event


@pytest.fixture
async def site(app: App) -> AsyncIterator[Site]:
    base = await app.serve(host="127.0.0.1", port=0, scheduler=False)
    async with aiohttp.ClientSession() as http:
        yield Site(app, base, http)


async def post(site: Site, url: str, **form: str) -> Page:
    async with site.http.post(url, data={"lang": "fr", **form}, allow_redirects=False) as response:
        return Page(response.status, await response.text(), dict(response.headers))


@pytest.fixture
async def manage(site: Site, seed: Seed, mail: MemoryChannel) -> str:
    """The « gérer le partage » link of an authorised request, as emailed."""
    _, links = await site.send(seed, mail)
    assert (await site.post(links["authorise"])).status == 200
    return site.links(mail.sent[-1].text)["manage"]


def pauses(app: App) -> list[str]:
    return app.db.run_sync(lambda s: list(s.scalars(select(SharingPause.paused_by))))


async def test_the_manage_page_offers_to_pause_each_certification_and_changes_nothing(
    site: Site, seed: Seed, manage: str
) -> None:
    transitions = site.transitions()
    page = await site.get(manage)
    assert page.status == 200
    assert_secure(page)
    assert "Suspendre ou reprendre, certification par certification" in page.text
    assert "RNCP34567 — Développeur web et web mobile Partagée Suspendre le partage" in page.text
    assert 'action="/lien/' in page.html
    assert ">Arrêter le partage</button>" in page.html  # stopping everything is still there
    assert "Clé d'API" not in page.text  # no API source for this partner
    english = await site.get(manage, lang="en")
    assert "Pause the sharing of RS5875" in english.text
    assert site.transitions() == transitions
    assert site.sharing(seed) == [True, True]


async def test_pausing_then_resuming_one_certification(
    site: Site,
    seed: Seed,
    manage: str,
    mail: MemoryChannel,
    staff: MemoryChannel,
    clock: FrozenClock,
) -> None:
    clock.advance(timedelta(days=3))
    paused = await post(site, manage + "/partage", certification="RS5875", change="pause")
    assert paused.status == 200
    assert "Le partage de RS5875 est suspendu" in paused.text
    assert "Les autres certifications restent partagées" in paused.text
    assert sorted(site.sharing(seed)) == [False, True]
    assert pauses(site.app) == ["partner_contact:web"]
    assert mail.sent[-1].subject == "Partage suspendu pour RS5875 avec Certif & Co"
    assert "à votre demande" in mail.sent[-1].text
    assert staff.sent[-1].subject == "Partage suspendu : Formations <Sud>, RS5875"

    page = await site.get(manage)
    assert "RS5875 — Gestion de projet agile Suspendue depuis le 26 novembre 2026" in page.text
    assert "Reprendre le partage de RS5875" in page.text

    twice = await post(site, manage + "/partage", certification="RS5875", change="pause")
    assert twice.status == 409
    assert "Rien n'a changé" in twice.text
    assert "déjà suspendu" in twice.text

    resumed = await post(site, manage + "/partage", certification="RS5875", change="resume")
    assert resumed.status == 200
    assert "Le partage de RS5875 a repris" in resumed.text
    assert site.sharing(seed) == [True, True]
    assert pauses(site.app) == []
    assert mail.sent[-1].subject == "Partage repris pour RS5875 avec Certif & Co"


async def test_only_a_live_manage_link_can_change_the_sharing(
    site: Site, seed: Seed, manage: str, mail: MemoryChannel, clock: FrozenClock
) -> None:
    other = await post(site, manage + "/partage", certification="RNCP99999", change="pause")
    assert other.status == 409
    assert "ne couvre pas RNCP99999" in other.text
    incomplete = await post(site, manage + "/partage", certification="RS5875", change="delete")
    assert incomplete.status == 400
    reference = site.app.links.verify(manage.rsplit("/", 1)[1], timedelta(days=1)).public_id
    authorise = site.base + site.app.links.url(
        "access_request", reference, "authorise"
    ).removeprefix("http://127.0.0.1:8080")
    wrong = await post(site, authorise + "/partage", certification="RS5875", change="pause")
    assert wrong.status == 400
    tampered = await post(site, manage[:-2] + "xx/partage", certification="RS5875", change="pause")
    assert tampered.status == 400

    await site.app.engine.fire(reference, Event.REVOKE, actor="partner_contact:web")
    after = await post(site, manage + "/partage", certification="RS5875", change="resume")
    assert after.status == 409
    assert "le partage a été arrêté" in after.text

    clock.advance(timedelta(days=400))
    expired = await post(site, manage + "/partage", certification="RS5875", change="pause")
    assert expired.status == 410
    assert pauses(site.app) == []


async def test_the_organisation_renews_its_api_key_from_the_page(
    site: Site,
    seed: Seed,
    manage: str,
    services: SyncServices,
    staff: MemoryChannel,
) -> None:
    from bot.sync.status import configure_api

    await configure_api(
        services,
        seed.partnership_id,
        certifier_id=seed.certifier_id,
        base_url="https://api.partner.example/api",
        api_key=API_KEY,
        interval_minutes=None,
    )
    page = await site.get(manage)
    assert "Clé d'API de votre outil de gestion des dossiers" in page.text
    assert 'type="password"' in page.html
    assert API_KEY not in page.html

    empty = await post(site, manage + "/identifiants", api_key=" ")
    assert empty.status == 400
    assert "clé d'API invalide" in empty.text
    saved = await post(site, manage + "/identifiants", api_key="new-key-42")
    assert saved.status == 200
    assert "Votre nouvelle clé d'API est enregistrée" in saved.text
    stored = site.app.db.run_sync(lambda s: s.scalars(select(PartnerSync.credentials)).one())
    assert stored is not None
    assert services.cipher.open(stored) == "new-key-42"
    assert staff.sent[-1].subject == "Nouvelle clé d'API enregistrée par Formations <Sud>"
