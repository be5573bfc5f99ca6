"""The trainer space through the real web server and database: links, sign-in, CSRF, isolation."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.app import App
from bot.channels.memory import MemoryChannel
from bot.clock import FrozenClock
from bot.store.models import (
    Organisation,
    RateLimitHit,
    Trainer,
    TrainerAccount,
    TrainerSession,
    TrainerSlot,
    TrainerUnavailability,
)
from bot.trainers import INVITATION_PATH, Inviter, find_inviter, invite, resend, revoke
from tests.support.builders import ORGANISATION_SIRET, OTHER_SIRET, Seed, seed_partnership

PUBLIC_URL = "http://127.0.0.1:8080"  # CORDEE_PUBLIC_URL in the `settings` fixture
ACTOR = "staff:cli"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass(frozen=True)
class Page:
    status: int
    html: str
    headers: dict[str, str]
    cookies: list[str]

    @property
    def text(self) -> str:
        return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", self.html)).split())

    @property
    def csrf(self) -> str:
        found = CSRF.search(self.html)
        assert found is not None, "no CSRF field on the page"
        return found.group(1)


@dataclass
class Site:
    app: App
    base: str
    http: aiohttp.ClientSession
    mail: MemoryChannel

    async def get(self, path: str, **headers: str) -> Page:
        async with self.http.get(
            self.base + path, allow_redirects=False, headers=headers
        ) as response:
            return await _page(response)

    async def post(self, path: str, data: dict[str, str] | None = None, **headers: str) -> Page:
        async with self.http.post(
            self.base + path, data=data or {}, allow_redirects=False, headers=headers
        ) as response:
            return await _page(response)

    def link(self, prefix: str) -> str:
        """The path of the last mail's link starting with `prefix`."""
        text = self.mail.sent[-1].text
        start = text.index(PUBLIC_URL + prefix) + len(PUBLIC_URL)
        return text[start:].split()[0]

    async def invite(self, inviter: Inviter, email: str, first_name: str = "Anne") -> str:
        await invite(self.app.engine, inviter, email=email, first_name=first_name, actor=ACTOR)
        return self.link(INVITATION_PATH)

    async def accept(self, link: str) -> Page:
        page = await self.post(link, {"lang": "fr"})
        assert page.status == 303, page.text
        return await self.get("/formateur")

    def count(self, model: type) -> int:
        return self.app.db.run_sync(
            lambda s: s.scalar(select(func.count()).select_from(model)) or 0
        )


async def _page(response: aiohttp.ClientResponse) -> Page:
    return Page(
        response.status,
        await response.text(),
        dict(response.headers),
        response.headers.getall("Set-Cookie", []),
    )


@pytest.fixture
async def site(app: App, mail: MemoryChannel) -> AsyncIterator[Site]:
    base = await app.serve(host="127.0.0.1", port=0, scheduler=False)
    # unsafe: the jar keeps cookies of an IP address host (the server under test).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield Site(app, base, http, mail)


@pytest.fixture
def inviter(app: App, seed: Seed) -> Inviter:
    return app.db.run_sync(lambda s: find_inviter(s, org=ORGANISATION_SIRET))


def second_inviter(app: App, clock: FrozenClock) -> Inviter:
    other = seed_partnership(
        app.db,
        now=clock.now(),
        certifier_siret=OTHER_SIRET,
        organisation_siret="35600000000048",
        contact_email="contact@nord.example",
    )

    def rename(session: object) -> Inviter:
        from sqlalchemy.orm import Session

        assert isinstance(session, Session)
        organisation = session.get(Organisation, other.organisation_id)
        assert organisation is not None
        organisation.name = "Atelier Nord"
        session.flush()
        return find_inviter(session, org=str(other.organisation_id))

    return app.db.run_sync(rename)


async def signed_in(site: Site, inviter: Inviter, email: str) -> Page:
    """A new browser session of a trainer who just accepted `inviter`'s invitation."""
    site.http.cookie_jar.clear()
    return await site.accept(await site.invite(inviter, email))


# ------------------------------------------------------------------ invitation links


async def test_the_invitation_page_shows_and_only_the_post_accepts(
    site: Site, inviter: Inviter
) -> None:
    link = await site.invite(inviter, "anne@example.org")
    for _ in range(2):  # a mail scanner may open it, several times
        page = await site.get(link)
        assert page.status == 200
        assert page.cookies == []
    assert '<html lang="fr">' in page.html
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    for expected in (
        "Invitation dans l'espace formateur de Formations <Sud>",
        "anne@example.org",
        "Invitation valable jusqu'au 7 décembre 2026",
        "Accepter l'invitation",
    ):
        assert expected in page.text, expected
    assert site.count(TrainerAccount) == 0

    accepted = await site.post(link, {"lang": "fr"})
    assert accepted.status == 303
    assert accepted.headers["Location"] == "/formateur"
    [cookie] = accepted.cookies
    assert cookie.startswith("cordee_formateur=")
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= flags
    assert "Path=/formateur" in cookie
    assert "SameSite=Lax" in cookie
    assert "secure" not in flags  # plain-HTTP public URL in tests: a Secure cookie never returns
    value = cookie.split(";")[0].split("=", 1)[1]
    stored = site.app.db.run_sync(lambda s: list(s.scalars(select(TrainerSession.session_hash))))
    assert value not in stored  # only a hash of the cookie is kept
    assert len(stored) == 1

    space = await site.get("/formateur")
    assert space.status == 200
    assert "Votre espace formateur chez Formations <Sud>" in space.text

    replayed = await site.get(link)
    assert replayed.status == 410
    assert "Invitation déjà acceptée" in replayed.text
    assert 'href="/formateur/connexion?lang=fr"' in replayed.html
    assert (await site.post(link, {"lang": "fr"})).status == 410
    assert site.count(TrainerAccount) == 1


async def test_tampered_replaced_and_expired_links_explain_what_to_do(
    site: Site, inviter: Inviter, clock: FrozenClock
) -> None:
    first = await site.invite(inviter, "paul@example.org", "Paul")
    tampered = await site.get(first[:-3] + "abc")
    assert tampered.status == 400
    assert "Lien invalide ou incomplet" in tampered.text
    assert (await site.post(first[:-3] + "abc")).status == 400

    await resend(site.app.engine, inviter, "paul@example.org", actor=ACTOR)
    second = site.link(INVITATION_PATH)
    replaced = await site.get(first)
    assert replaced.status == 410
    assert "Ce lien a été remplacé" in replaced.text
    assert f'action="{first}/nouveau-lien"' in replaced.html
    assert (await site.post(first)).status == 410  # the old link accepts nothing

    sent = len(site.mail.sent)
    renewed = await site.post(first + "/nouveau-lien", {"lang": "fr"})
    assert renewed.status == 200
    assert "Un nouveau lien d'invitation est en route vers paul@example.org" in renewed.text
    assert len(site.mail.sent) == sent + 1
    assert site.mail.sent[-1].recipient == "paul@example.org"
    third = site.link(INVITATION_PATH)
    assert (await site.get(second)).status == 410  # replaced in turn
    assert (await site.get(third)).status == 200

    for _ in range(4):
        assert (await site.post(first + "/nouveau-lien")).status == 200
    limited = await site.post(first + "/nouveau-lien")
    assert limited.status == 429
    assert "Trop de demandes" in limited.text
    assert len(site.mail.sent) == sent + 5

    await site.app.engine.tick(clock.advance(timedelta(days=15)))
    expired = await site.get(third)
    assert expired.status == 410
    assert "Invitation expirée" in expired.text
    assert "Demandez à Formations <Sud> de vous inviter à nouveau" in expired.text
    assert "nouveau-lien" not in expired.html


async def test_a_revoked_invitation_says_so(site: Site, inviter: Inviter) -> None:
    link = await site.invite(inviter, "lea@example.org", "Léa")
    await revoke(site.app.engine, inviter, "lea@example.org", actor=ACTOR)
    page = await site.get(link)
    assert page.status == 410
    assert "Invitation retirée" in page.text
    assert (await site.post(link)).status == 410
    assert site.count(TrainerAccount) == 0


# ------------------------------------------------------------------ CSRF and origin


async def test_signed_in_forms_need_the_session_csrf_token(site: Site, inviter: Inviter) -> None:
    space = await signed_in(site, inviter, "anne@example.org")
    profile = {"first_name": "Mallory", "last_name": "X", "phone": "", "language": "fr"}

    missing = await site.post("/formateur/profil", profile)
    wrong = await site.post("/formateur/profil", {**profile, "csrf": space.csrf[:-1] + "x"})
    foreign = await site.post(
        "/formateur/profil", {**profile, "csrf": space.csrf}, Origin="https://evil.example"
    )
    for refused in (missing, wrong, foreign):
        assert refused.status == 403
        assert "Rien n'a été modifié" in refused.text
    names = site.app.db.run_sync(lambda s: list(s.scalars(select(TrainerAccount.first_name))))
    assert names == ["Anne"]

    done = await site.post(
        "/formateur/profil",
        {**profile, "first_name": "Annie", "phone": "06 12 34 56 78", "csrf": space.csrf},
        Origin=site.base,
    )
    assert done.status == 303
    after = await site.get(done.headers["Location"])
    assert "Votre profil est enregistré." in after.text
    assert 'value="06 12 34 56 78"' in after.html

    bad_phone = await site.post(
        "/formateur/profil", {**profile, "phone": "appelez-moi", "csrf": space.csrf}
    )
    assert bad_phone.status == 400
    assert "Le numéro de téléphone n'est pas valide" in bad_phone.text

    # Without a session, a token from a page does not help either.
    site.http.cookie_jar.clear()
    assert (await site.post("/formateur/profil", {**profile, "csrf": space.csrf})).status == 403
    assert (await site.get("/formateur")).status == 303


async def test_a_foreign_origin_cannot_accept_an_invitation(site: Site, inviter: Inviter) -> None:
    link = await site.invite(inviter, "anne@example.org")
    refused = await site.post(link, {"lang": "fr"}, Origin="https://evil.example")
    assert refused.status == 403
    # Under `Referrer-Policy: no-referrer` a browser sends `Origin: null`; Sec-Fetch-Site speaks.
    cross = await site.post(link, {"lang": "fr"}, Origin="null", **{"Sec-Fetch-Site": "cross-site"})
    assert cross.status == 403
    assert site.count(TrainerAccount) == 0
    same = {"Sec-Fetch-Site": "same-origin"}
    assert (await site.post(link, {"lang": "fr"}, Origin="null", **same)).status == 303


# ------------------------------------------------------------------ sign-in links


async def test_a_sign_in_link_works_once_and_unknown_addresses_get_the_same_answer(
    site: Site, inviter: Inviter, clock: FrozenClock
) -> None:
    await signed_in(site, inviter, "anne@example.org")
    site.http.cookie_jar.clear()
    sent = len(site.mail.sent)

    form = await site.get("/formateur/connexion")
    assert form.status == 200
    assert '<label for="email">Adresse électronique</label>' in form.html
    known = await site.post("/formateur/connexion", {"email": "Anne@Example.org", "lang": "fr"})
    unknown = await site.post("/formateur/connexion", {"email": "nobody@example.org", "lang": "fr"})
    assert (known.status, known.text) == (unknown.status, unknown.text)
    assert len(site.mail.sent) == sent + 1
    assert site.mail.sent[-1].recipient == "anne@example.org"
    assert "20 minutes" in site.mail.sent[-1].text
    link = site.link("/formateur/connexion/")
    raw = link.rsplit("/", 1)[1]
    assert raw not in str(site.app.db.run_sync(lambda s: s.execute(select(RateLimitHit)).all()))

    shown = await site.get(link)
    assert shown.status == 200
    assert "Me connecter" in shown.text
    assert shown.cookies == []  # the GET signs nobody in
    used = await site.post(link, {"lang": "fr"})
    assert used.status == 303
    assert (await site.get("/formateur")).status == 200
    replay = await site.post(link, {"lang": "fr"})
    assert replay.status == 410
    assert "Lien déjà utilisé" in replay.text

    await site.post("/formateur/connexion", {"email": "anne@example.org"})
    late = site.link("/formateur/connexion/")
    clock.advance(timedelta(minutes=21))
    expired = await site.post(late)
    assert expired.status == 410
    assert "Lien expiré" in expired.text
    assert (await site.get("/formateur/connexion/nope")).status == 400


async def test_sign_in_requests_are_rate_limited_per_address_and_per_client(
    site: Site, inviter: Inviter, clock: FrozenClock
) -> None:
    await signed_in(site, inviter, "anne@example.org")
    sent = len(site.mail.sent)
    for _ in range(5):
        page = await site.post("/formateur/connexion", {"email": "anne@example.org"})
        assert page.status == 200
    limited = await site.post("/formateur/connexion", {"email": "anne@example.org"})
    assert limited.status == 429
    assert len(site.mail.sent) == sent + 5
    # The same client, another address: the per-client bucket is full too.
    assert (await site.post("/formateur/connexion", {"email": "x@example.org"})).status == 429
    stored = site.app.db.run_sync(lambda s: list(s.scalars(select(RateLimitHit.bucket))))
    assert not any("anne" in name or "127.0.0.1" in name for name in stored)
    clock.advance(timedelta(hours=1, minutes=1))
    assert (await site.post("/formateur/connexion", {"email": "anne@example.org"})).status == 200


# ------------------------------------------------------------------ isolation


async def test_another_trainers_unavailability_cannot_be_deleted(
    site: Site, inviter: Inviter
) -> None:
    bob = await signed_in(site, inviter, "bob@example.org")
    added = await site.post(
        "/formateur/indisponibilites",
        {"csrf": bob.csrf, "starts_on": "2026-12-01", "ends_on": "2026-12-03", "note": "Congés"},
    )
    assert added.status == 303
    page = await site.get(added.headers["Location"])
    assert "Du 1er décembre 2026 au 3 décembre 2026 — Congés" in page.text
    [period] = site.app.db.run_sync(lambda s: list(s.scalars(select(TrainerUnavailability.id))))

    anne = await signed_in(site, inviter, "anne@example.org")
    assert "Congés" not in anne.text
    refused = await site.post(
        f"/formateur/indisponibilites/{period}/supprimer", {"csrf": anne.csrf}
    )
    assert refused.status == 404
    assert site.count(TrainerUnavailability) == 1

    bad = await site.post(
        "/formateur/indisponibilites",
        {"csrf": anne.csrf, "starts_on": "2026-12-05", "ends_on": "2026-12-04"},
    )
    assert bad.status == 400
    assert "La date de fin doit suivre la date de début." in bad.text


async def test_a_revoked_organisations_space_is_unreachable(
    site: Site, inviter: Inviter, app: App, clock: FrozenClock
) -> None:
    north = second_inviter(app, clock)
    await signed_in(site, inviter, "marc@example.org")
    space = await site.accept(await site.invite(north, "Marc@Example.org", "Marc"))
    assert "Votre espace formateur chez Atelier Nord" in space.text
    assert "Organisme affiché" in space.text
    trainers = dict(
        app.db.run_sync(lambda s: list(s.execute(select(Trainer.inviter_key, Trainer.id))))
    )
    north_id = trainers[north.key]
    _slot(app, north_id, "Secrets du Nord", clock.now() + timedelta(days=2))

    switched = await site.post("/formateur/espace", {"csrf": space.csrf, "trainer": "9999"})
    assert switched.status == 403

    await revoke(app.engine, north, "marc@example.org", actor=ACTOR)
    after = await site.get("/formateur")
    assert "chez Formations <Sud>" in after.text
    assert "Atelier Nord" not in after.text
    assert "Secrets du Nord" not in after.text
    back = await site.post("/formateur/espace", {"csrf": after.csrf, "trainer": str(north_id)})
    assert back.status == 403
    assert "Secrets du Nord" not in (await site.get("/formateur")).text


# ------------------------------------------------------------------ the space


def _slot(app: App, trainer_id: int, title: str, starts: datetime, hours: int = 3) -> None:
    def add(session: object) -> None:
        from sqlalchemy.orm import Session

        assert isinstance(session, Session)
        session.add(
            TrainerSlot(
                trainer_id=trainer_id,
                action_title=title,
                starts_at=starts,
                ends_at=starts + timedelta(hours=hours),
                room="Salle 2",
                participants=12,
                imported_at=starts - timedelta(days=30),
            )
        )

    app.db.run_sync(add)


async def test_the_space_shows_upcoming_slots_in_paris_time_and_hours(
    site: Site, inviter: Inviter, app: App, clock: FrozenClock
) -> None:
    await signed_in(site, inviter, "anne@example.org")
    [trainer_id] = app.db.run_sync(lambda s: list(s.scalars(select(Trainer.id))))
    _slot(app, trainer_id, "Développeur web — module 3", datetime(2026, 11, 25, 8, 0, tzinfo=UTC))
    _slot(app, trainer_id, "Gestion de projet", datetime(2026, 12, 2, 13, 0, tzinfo=UTC), hours=4)
    _slot(app, trainer_id, "Atelier d'hier", clock.now() - timedelta(days=3), hours=2)
    _slot(app, trainer_id, "Atelier ancien", clock.now() - timedelta(days=40), hours=5)
    page = await site.get("/formateur")
    for expected in (
        "25 novembre 2026, de 09:00 à 12:00",
        "Développeur web — module 3",
        "Salle : Salle 2 · 12 participants",
        "2 décembre 2026, de 14:00 à 18:00",
        "À venir 7 h",
        "Ces 30 derniers jours 2 h",
    ):
        assert expected in page.text, expected
    assert "Atelier d'hier" not in page.text
    assert "Atelier ancien" not in page.text


async def test_the_email_changes_only_after_the_link_sent_to_the_new_address(
    site: Site, inviter: Inviter, app: App
) -> None:
    space = await signed_in(site, inviter, "anne@example.org")
    asked = await site.post("/formateur/adresse", {"csrf": space.csrf, "email": "Anne@New.example"})
    assert asked.status == 303
    assert site.mail.sent[-1].recipient == "anne@new.example"
    link = site.link("/formateur/adresse/")
    emails = app.db.run_sync(lambda s: list(s.scalars(select(TrainerAccount.email))))
    assert emails == ["anne@example.org"]  # nothing changed yet

    shown = await site.get(link)
    assert "anne@new.example" in shown.text
    site.http.cookie_jar.clear()  # the link works from another browser too
    done = await site.post(link, {"lang": "fr"})
    assert done.status == 200
    assert "Vous vous connecterez désormais avec l'adresse anne@new.example" in done.text
    assert (await site.post(link)).status == 410
    emails = app.db.run_sync(lambda s: list(s.scalars(select(TrainerAccount.email))))
    assert emails == ["anne@new.example"]
    # The organisation's records keep the address it invited.
    assert app.db.run_sync(lambda s: list(s.scalars(select(Trainer.email)))) == ["anne@example.org"]

    sent = len(site.mail.sent)
    await site.post("/formateur/connexion", {"email": "anne@example.org"})
    assert len(site.mail.sent) == sent
    await site.post("/formateur/connexion", {"email": "anne@new.example"})
    assert site.mail.sent[-1].recipient == "anne@new.example"

    # An address another account uses: no mail, the same answer.
    bob = await signed_in(site, inviter, "bob@example.org")
    sent = len(site.mail.sent)
    taken = await site.post("/formateur/adresse", {"csrf": bob.csrf, "email": "anne@new.example"})
    assert taken.status == 303
    assert len(site.mail.sent) == sent


async def test_language_from_the_link_the_browser_and_the_account(
    site: Site, inviter: Inviter
) -> None:
    link = await site.invite(inviter, "anne@example.org")
    english = await site.get(link + "?lang=en")
    assert '<html lang="en">' in english.html
    assert "Accept the invitation" in english.text
    assert 'href="/formateur/invitation/' in english.html  # the switch back to French

    login = await site.get("/formateur/connexion", **{"Accept-Language": "en-GB,en;q=0.9"})
    assert "Sign in to your trainer space" in login.text
    login = await site.get("/formateur/connexion", **{"Accept-Language": "de, fr;q=0.5"})
    assert "Connexion à votre espace formateur" in login.text

    space = await site.accept(link)
    assert '<html lang="fr">' in space.html
    switched = await site.post("/formateur/langue", {"csrf": space.csrf, "language": "en"})
    assert switched.status == 303
    space = await site.get("/formateur")
    assert '<html lang="en">' in space.html
    assert "Your trainer space at Formations <Sud>" in space.text
    assert "Version française" in space.text

    await site.post("/formateur/connexion", {"email": "anne@example.org", "lang": "fr"})
    assert site.mail.sent[-1].subject == "Your sign-in link to the trainer space"


async def test_an_address_taken_before_the_confirmation_is_refused(
    site: Site, inviter: Inviter, app: App
) -> None:
    anne = await signed_in(site, inviter, "anne@example.org")
    await site.post("/formateur/adresse", {"csrf": anne.csrf, "email": "shared@example.org"})
    link = site.link("/formateur/adresse/")
    # Meanwhile another trainer accepts an invitation sent to that very address.
    await signed_in(site, inviter, "shared@example.org")
    refused = await site.post(link, {"lang": "fr"})
    assert refused.status == 409
    assert "Adresse déjà utilisée" in refused.text
    emails = app.db.run_sync(lambda s: sorted(s.scalars(select(TrainerAccount.email))))
    assert emails == ["anne@example.org", "shared@example.org"]


async def test_signing_out_ends_the_session(site: Site, inviter: Inviter) -> None:
    space = await signed_in(site, inviter, "anne@example.org")
    out = await site.post("/formateur/deconnexion", {"csrf": space.csrf})
    assert out.status == 200
    assert "Vous êtes déconnecté" in out.text
    [cookie] = out.cookies
    assert cookie.startswith('cordee_formateur="";') or "Max-Age=0" in cookie
    assert site.count(TrainerSession) == 0
    assert (await site.get("/formateur")).status == 303
