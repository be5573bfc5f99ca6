"""A partner contact authorises an access request in Chromium, from the link in the email."""

from __future__ import annotations

import re

import pytest

from bot.access_requests import send_request
from bot.app import App
from bot.channels.memory import MemoryChannel
from tests.browser.conftest import ARTIFACTS, CHROMIUM_ARGS, PUBLIC_URL
from tests.support.builders import Seed
from tests.support.components import chromium_path, require

pytestmark = pytest.mark.browser


async def test_the_contact_authorises_from_the_emailed_link(
    app: App,
    seed: Seed,
    mail: MemoryChannel,
    request: pytest.FixtureRequest,
) -> None:
    executable = chromium_path()
    require(executable is not None, "Chromium")
    assert executable is not None
    from playwright.async_api import async_playwright, expect

    base = await app.serve(host="127.0.0.1", port=0, scheduler=False)
    view = await send_request(
        app.engine, certifier=str(seed.certifier_id), partner=str(seed.organisation_id)
    )
    authorise = next(
        base + url.removeprefix(PUBLIC_URL)
        for url in re.findall(re.escape(PUBLIC_URL) + r"/lien/\S+", mail.sent[0].text)
        if app.verify_link(url.rsplit("/", 1)[1]).action == "authorise"
    )

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page()
            try:
                response = await page.goto(authorise)
                assert response is not None
                assert response.status == 200
                await expect(page.get_by_role("heading", level=1)).to_have_text(
                    "Autoriser l'accès à vos dossiers de formation"
                )
                await expect(page.get_by_role("main")).to_contain_text("Certif & Co")
                # Opening the page decided nothing.
                assert (await app.engine.view(view.public_id)).state == "pending"

                await page.get_by_role("button", name="Confirmer l'autorisation").click()

                await expect(page.get_by_role("heading", level=1)).to_have_text(
                    "Votre autorisation est enregistrée"
                )
                await expect(page.get_by_role("main")).to_contain_text(
                    "Un courriel de confirmation est en route"
                )
                assert (await app.engine.view(view.public_id)).state == "authorised"
                assert len(mail.sent) == 2
            except BaseException:
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=ARTIFACTS / f"{request.node.name}.png", full_page=True)
                raise
        finally:
            await browser.close()
