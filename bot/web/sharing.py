"""« Gérer le partage »: the organisation pauses or resumes a certification, renews its API key.

Reached from the « manage » link of the confirmation email. As everywhere on these pages, a
GET only shows (bot/web/app.py adds this section to the manage page) and a POST decides.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.errors import Conflict, InvalidInput, NotFound, TokenInvalid
from bot.events import InstanceView
from bot.links import LINK_PATH
from bot.store.models import PartnerSync
from bot.sync.services import SyncServices
from bot.sync.sharing import (
    BY_ORGANISATION,
    CertificationSharing,
    pause_sharing,
    resume_sharing,
    sharing_status,
)
from bot.sync.status import update_credentials

# The decision pages' own helpers: this module adds a section to them, same rules, same look.
from bot.web.app import ACTOR, APP, Link, _decided, _language, _page, _resolve, _summary
from workflows.access_request import State

log = logging.getLogger("cordee.web")

SHARING_SUFFIX = "/partage"
CREDENTIALS_SUFFIX = "/identifiants"
CHANGES = ("pause", "resume")


def add_sharing_routes(web_app: web.Application) -> None:
    web_app.router.add_post(LINK_PATH + "{token:[^/]*}" + SHARING_SUFFIX, change_sharing)
    web_app.router.add_post(LINK_PATH + "{token:[^/]*}" + CREDENTIALS_SUFFIX, change_credentials)


async def sharing_context(request: web.Request, view: InstanceView) -> dict[str, Any]:
    """What the manage page shows per certification, and where its forms post."""
    app = request.app[APP]
    partnership_id = view.partnership_id
    if partnership_id is None or view.state != State.AUTHORISED:
        return {"sharing": [], "api_source": False}

    def read(session: Session) -> tuple[list[CertificationSharing], PartnerSync | None]:
        source = session.scalars(
            select(PartnerSync).where(PartnerSync.partnership_id == partnership_id)
        ).one_or_none()
        return sharing_status(session, partnership_id), source

    statuses, source = await app.db.run(read)
    token = request.match_info["token"]
    api = source is not None and source.source_kind == "api"
    return {
        "sharing": [status for status in statuses if status.authorised],
        "sharing_action": f"{LINK_PATH}{token}{SHARING_SUFFIX}",
        "api_source": api,
        "api_failing_since": source.failing_since if api and source else None,
        "credentials_action": f"{LINK_PATH}{token}{CREDENTIALS_SUFFIX}",
    }


async def change_sharing(request: web.Request) -> web.Response:
    """Pause or resume one certification; the organisation and the certifier are told."""
    language = await _language(request)
    link = await _manage_link(request)
    if link.view.state != State.AUTHORISED:
        return _decided(request, language, link.claim.action, link.view)
    form = await request.post()
    change = str(form.get("change", ""))
    code = str(form.get("certification", ""))
    if change not in CHANGES or not code:
        raise web.HTTPBadRequest(text="formulaire incomplet")
    services = SyncServices.of(request.app[APP])
    operation = pause_sharing if change == "pause" else resume_sharing
    try:
        result = await operation(
            services,
            partnership_id=_partnership(link.view),
            code=code,
            by=BY_ORGANISATION,
            actor=ACTOR,
        )
    except (Conflict, NotFound, InvalidInput) as error:
        # A second click, or a page left open while someone else changed it: nothing done.
        return _updated(request, language, link.view, change, code, status=409, problem=str(error))
    log.info("sharing %s by the organisation: %s", change, link.view.public_id)
    return _updated(request, language, link.view, change, result.code, title=result.title)


async def change_credentials(request: web.Request) -> web.Response:
    """The organisation's new API key: kept encrypted, and the next sync uses it at once."""
    language = await _language(request)
    link = await _manage_link(request)
    if link.view.state != State.AUTHORISED:
        return _decided(request, language, link.claim.action, link.view)
    form = await request.post()
    services = SyncServices.of(request.app[APP])
    try:
        await update_credentials(
            services, _partnership(link.view), str(form.get("api_key", "")), actor=ACTOR
        )
    except InvalidInput as error:
        return _updated(
            request, language, link.view, "credentials", "", status=400, problem=str(error)
        )
    log.info("API key renewed by the organisation: %s", link.view.public_id)
    return _updated(request, language, link.view, "credentials", "")


async def _manage_link(request: web.Request) -> Link:
    link = await _resolve(request)
    if link.claim.action != "manage":
        raise TokenInvalid("ce lien ne permet pas de gérer le partage")
    return link


def _partnership(view: InstanceView) -> int:
    if view.partnership_id is None:
        raise NotFound("partenariat introuvable")
    return view.partnership_id


def _updated(
    request: web.Request,
    language: str,
    view: InstanceView,
    change: str,
    code: str,
    *,
    status: int = 200,
    title: str = "",
    problem: str | None = None,
) -> web.Response:
    token = request.match_info["token"]
    return _page(
        request,
        "sharing_updated",
        language,
        status=status,
        change=change,
        code=code,
        certification_title=title,
        problem=problem,
        manage_url=f"{LINK_PATH}{token}?lang={language}",
        **_summary(view),
    )
