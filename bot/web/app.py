"""aiohttp application: decision pages behind signed links (GET shows, POST decides), /health."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from bot import __version__
from bot.access_requests import resend_manage_link
from bot.app import App
from bot.errors import InvalidTransition, NotFound, TokenExpired, TokenInvalid
from bot.events import InstanceView
from bot.fsm import Workflow
from bot.links import LINK_PATH, LinkClaim
from workflows.access_request import NAME, State

log = logging.getLogger("cordee.web")

APP = web.AppKey("cordee_app", App)
LANGUAGES = ("fr", "en")
ACTOR = "partner_contact:web"
RENEW_SUFFIX = "/nouveau-lien"
# A decision that can no longer be taken: 410 when the request itself is gone, 409 otherwise.
GONE_STATES = frozenset({State.EXPIRED, State.CANCELLED})
# The token is in the URL: nothing may cache the page or leak the address to another site.
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

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Link:
    """A verified link: what it asks for, and the request as it stands now."""

    claim: LinkClaim
    workflow: Workflow
    event: str
    view: InstanceView

    @property
    def possible(self) -> bool:
        return any(
            t.source == self.view.state and t.event == self.event for t in self.workflow.transitions
        )


def make_web_app(app: App) -> web.Application:
    web_app = web.Application(middlewares=[error_pages])
    web_app[APP] = app
    web_app.router.add_get("/health", health)
    # An empty or cut token still reaches the handler, which explains what went wrong.
    web_app.router.add_get(LINK_PATH + "{token:[^/]*}", show_link)
    web_app.router.add_post(LINK_PATH + "{token:[^/]*}", decide)
    web_app.router.add_post(LINK_PATH + "{token:[^/]*}" + RENEW_SUFFIX, renew_manage_link)
    from bot.web.sharing import add_sharing_routes  # it builds on this module's helpers

    add_sharing_routes(web_app)
    from bot.web.trainers import add_trainer_routes  # same: the trainer space's pages

    add_trainer_routes(web_app)
    if app.slack is not None:
        web_app.router.add_post("/slack/events", app.slack.handle)
    web_app.on_response_prepare.append(secure_headers)
    return web_app


# ------------------------------------------------------------------ handlers


async def health(request: web.Request) -> web.Response:
    try:
        await request.app[APP].db.run(_ping)
    except SQLAlchemyError as error:
        log.warning("health: database unavailable (%s)", type(error).__name__)
        body = {"status": "error", "database": "unavailable", "version": __version__}
        return web.json_response(body, status=503)
    return web.json_response({"status": "ok", "database": "ok", "version": __version__})


async def show_link(request: web.Request) -> web.Response:
    """Show the request and one confirm button; a GET never decides (mail scanners prefetch)."""
    language = await _language(request)
    link = await _resolve(request)
    if not link.possible:
        return _decided(request, language, link.claim.action, link.view)
    extra: dict[str, Any] = {}
    if link.claim.action == "manage":
        from bot.web.sharing import sharing_context  # pause, resume and API key, per certification

        extra = await sharing_context(request, link.view)
    return _page(
        request, "decision", language, action=link.claim.action, **_summary(link.view), **extra
    )


async def decide(request: web.Request) -> web.Response:
    language = await _language(request)
    link = await _resolve(request)
    engine = request.app[APP].engine
    try:
        outcome = await engine.fire(link.view.public_id, link.event, actor=ACTOR)
    except InvalidTransition:
        # Someone decided in between (another click, a racing request): the first one won.
        view = await engine.view(link.view.public_id)
        return _decided(request, language, link.claim.action, view)
    log.info("link decision recorded: %s %s", outcome.instance.public_id, link.event)
    return _page(
        request, "recorded", language, action=link.claim.action, **_summary(outcome.instance)
    )


async def renew_manage_link(request: web.Request) -> web.Response:
    """From an expired « manage » link: email a fresh one to the contact on file (once a day)."""
    language = await _language(request)
    app = request.app[APP]
    claim = app.renewable_claim(request.match_info["token"])
    if claim is None or claim.workflow != NAME:
        raise TokenInvalid("lien invalide")
    try:
        await resend_manage_link(app.engine, claim.public_id)
    except InvalidTransition:
        view = await app.engine.view(claim.public_id)
        return _decided(request, language, claim.action, view)
    # The same page whether or not a mail went out: the answer reveals nothing to a third party.
    return _page(request, "link_renewed", language)


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn the expected failures into pages that say what to do next."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _page(request, "not_found", await _language(request), status=404)
    except TokenInvalid:
        log.info("link rejected: invalid or incomplete token")
        return _page(request, "link_invalid", await _language(request), status=400)
    except TokenExpired:
        log.info("link rejected: expired token")
        token = request.match_info.get("token", "")
        renewable = request.method == "GET" and request.app[APP].renewable_claim(token) is not None
        return _page(
            request,
            "link_expired",
            await _language(request),
            status=410,
            renew_action=f"{LINK_PATH}{token}{RENEW_SUFFIX}" if renewable else None,
        )
    except NotFound:
        return _page(request, "not_found", await _language(request), status=404)
    except OperationalError as error:
        log.warning("database unavailable while serving a page (%s)", type(error).__name__)
        return _page(request, "unavailable", await _language(request), status=503)


async def secure_headers(_request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


# ------------------------------------------------------------------- helpers


def _ping(session: Session) -> None:
    session.execute(text("SELECT 1"))


async def _language(request: web.Request) -> str:
    """French unless asked otherwise, by `?lang=` or by the form's hidden `lang` field."""
    form: Mapping[str, Any] = await request.post() if request.method == "POST" else {}
    value = form.get("lang") or request.query.get("lang", "")
    return value if value in LANGUAGES else "fr"


async def _resolve(request: web.Request) -> Link:
    """Verify the token and load the request; raises TokenInvalid, TokenExpired or NotFound."""
    app = request.app[APP]
    claim = app.verify_link(request.match_info["token"])
    if claim.workflow != NAME:
        raise NotFound("ces pages ne servent que les demandes d'accès aux dossiers")
    workflow = app.engine.workflow(claim.workflow)
    event = workflow.link_actions.get(claim.action)
    if event is None:
        raise TokenInvalid("action inconnue")
    view = await app.engine.view(claim.public_id)
    if view.workflow != claim.workflow:
        raise NotFound("demande introuvable")
    return Link(claim, workflow, event, view)


def _summary(view: InstanceView) -> dict[str, Any]:
    data = view.data
    pending = view.state == State.PENDING
    return {
        "reference": view.public_id,
        "state": view.state,
        "state_entered_at": view.state_entered_at,
        "created_at": view.created_at,
        "certifier_name": data["certifier_name"],
        "organisation_name": data["organisation_name"],
        "organisation_siret": _siret(str(data["organisation_siret"])),
        "certifications": data["certifications"],
        "deadline": view.deadline if pending else None,
    }


def _siret(value: str) -> str:
    """« 44306184100047 » reads and checks more easily as « 443 061 841 00047 » (never split)."""
    if len(value) != 14 or not value.isdigit():
        return value
    return "\u00a0".join((value[:3], value[3:6], value[6:9], value[9:]))


def _decided(request: web.Request, language: str, action: str, view: InstanceView) -> web.Response:
    status = 410 if view.state in GONE_STATES else 409
    return _page(request, "decided", language, status=status, action=action, **_summary(view))


def _page(
    request: web.Request, name: str, language: str, *, status: int = 200, **context: Any
) -> web.Response:
    other = "en" if language == "fr" else "fr"
    html = request.app[APP].renderer.page(
        name,
        language,
        {"lang": language, "switch_url": str(request.rel_url.with_query(lang=other)), **context},
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
