"""A trainer accepts two organisations' invitations in Chromium, switches space and language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.app import App
from bot.channels.memory import MemoryChannel
from bot.clock import FrozenClock
from bot.store.models import Trainer, TrainerSlot
from bot.trainers import INVITATION_PATH, find_inviter, invite
from tests.browser.conftest import ARTIFACTS, CHROMIUM_ARGS, PUBLIC_URL
from tests.support.builders import ORGANISATION_SIRET, Seed
from tests.support.components import chromium_path, require
from tests.trainers.test_web import second_inviter

pytestmark = pytest.mark.browser


def _add_slots(app: App, inviter_key: str, title: str, starts: datetime) -> None:
    def add(session: Session) -> None:
        trainer_id = session.scalars(
            select(Trainer.id).where(Trainer.inviter_key == inviter_key)
        ).one()
        session.add(
            TrainerSlot(
                trainer_id=trainer_id,
                action_title=title,
                starts_at=starts,
                ends_at=starts + timedelta(hours=3, minutes=30),
                room="Salle Jaune",
                participants=9,
                imported_at=starts - timedelta(days=10),
            )
        )

    app.db.run_sync(add)


def _invitation_link(base: str, mail: MemoryChannel) -> str:
    text = mail.sent[-1].text
    start = text.index(PUBLIC_URL + INVITATION_PATH)
    return base + text[start:].split()[0].removeprefix(PUBLIC_URL)


async def test_the_trainer_accepts_switches_organisation_and_language(
    app: App,
    seed: Seed,
    mail: MemoryChannel,
    clock: FrozenClock,
    request: pytest.FixtureRequest,
) -> None:
    executable = chromium_path()
    require(executable is not None, "Chromium")
    assert executable is not None
    from playwright.async_api import async_playwright, expect

    base = await app.serve(host="127.0.0.1", port=0, scheduler=False)
    south = app.db.run_sync(lambda s: find_inviter(s, org=ORGANISATION_SIRET))
    north = second_inviter(app, clock)
    await invite(app.engine, south, email="marc@example.org", first_name="Marc", actor="staff:cli")
    south_link = _invitation_link(base, mail)
    await invite(app.engine, north, email="marc@example.org", first_name="Marc", actor="staff:cli")
    north_link = _invitation_link(base, mail)
    _add_slots(app, south.key, "Développeur web — module 3", datetime(2026, 11, 25, 8, tzinfo=UTC))
    _add_slots(app, north.key, "Gestion de projet agile", datetime(2026, 12, 1, 13, tzinfo=UTC))

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            # A phone-sized window: the pages must work at 360 px.
            context = await browser.new_context(
                locale="fr-FR", viewport={"width": 360, "height": 740}
            )
            page = await context.new_page()
            try:
                response = await page.goto(south_link)
                assert response is not None
                assert response.status == 200
                await expect(page.get_by_role("heading", level=1)).to_have_text(
                    "Invitation dans l'espace formateur de Formations <Sud>"
                )
                await page.get_by_role("button", name="Accepter l'invitation").click()
                await expect(page).to_have_url(base + "/formateur")
                await expect(page.get_by_role("heading", level=1)).to_contain_text(
                    "chez Formations <Sud>"
                )
                main = page.get_by_role("main")
                await expect(main).to_contain_text("Développeur web — module 3")
                await expect(main).to_contain_text("25 novembre 2026, de 09:00 à 12:30")
                await expect(main).to_contain_text("9 participants")
                await expect(main).not_to_contain_text("Gestion de projet agile")
                # Nothing wider than the phone's screen.
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= 360

                # The second organisation's invitation joins the same account.
                await page.goto(north_link)
                await page.get_by_role("button", name="Accepter l'invitation").click()
                await expect(page.get_by_role("heading", level=1)).to_contain_text(
                    "chez Atelier Nord"
                )
                await expect(main).to_contain_text("Gestion de projet agile")
                await expect(main).not_to_contain_text("Développeur web — module 3")

                await page.get_by_label("Organisme affiché").select_option(label="Formations <Sud>")
                await page.get_by_role("button", name="Changer d'organisme").click()
                await expect(page.get_by_role("heading", level=1)).to_contain_text(
                    "chez Formations <Sud>"
                )
                await expect(main).to_contain_text("Développeur web — module 3")

                await page.get_by_role("button", name="English version").click()
                await expect(page.locator("html")).to_have_attribute("lang", "en")
                await expect(page.get_by_role("heading", level=1)).to_contain_text(
                    "Your trainer space at Formations <Sud>"
                )
                await expect(main).to_contain_text("25 November 2026, 09:00 to 12:30")
                await expect(page.get_by_role("button", name="Version française")).to_be_visible()
            except BaseException:
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=ARTIFACTS / f"{request.node.name}.png", full_page=True)
                raise
        finally:
            await browser.close()
