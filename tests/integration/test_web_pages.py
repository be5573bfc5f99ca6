"""Decision pages through the real web server and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import func, select

from bot import __version__
from bot.access_requests import cancel_request, send_request
from bot.app import App
from bot.channels.memory import MemoryChannel
from bot.clock import FrozenClock
from bot.store.db import Database
from bot.store.models import PartnershipCertification, TransitionLog
from tests.support.builders import Seed
from workflows.access_request import NAME

PUBLIC_URL = "http://127.0.0.1:8080"  # CORDEE_PUBLIC_URL in the `settings` fixture
LINK = re.compile(re.escape(PUBLIC_URL) + r"/lien/[A-Za-z0-9_.\-]+")
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
# Nowhere to listen: the database of a server that is down.
UNREACHABLE_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/cordee"


@dataclass(frozen=True)
class Page:
    status: int
    html: str
    headers: dict[str, str]

    @property
    def text(self) -> str:
        """What a person reads: tags dropped, entities decoded, all spaces (even nbsp) single."""
        return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", self.html)).split())


@dataclass(frozen=True)
class Site:
    app: App
    base: str
    http: aiohttp.ClientSession

    async def get(self, url: str, **params: str) -> Page:
        async with self.http.get(url, params=params, allow_redirects=False) as response:
            return await _page(response)

    async def post(self, url: str, lang: str = "fr") -> Page:
        async with self.http.post(url, data={"lang": lang}, allow_redirects=False) as response:
            return await _page(response)

    async def send(self, seed: Seed, mail: MemoryChannel) -> tuple[str, dict[str, str]]:
        """Start a request as the certifier would; return its reference and the emailed links."""
        view = await send_request(
            self.app.engine, certifier=str(seed.certifier_id), partner=str(seed.organisation_id)
        )
        return view.public_id, self.links(mail.sent[-1].text)

    def links(self, text: str) -> dict[str, str]:
        """The links of an email, by action, pointing at the server under test."""
        found = {}
        for url in LINK.findall(text):
            action = self.app.verify_link(url.rsplit("/", 1)[1]).action
            found[action] = self.base + url.removeprefix(PUBLIC_URL)
        return found

    async def state(self, reference: str) -> str:
        return (await self.app.engine.view(reference)).state

    def sharing(self, seed: Seed) -> list[bool]:
        return self.app.db.run_sync(
            lambda s: list(
                s.scalars(
                    select(PartnershipCertification.sharing_enabled).where(
                        PartnershipCertification.partnership_id == seed.partnership_id
                    )
                )
            )
        )

    def transitions(self) -> int:
        return self.app.db.run_sync(
            lambda s: s.scalar(select(func.count()).select_from(TransitionLog)) or 0
        )


async def _page(response: aiohttp.ClientResponse) -> Page:
    return Page(response.status, await response.text(), dict(response.headers))


def assert_secure(page: Page) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert page.headers.get(name) == value, name


@pytest.fixture
async def site(app: App) -> AsyncIterator[Site]:
    # Tests move time themselves: no scheduler tick may fire timers or send mail behind their back.
    base = await app.serve(host="127.0.0.1", port=0, scheduler=False)
    async with aiohttp.ClientSession() as http:
        yield Site(app, base, http)


# ------------------------------------------------------------------- health


async def test_health_reports_the_database_and_version(site: Site) -> None:
    async with site.http.get(site.base + "/health") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok", "database": "ok", "version": __version__}


async def test_health_says_when_the_database_cannot_be_queried(site: Site) -> None:
    working, broken = site.app.db, Database(UNREACHABLE_DATABASE)
    site.app.db = broken
    try:
        async with site.http.get(site.base + "/health") as response:
            assert response.status == 503
            body = await response.json()
    finally:
        site.app.db = working
        broken.dispose()
    assert body == {"status": "error", "database": "unavailable", "version": __version__}


# ---------------------------------------------------------------- showing


async def test_opening_a_link_shows_the_request_and_decides_nothing(
    site: Site, seed: Seed, mail: MemoryChannel, staff: MemoryChannel
) -> None:
    reference, links = await site.send(seed, mail)
    transitions = site.transitions()

    # A mail scanner may open every link, several times: nothing may happen.
    for _ in range(2):
        for action in ("authorise", "refuse"):
            page = await site.get(links[action])
            assert page.status == 200
            assert_secure(page)

    page = await site.get(links["authorise"])
    assert '<html lang="fr">' in page.html
    assert page.html.count("<main") == 1
    assert "Formations &lt;Sud&gt;" in page.html  # escaped, never markup
    for expected in (
        "Autoriser l'accès à vos dossiers de formation",
        "Certif & Co demande à Formations <Sud> l'accès à ses dossiers de formation",
        "Formations <Sud> (SIRET 443 061 841 00047)",
        "RNCP RNCP34567 Développeur web et web mobile",
        "RS RS5875 Gestion de projet agile",
        f"Référence {reference}",
        "Envoyée le 23 novembre 2026",
        "arrivés à l'état « Accepté » ou au-delà",
        "Les prix, le financement, la facturation et vos notes internes ne sont jamais partagés",
        "Seul Certif & Co a accès à ces dossiers",
        "RGPD",
        "Vous préférez refuser ? Utilisez le lien « Refuser l'accès » de votre courriel.",
    ):
        assert expected in page.text, expected
    assert page.html.count("<form") == 1
    assert '<form method="post">' in page.html
    assert '<button type="submit">Confirmer l\'autorisation</button>' in page.html
    # The same expiry date as in the email, from the first day.
    assert "Sans réponse, la demande expire le 23 décembre 2026 à 10:00" in page.text

    refuse = await site.get(links["refuse"])
    assert "Confirmer le refus" in refuse.text
    assert "Utilisez le lien « Autoriser l'accès » de votre courriel." in refuse.text

    assert await site.state(reference) == "pending"
    assert site.transitions() == transitions
    assert len(mail.sent) == 1
    assert len(staff.sent) == 1
    assert site.sharing(seed) == [False, False]


async def test_the_expiry_date_stays_after_the_reminders(
    site: Site, seed: Seed, mail: MemoryChannel, clock: FrozenClock
) -> None:
    reference, links = await site.send(seed, mail)
    clock.advance(timedelta(days=8))
    await site.app.engine.tick()  # both reminders are sent; expiry comes next

    page = await site.get(links["authorise"])
    assert page.status == 200
    assert "Sans réponse, la demande expire le 23 décembre 2026 à 10:00" in page.text
    assert await site.state(reference) == "pending"


# --------------------------------------------------------------- deciding


async def test_authorising_records_the_decision_once(
    site: Site, seed: Seed, mail: MemoryChannel, staff: MemoryChannel, clock: FrozenClock
) -> None:
    reference, links = await site.send(seed, mail)
    clock.advance(timedelta(minutes=5))

    page = await site.post(links["authorise"])
    assert page.status == 200
    assert_secure(page)
    for expected in (
        "Votre autorisation est enregistrée",
        "Le 23 novembre 2026 à 10:05, vous avez autorisé Certif & Co",
        "Un courriel de confirmation est en route",
        "arrêter le partage à tout moment",
        f"Référence {reference}",
    ):
        assert expected in page.text, expected

    view = await site.app.engine.view(reference, history=True)
    assert view.state == "authorised"
    assert view.history[-1].actor == "partner_contact:web"
    assert site.sharing(seed) == [True, True]
    assert [m.recipient for m in mail.sent] == [seed.contact_email] * 2
    assert "manage" in site.links(mail.sent[-1].text)
    assert len(staff.sent) == 2
    assert reference in staff.sent[-1].text

    already = "Cette demande a déjà été autorisée le 23 novembre 2026 à 10:05."
    for again in (
        await site.post(links["authorise"]),
        await site.get(links["authorise"]),
        await site.get(links["refuse"]),
        await site.post(links["refuse"]),
    ):
        assert again.status == 409
        assert_secure(again)
        assert already in again.text
        assert "<form" not in again.html
    assert await site.state(reference) == "authorised"
    assert len(mail.sent) == 2
    assert len(staff.sent) == 2


async def test_refusing_shares_nothing(
    site: Site, seed: Seed, mail: MemoryChannel, staff: MemoryChannel
) -> None:
    reference, links = await site.send(seed, mail)

    page = await site.post(links["refuse"])
    assert page.status == 200
    assert "Votre refus est enregistré" in page.text
    assert "aucune donnée de vos dossiers ne sera transmise à Certif & Co" in page.text
    assert "Un courriel de confirmation est en route" in page.text

    assert await site.state(reference) == "refused"
    assert site.sharing(seed) == [False, False]
    assert len(mail.sent) == 2
    assert len(staff.sent) == 2

    later = await site.get(links["authorise"])
    assert later.status == 409
    assert "Cette demande a déjà été refusée le 23 novembre 2026 à 10:00." in later.text
    assert await site.state(reference) == "refused"


async def test_the_manage_link_stops_the_sharing(
    site: Site, seed: Seed, mail: MemoryChannel, staff: MemoryChannel, clock: FrozenClock
) -> None:
    reference, links = await site.send(seed, mail)
    assert (await site.post(links["authorise"])).status == 200
    manage = site.links(mail.sent[-1].text)["manage"]
    clock.advance(timedelta(days=40))

    page = await site.get(manage)
    assert page.status == 200
    assert "Arrêter le partage de vos dossiers de formation" in page.text
    assert "L'arrêt prend effet immédiatement" in page.text
    assert "Depuis le 23 novembre 2026 à 10:00, Formations <Sud> partage" in page.text
    assert ">Arrêter le partage</button>" in page.html
    assert await site.state(reference) == "authorised"
    assert site.sharing(seed) == [True, True]

    stopped = await site.post(manage)
    assert stopped.status == 200
    assert "Le partage est arrêté" in stopped.text
    assert "Depuis le 2 janvier 2027 à 10:00" in stopped.text
    assert await site.state(reference) == "revoked"
    assert site.sharing(seed) == [False, False]
    assert len(mail.sent) == 3
    assert len(staff.sent) == 3

    again = await site.get(manage)
    assert again.status == 409
    assert "le partage a été arrêté le 2 janvier 2027 à 10:00" in again.text
    assert "<form" not in again.html


async def test_a_manage_link_on_a_pending_request_stops_nothing(
    site: Site, seed: Seed, mail: MemoryChannel
) -> None:
    reference, _ = await site.send(seed, mail)
    manage = site.base + site.app.links.url(NAME, reference, "manage").removeprefix(PUBLIC_URL)

    for page in (await site.get(manage), await site.post(manage)):
        assert page.status == 409
        assert "il n'y a donc rien à arrêter" in page.text
    assert await site.state(reference) == "pending"
    assert len(mail.sent) == 1


async def test_two_racing_confirmations_record_one_decision(
    site: Site, seed: Seed, mail: MemoryChannel, staff: MemoryChannel
) -> None:
    reference, links = await site.send(seed, mail)

    pages = await asyncio.gather(site.post(links["authorise"]), site.post(links["authorise"]))

    assert sorted(page.status for page in pages) == [200, 409]
    loser = next(page for page in pages if page.status == 409)
    assert "Cette demande a déjà été autorisée le 23 novembre 2026 à 10:00." in loser.text
    assert await site.state(reference) == "authorised"
    assert len(mail.sent) == 2  # the request, then exactly one confirmation
    assert len(staff.sent) == 2
    view = await site.app.engine.view(reference, history=True)
    assert [entry.event for entry in view.history] == ["start", "authorise"]


async def test_authorise_and_refuse_racing_keep_the_first(
    site: Site, seed: Seed, mail: MemoryChannel
) -> None:
    reference, links = await site.send(seed, mail)

    pages = await asyncio.gather(site.post(links["authorise"]), site.post(links["refuse"]))

    assert sorted(page.status for page in pages) == [200, 409]
    view = await site.app.engine.view(reference, history=True)
    decided = {"authorised": "authorise", "refused": "refuse"}[view.state]
    assert [entry.event for entry in view.history] == ["start", decided]
    assert site.sharing(seed) == [view.state == "authorised"] * 2
    assert len(mail.sent) == 2


# ---------------------------------------------------------- unusable links


async def test_a_tampered_or_cut_link_is_refused_and_changes_nothing(
    site: Site, seed: Seed, mail: MemoryChannel
) -> None:
    reference, links = await site.send(seed, mail)
    url = links["authorise"]
    token = url.rsplit("/", 1)[1]
    middle = len(token) // 2
    forged = url.replace(
        token, token[:middle] + ("B" if token[middle] == "A" else "A") + token[middle + 1 :]
    )

    for broken in (forged, url[:-6], site.base + "/lien/", site.base + "/lien/not-a-token"):
        for page in (await site.get(broken), await site.post(broken)):
            assert page.status == 400, broken
            assert_secure(page)
            assert "Lien invalide ou incomplet" in page.text
            assert "copiez-le en entier" in page.text
            assert "contactez le certificateur" in page.text
            assert "Certif & Co" not in page.text
    assert await site.state(reference) == "pending"
    assert len(mail.sent) == 1


async def test_an_expired_link_is_gone_and_changes_nothing(
    site: Site, seed: Seed, mail: MemoryChannel, clock: FrozenClock
) -> None:
    reference, links = await site.send(seed, mail)
    lifetime = site.app.link_lifetime("authorise")
    # Links are signed with the application's clock, so moving it ages them.
    issued = site.app.verify_link(links["authorise"].rsplit("/", 1)[1]).issued_at
    assert issued == clock.now()

    clock.set(issued + lifetime - timedelta(minutes=1))
    assert (await site.get(links["authorise"])).status == 200

    clock.set(issued + lifetime + timedelta(minutes=1))
    for page in (await site.get(links["authorise"]), await site.post(links["authorise"])):
        assert page.status == 410
        assert_secure(page)
        assert "Lien expiré" in page.text
        assert "contactez le certificateur qui vous a écrit" in page.text
    assert await site.state(reference) == "pending"
    assert len(mail.sent) == 1


async def test_a_cancelled_request_is_gone(
    site: Site, seed: Seed, mail: MemoryChannel, clock: FrozenClock
) -> None:
    reference, links = await site.send(seed, mail)
    clock.advance(timedelta(hours=2))
    await cancel_request(site.app.engine, reference)
    sent = len(mail.sent)

    for page in (await site.get(links["authorise"]), await site.post(links["authorise"])):
        assert page.status == 410
        assert "Cette demande a été annulée" in page.text
        assert "annulée par Certif & Co le 23 novembre 2026 à 12:00" in page.text
        assert "<form" not in page.html
    assert await site.state(reference) == "cancelled"
    assert len(mail.sent) == sent


async def test_an_expired_request_is_gone(
    site: Site, seed: Seed, mail: MemoryChannel, clock: FrozenClock
) -> None:
    reference, links = await site.send(seed, mail)
    clock.advance(timedelta(days=30))
    await site.app.engine.tick()
    assert await site.state(reference) == "expired"

    page = await site.get(links["refuse"])
    assert page.status == 410
    assert "Cette demande a expiré le 23 décembre 2026 à 10:00, sans réponse." in page.text


async def test_an_unknown_request_or_page_is_not_found(site: Site) -> None:
    ghost = site.app.links.url(NAME, "DA-ZZZZZZZZZZ", "authorise").removeprefix(PUBLIC_URL)
    for url in (site.base + ghost, site.base + "/nowhere", site.base + "/lien/a/b"):
        page = await site.get(url)
        assert page.status == 404, url
        assert_secure(page)
        assert '<html lang="fr">' in page.html
        assert "Page introuvable" in page.text


async def test_a_database_outage_gets_a_polite_page(
    site: Site, seed: Seed, mail: MemoryChannel
) -> None:
    _, links = await site.send(seed, mail)
    engine = site.app.engine
    working, broken = engine.db, Database(UNREACHABLE_DATABASE)
    engine.db = broken
    try:
        page = await site.get(links["authorise"])
    finally:
        engine.db = working
        broken.dispose()
    assert page.status == 503
    assert "Service momentanément indisponible" in page.text


# ----------------------------------------------------------------- language


async def test_the_pages_speak_english_on_request(
    site: Site, seed: Seed, mail: MemoryChannel
) -> None:
    reference, links = await site.send(seed, mail)
    french = await site.get(links["authorise"])
    switch = re.search(r'<a href="([^"]+)" hreflang="en"', french.html)
    assert switch is not None
    assert switch.group(1) == links["authorise"].removeprefix(site.base) + "?lang=en"

    page = await site.get(site.base + html.unescape(switch.group(1)))
    assert page.status == 200
    assert '<html lang="en">' in page.html
    assert '<input type="hidden" name="lang" value="en">' in page.html
    for expected in (
        "Authorise access to your training folders",
        "Certif & Co asks Formations <Sud> for access to its training folders",
        "Prices, funding, billing and your internal notes are never shared",
        "Confirm authorisation",
        "Sent on 23 November 2026",
    ):
        assert expected in page.text, expected
    assert 'hreflang="fr"' in page.html

    recorded = await site.post(links["authorise"], lang="en")
    assert recorded.status == 200
    assert '<html lang="en">' in recorded.html
    assert "Your authorisation has been recorded" in recorded.text
    assert "A confirmation email is on its way" in recorded.text
    assert await site.state(reference) == "authorised"

    already = await site.get(links["authorise"], lang="en")
    assert already.status == 409
    assert "This request was already authorised on 23 November 2026 at 10:00." in already.text
    assert "Cette demande a déjà été autorisée" in (await site.get(links["authorise"])).text

    missing = await site.get(site.base + "/nowhere", lang="en")
    assert missing.status == 404
    assert "Page not found" in missing.text


async def test_logs_carry_no_token_and_no_personal_data(
    site: Site, seed: Seed, mail: MemoryChannel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cordee")
    _, links = await site.send(seed, mail)
    await site.get(links["authorise"])
    await site.get(links["authorise"][:-6])
    await site.post(links["authorise"])
    await site.post(links["authorise"])

    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("cordee"))
    assert "decision recorded" in logged
    for secret in (links["authorise"].rsplit("/", 1)[1][:20], seed.contact_email, "Sud"):
        assert secret not in logged


# ---------------------------------------------------------- manage link renewal


async def test_an_expired_manage_link_offers_a_fresh_one_by_email(
    site: Site, seed: Seed, mail: MemoryChannel, clock: FrozenClock
) -> None:
    reference, links = await site.send(seed, mail)
    await site.post(links["authorise"])
    manage = site.links(mail.sent[-1].text)["manage"]
    clock.advance(site.app.link_lifetime("manage") + timedelta(days=1))

    expired = await site.get(manage)
    assert expired.status == 410
    assert "Recevoir un nouveau lien" in expired.text
    assert f'action="/lien/{manage.rsplit("/", 1)[1]}/nouveau-lien"' in expired.html
    sent_before = len(mail.sent)

    renewed = await site.post(manage + "/nouveau-lien")
    assert renewed.status == 200
    assert_secure(renewed)
    assert "Un nouveau lien vous a été envoyé" in renewed.text
    assert len(mail.sent) == sent_before + 1
    fresh = mail.sent[-1]
    assert fresh.recipient == seed.contact_email
    assert "nouveau lien pour gérer le partage" in fresh.text
    assert await site.state(reference) == "authorised"

    # The fresh link works; asking again the same day sends nothing more.
    assert (await site.get(site.links(fresh.text)["manage"])).status == 200
    again = await site.post(manage + "/nouveau-lien")
    assert again.status == 200
    assert len(mail.sent) == sent_before + 1
    clock.advance(timedelta(hours=25))
    await site.post(manage + "/nouveau-lien")
    assert len(mail.sent) == sent_before + 2


async def test_only_genuine_manage_links_can_ask_for_a_fresh_one(
    site: Site, seed: Seed, mail: MemoryChannel, clock: FrozenClock
) -> None:
    reference, links = await site.send(seed, mail)
    manage = site.base + site.app.links.url(NAME, reference, "manage").removeprefix(PUBLIC_URL)
    clock.advance(site.app.link_lifetime("authorise") + timedelta(days=1))
    expired = await site.get(links["authorise"])
    assert expired.status == 410
    assert "Recevoir un nouveau lien" not in expired.text
    tampered = manage[:-3] + ("xyz" if not manage.endswith("xyz") else "abc")
    for url in (links["authorise"], tampered):
        refused = await site.post(url + "/nouveau-lien")
        assert refused.status == 400
    assert len(mail.sent) == 1


async def test_no_fresh_manage_link_once_sharing_has_stopped(
    site: Site, seed: Seed, mail: MemoryChannel, clock: FrozenClock
) -> None:
    reference, links = await site.send(seed, mail)
    await site.post(links["authorise"])
    manage = site.links(mail.sent[-1].text)["manage"]
    await site.post(manage)
    assert await site.state(reference) == "revoked"
    sent_before = len(mail.sent)
    clock.advance(site.app.link_lifetime("manage") + timedelta(days=1))
    page = await site.post(manage + "/nouveau-lien")
    assert page.status == 409
    assert len(mail.sent) == sent_before
