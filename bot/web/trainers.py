"""The trainer space: invitation pages, sign-in by emailed link, and the signed-in space.

As on the decision pages, a GET only shows and a POST acts (mail scanners open links). Forms
of the signed-in space carry the session's CSRF token; the forms before a session (accepting
an invitation, asking for or using a sign-in link) are guarded by the secret in their URL,
the SameSite cookie and the Origin header when the browser sends one. Every id a handler acts
on comes from the session, or is checked against the session's account.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import paris
from bot.errors import Conflict, InvalidInput, InvalidTransition, TokenError, TokenInvalid
from bot.render import format_date
from bot.store.models import (
    TrainerAccount,
    TrainerSlot,
    TrainerUnavailability,
    WorkflowInstance,
)
from bot.trainer_accounts import (
    EMAIL,
    LOGIN,
    SESSION_LIFETIME,
    RateLimited,
    SignedIn,
    TokenUnusable,
    add_unavailability,
    check_token,
    close_session,
    confirm_email_change,
    delete_unavailability,
    open_session,
    renew_invitation,
    request_email_change,
    request_login_link,
    session_for,
    set_language,
    switch_space,
    update_profile,
    use_login_token,
)
from bot.trainers import INVITATION_PATH, Invitation, InvitationUnusable, accept_in, read_invitation
from bot.web.app import APP, LANGUAGES, _page
from workflows.trainer_invitation import NAME as INVITATION

log = logging.getLogger("cordee.web")

SPACE = "/formateur"
LOGIN_FORM = "/formateur/connexion"
COOKIE = "cordee_formateur"
RENEW_SUFFIX = "/nouveau-lien"
# What a trainer reads for the last month's hours: the 30 days before now.
PAST_WINDOW = timedelta(days=30)
UPCOMING_SHOWN = 100
# A genuine but expired invitation link still names its inviter for this long.
OLD_LINKS = timedelta(days=3660)
# The only notices a redirect may ask the space to show (never free text from the URL).
NOTICES = frozenset({"profile", "language", "space", "unavailability", "deleted", "email_sent"})

SignedHandler = Callable[
    [web.Request, SignedIn, MultiDictProxy[str | bytes | Any]], Awaitable[web.StreamResponse]
]


def add_trainer_routes(web_app: web.Application) -> None:
    router = web_app.router
    token = "{token:[^/]*}"  # noqa: S105 -- a route pattern, not a secret
    router.add_get(INVITATION_PATH + token, show_invitation)
    router.add_post(INVITATION_PATH + token, accept_invitation)
    router.add_post(INVITATION_PATH + token + RENEW_SUFFIX, renew_invitation_link)
    router.add_get(LOGIN_FORM, login_form)
    router.add_post(LOGIN_FORM, login_request)
    router.add_get(LOGIN_FORM + "/" + token, show_login_link)
    router.add_post(LOGIN_FORM + "/" + token, use_login_link)
    router.add_get(SPACE, space)
    router.add_post(SPACE + "/profil", change_profile)
    router.add_post(SPACE + "/langue", change_language)
    router.add_post(SPACE + "/espace", change_space)
    router.add_post(SPACE + "/indisponibilites", add_period)
    router.add_post(SPACE + r"/indisponibilites/{period:\d+}/supprimer", delete_period)
    router.add_post(SPACE + "/adresse", ask_email_change)
    router.add_get(SPACE + "/adresse/" + token, show_email_link)
    router.add_post(SPACE + "/adresse/" + token, use_email_link)
    router.add_post(SPACE + "/deconnexion", sign_out)


# ------------------------------------------------------------------ invitations


async def show_invitation(request: web.Request) -> web.Response:
    """Who invites, which address, until when, and one accept button; the GET accepts nothing."""
    app = request.app[APP]
    token = request.match_info["token"]
    try:
        invitation = await app.db.run(lambda s: read_invitation(app.engine, s, token))
    except InvitationUnusable as error:
        return await _unusable(request, error.kind, error.invitation)
    except TokenInvalid:
        return await _unusable(request, "invalid", None)
    language = await _language(request, invitation.language)
    return _page(
        request,
        "trainer_invitation",
        language,
        inviter_name=invitation.inviter_name,
        email=invitation.email,
        first_name=invitation.first_name,
        deadline=invitation.deadline,
    )


async def accept_invitation(request: web.Request) -> web.StreamResponse:
    """Accept, open a session on that organisation's space, and go there."""
    if not _same_origin(request):
        return await _forbidden(request)
    app = request.app[APP]
    token = request.match_info["token"]
    now = app.engine.clock.now()
    old = request.cookies.get(COOKIE)

    def work(session: Session) -> str:
        invitation = read_invitation(app.engine, session, token)
        account_id = accept_in(app.engine, session, token)
        close_session(session, old)
        cookie, _csrf = open_session(session, account_id, now, invitation.trainer_id)
        return cookie

    try:
        cookie = await app.db.run(work)
    except InvitationUnusable as error:
        return await _unusable(request, error.kind, error.invitation)
    except InvalidTransition:
        # Two clicks racing: the first one accepted.
        return await _unusable(request, "used", None)
    except TokenInvalid:
        return await _unusable(request, "invalid", None)
    await app.engine.deliver()
    log.info("trainer invitation accepted")
    return _signed_in_redirect(request, cookie)


async def renew_invitation_link(request: web.Request) -> web.Response:
    """From a replaced link: a fresh one by email, to the invited address (rate-limited)."""
    if not _same_origin(request):
        return await _forbidden(request)
    app = request.app[APP]
    token = request.match_info["token"]
    try:
        await app.db.run(lambda s: read_invitation(app.engine, s, token))
    except InvitationUnusable as error:
        if error.kind != "replaced" or error.invitation is None:
            return await _unusable(request, error.kind, error.invitation)
        invitation = error.invitation
    except TokenInvalid:
        return await _unusable(request, "invalid", None)
    else:
        # Still the current link: nothing to renew, the invitation page does it all.
        raise web.HTTPSeeOther(INVITATION_PATH + token)
    language = await _language(request, invitation.language)
    try:
        await renew_invitation(app.engine, invitation, request.remote)
    except RateLimited:
        return _message(request, language, "rate_limited", status=429)
    except Conflict:
        return await _unusable(request, "used", invitation)
    log.info("trainer invitation link renewed from a replaced link")
    return _message(request, language, "invitation_renewed", email=invitation.email)


async def _unusable(request: web.Request, kind: str, invitation: Invitation | None) -> web.Response:
    """Which case, and what to do next: a new link (replaced), the organisation, or sign-in."""
    language = await _language(request, invitation.language if invitation else None)
    token = request.match_info.get("token", "")
    inviter_name = invitation.inviter_name if invitation else ""
    if kind == "expired" and invitation is None:
        inviter_name = await _expired_inviter(request, token)
    return _page(
        request,
        "trainer_link",
        language,
        status=400 if kind == "invalid" else 410,
        kind=kind,
        inviter_name=inviter_name,
        renew_action=INVITATION_PATH + token + RENEW_SUFFIX if kind == "replaced" else None,
        switch_url=_switch(request, language),
    )


async def _expired_inviter(request: web.Request, token: str) -> str:
    """Who invited, behind a link too old to verify as current: the page can name them."""
    app = request.app[APP]
    try:
        claim = app.links.verify(token, OLD_LINKS)
    except TokenError:
        return ""

    def read(session: Session) -> str:
        instance = session.scalar(
            select(WorkflowInstance).where(
                WorkflowInstance.public_id == claim.public_id,
                WorkflowInstance.workflow == INVITATION,
            )
        )
        return str(instance.data.get("inviter_name", "")) if instance else ""

    return await app.db.run(read)


# ------------------------------------------------------------------ sign-in


async def login_form(request: web.Request) -> web.Response:
    return _page(request, "trainer_login", await _language(request))


async def login_request(request: web.Request) -> web.Response:
    """The same answer whether or not the address has an account."""
    if not _same_origin(request):
        return await _forbidden(request)
    language = await _language(request)
    form = await request.post()
    app = request.app[APP]
    try:
        await request_login_link(app.engine, str(form.get("email", "")), language, request.remote)
    except RateLimited:
        return _message(request, language, "rate_limited", status=429)
    return _message(request, language, "login_sent")


async def show_login_link(request: web.Request) -> web.Response:
    return await _show_account_link(request, LOGIN)


async def use_login_link(request: web.Request) -> web.StreamResponse:
    """Sign in (the link works once) and go to the space."""
    if not _same_origin(request):
        return await _forbidden(request)
    app = request.app[APP]
    raw = request.match_info["token"]
    now = app.engine.clock.now()
    old = request.cookies.get(COOKIE)

    def work(session: Session) -> str:
        account_id = use_login_token(session, raw, now)
        close_session(session, old)
        return open_session(session, account_id, now)[0]

    try:
        cookie = await app.db.run(work)
    except TokenUnusable as error:
        return await _account_link_problem(request, LOGIN, error.kind)
    log.info("trainer signed in")
    return _signed_in_redirect(request, cookie)


async def show_email_link(request: web.Request) -> web.Response:
    return await _show_account_link(request, EMAIL)


async def use_email_link(request: web.Request) -> web.Response:
    """Confirm a new sign-in address: the account's only, not the organisations' records."""
    if not _same_origin(request):
        return await _forbidden(request)
    app = request.app[APP]
    raw = request.match_info["token"]
    now = app.engine.clock.now()
    language = await _language(request)
    try:
        address = await app.db.run(lambda s: confirm_email_change(s, raw, now))
    except TokenUnusable as error:
        return await _account_link_problem(request, EMAIL, error.kind)
    except InvalidInput:
        return _message(request, language, "email_taken", status=409)
    log.info("trainer sign-in address changed")
    return _message(request, language, "email_changed", email=address)


async def _show_account_link(request: web.Request, purpose: str) -> web.Response:
    app = request.app[APP]
    raw = request.match_info["token"]
    now = app.engine.clock.now()

    def read(session: Session) -> tuple[str, str | None]:
        token = check_token(session, raw, purpose, now)
        account = session.get(TrainerAccount, token.account_id)
        return (account.language if account else "fr"), token.new_email

    try:
        account_language, new_email = await app.db.run(read)
    except TokenUnusable as error:
        return await _account_link_problem(request, purpose, error.kind)
    language = await _language(request, account_language)
    return _page(
        request, "trainer_confirm", language, purpose=purpose, new_email=new_email, problem=None
    )


async def _account_link_problem(request: web.Request, purpose: str, kind: str) -> web.Response:
    language = await _language(request)
    return _page(
        request,
        "trainer_confirm",
        language,
        status=400 if kind == "unknown" else 410,
        purpose=purpose,
        problem=kind,
        new_email=None,
        switch_url=_switch(request, language),
    )


# ------------------------------------------------------------------ the space


def signed_post(handler: SignedHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A form of the signed-in space: a live session and its CSRF token, or 403 and nothing."""

    @wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        if not _same_origin(request):
            return await _forbidden(request)
        signed = await _session(request)
        form = await request.post()
        sent = form.get("csrf")
        if (
            signed is None
            or not isinstance(sent, str)
            or not secrets.compare_digest(sent.encode(), signed.csrf_token.encode())
        ):
            log.info("trainer form refused: no session or CSRF token mismatch")
            return await _forbidden(request)
        return await handler(request, signed, form)

    return checked


async def space(request: web.Request) -> web.Response:
    signed = await _session(request)
    if signed is None:
        raise web.HTTPSeeOther(LOGIN_FORM)
    notice = request.query.get("ok", "")
    return await _space_page(request, signed, notice=notice if notice in NOTICES else None)


@signed_post
async def change_profile(
    request: web.Request, signed: SignedIn, form: MultiDictProxy[Any]
) -> web.StreamResponse:
    app = request.app[APP]
    now = app.engine.clock.now()
    try:
        await app.db.run(
            lambda s: update_profile(
                s,
                signed.account_id,
                first_name=str(form.get("first_name", "")),
                last_name=str(form.get("last_name", "")),
                phone=str(form.get("phone", "")),
                language=str(form.get("language", "")),
                now=now,
            )
        )
    except InvalidInput as error:
        return await _space_page(request, signed, error=f"profile_{error}", status=400)
    raise web.HTTPSeeOther(SPACE + "?ok=profile")


@signed_post
async def change_language(
    request: web.Request, signed: SignedIn, form: MultiDictProxy[Any]
) -> web.StreamResponse:
    app = request.app[APP]
    now = app.engine.clock.now()
    language = str(form.get("language", ""))
    await app.db.run(lambda s: set_language(s, signed.account_id, language, now))
    raise web.HTTPSeeOther(SPACE)


@signed_post
async def change_space(
    request: web.Request, signed: SignedIn, form: MultiDictProxy[Any]
) -> web.StreamResponse:
    app = request.app[APP]
    wanted = str(form.get("trainer", ""))
    try:
        await app.db.run(lambda s: switch_space(s, signed, int(wanted) if wanted.isdigit() else 0))
    except InvalidInput:
        return await _forbidden(request)
    raise web.HTTPSeeOther(SPACE + "?ok=space")


@signed_post
async def add_period(
    request: web.Request, signed: SignedIn, form: MultiDictProxy[Any]
) -> web.StreamResponse:
    app = request.app[APP]
    now = app.engine.clock.now()
    try:
        starts = date.fromisoformat(str(form.get("starts_on", "")))
        ends = date.fromisoformat(str(form.get("ends_on", "")) or starts.isoformat())
        if ends < paris(now).date():
            raise InvalidInput("past")
        note = str(form.get("note", ""))
        await app.db.run(
            lambda s: add_unavailability(s, signed.account_id, starts, ends, note, now)
        )
    except (ValueError, InvalidInput) as error:
        reason = str(error) if isinstance(error, InvalidInput) else "date"
        return await _space_page(request, signed, error=f"period_{reason}", status=400)
    raise web.HTTPSeeOther(SPACE + "?ok=unavailability")


@signed_post
async def delete_period(
    request: web.Request, signed: SignedIn, _form: MultiDictProxy[Any]
) -> web.StreamResponse:
    app = request.app[APP]
    period = int(request.match_info["period"])
    deleted = await app.db.run(lambda s: delete_unavailability(s, signed.account_id, period))
    if not deleted:
        # Someone else's period, or one already gone: the same answer, nothing revealed.
        raise web.HTTPNotFound()
    raise web.HTTPSeeOther(SPACE + "?ok=deleted")


@signed_post
async def ask_email_change(
    request: web.Request, signed: SignedIn, form: MultiDictProxy[Any]
) -> web.StreamResponse:
    app = request.app[APP]
    try:
        await request_email_change(
            app.engine, signed.account_id, str(form.get("email", "")), request.remote
        )
    except InvalidInput:
        return await _space_page(request, signed, error="email_invalid", status=400)
    except RateLimited:
        return await _space_page(request, signed, error="rate_limited", status=429)
    raise web.HTTPSeeOther(SPACE + "?ok=email_sent")


@signed_post
async def sign_out(
    request: web.Request, signed: SignedIn, _form: MultiDictProxy[Any]
) -> web.StreamResponse:
    app = request.app[APP]
    cookie = request.cookies.get(COOKIE)
    language = await app.db.run(lambda s: _account_language(s, signed.account_id))
    await app.db.run(lambda s: close_session(s, cookie))
    response = _message(request, language, "signed_out", switch_url=f"{LOGIN_FORM}?lang={language}")
    response.del_cookie(COOKIE, path=SPACE)
    return response


# ------------------------------------------------------------------ space data


@dataclass(frozen=True)
class SlotView:
    starts_at: datetime
    start: str
    end: str
    title: str
    room: str
    participants: int


async def _space_page(
    request: web.Request,
    signed: SignedIn,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    app = request.app[APP]
    now = app.engine.clock.now()
    data = await app.db.run(lambda s: _space_data(s, signed, now))
    language = str(data.pop("language"))
    return _page(
        request,
        "trainer_space",
        language,
        status=status,
        csrf=signed.csrf_token,
        notice=notice,
        error=error,
        spaces=signed.spaces,
        current=signed.trainer_id,
        **data,
    )


def _space_data(session: Session, signed: SignedIn, now: datetime) -> dict[str, Any]:
    account = session.get(TrainerAccount, signed.account_id)
    if account is None:
        raise web.HTTPNotFound()
    language = account.language if account.language in LANGUAGES else "fr"
    slots: list[TrainerSlot] = []
    past_minutes = 0
    if signed.trainer_id is not None:
        # Only the session's own space: no id from the request reaches this query.
        slots = list(
            session.scalars(
                select(TrainerSlot)
                .where(TrainerSlot.trainer_id == signed.trainer_id, TrainerSlot.ends_at > now)
                .order_by(TrainerSlot.starts_at, TrainerSlot.id)
            )
        )
        past = session.scalars(
            select(TrainerSlot).where(
                TrainerSlot.trainer_id == signed.trainer_id,
                TrainerSlot.ends_at <= now,
                TrainerSlot.starts_at >= now - PAST_WINDOW,
            )
        )
        past_minutes = sum(_minutes(slot) for slot in past)
    today = paris(now).date()
    periods = list(
        session.scalars(
            select(TrainerUnavailability)
            .where(
                TrainerUnavailability.account_id == signed.account_id,
                TrainerUnavailability.ends_on >= today,
            )
            .order_by(TrainerUnavailability.starts_on, TrainerUnavailability.id)
        )
    )
    current = next((s for s in signed.spaces if s.trainer_id == signed.trainer_id), None)
    return {
        "language": language,
        "account": {
            "email": account.email,
            "first_name": account.first_name,
            "last_name": account.last_name,
            "phone": account.phone,
            "language": language,
        },
        "inviter_name": current.inviter_name if current else None,
        "slots": [_slot_view(slot) for slot in slots[:UPCOMING_SHOWN]],
        "more_slots": max(0, len(slots) - UPCOMING_SHOWN),
        "upcoming_hours": _duration(sum(_minutes(slot) for slot in slots), language),
        "past_hours": _duration(past_minutes, language),
        "periods": [
            {
                "id": p.id,
                "starts_on": p.starts_on,
                "ends_on": p.ends_on,
                "starts_label": _day(p.starts_on, language),
                "ends_label": _day(p.ends_on, language),
                "note": p.note,
            }
            for p in periods
        ],
        "today": today.isoformat(),
    }


def _account_language(session: Session, account_id: int) -> str:
    account = session.get(TrainerAccount, account_id)
    return account.language if account and account.language in LANGUAGES else "fr"


def _slot_view(slot: TrainerSlot) -> SlotView:
    return SlotView(
        starts_at=slot.starts_at,
        start=paris(slot.starts_at).strftime("%H:%M"),
        end=paris(slot.ends_at).strftime("%H:%M"),
        title=slot.action_title,
        room=slot.room,
        participants=slot.participants,
    )


def _day(day: date, language: str) -> str:
    # Noon UTC falls on the same calendar day in Paris, which the shared date filter uses.
    return format_date(datetime.combine(day, time(12), UTC), language)


def _minutes(slot: TrainerSlot) -> int:
    return max(0, int((slot.ends_at - slot.starts_at).total_seconds() // 60))


def _duration(minutes: int, language: str) -> str:
    """« 7 h 30 » in French, « 7 h 30 min » in English; whole hours without minutes."""
    hours, rest = divmod(minutes, 60)
    if not rest:
        return f"{hours}\u00a0h"
    return f"{hours}\u00a0h\u00a0{rest:02d}" + ("" if language == "fr" else "\u00a0min")


# ------------------------------------------------------------------ helpers


async def _session(request: web.Request) -> SignedIn | None:
    app = request.app[APP]
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    now = app.engine.clock.now()
    return await app.db.run(lambda s: session_for(s, cookie, now))


def _signed_in_redirect(request: web.Request, cookie: str) -> web.Response:
    response = web.Response(status=303, headers={"Location": SPACE})
    public = request.app[APP].links.public_url
    response.set_cookie(
        COOKIE,
        cookie,
        path=SPACE,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="Lax",
        # Over plain HTTP (development, tests) a Secure cookie would never come back.
        secure=public.startswith("https://"),
    )
    return response


def _same_origin(request: web.Request) -> bool:
    """Refuse a POST a browser says comes from another site; no information lets it through.

    The pages' `Referrer-Policy: no-referrer` makes browsers send `Origin: null` even on
    same-origin form posts, so `null` says nothing; Sec-Fetch-Site (sent by current browsers
    whatever the policy) still tells a cross-site post apart.
    """
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return False
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return True
    public = urlsplit(request.app[APP].links.public_url)
    allowed = {f"{request.scheme}://{request.host}", f"{public.scheme}://{public.netloc}"}
    return origin in allowed


async def _forbidden(request: web.Request) -> web.Response:
    language = await _language(request)
    return _message(request, language, "forbidden", status=403)


def _message(
    request: web.Request, language: str, message: str, *, status: int = 200, **context: Any
) -> web.Response:
    context.setdefault("switch_url", _switch(request, language))
    context.setdefault("email", "")
    return _page(request, "trainer_message", language, status=status, message=message, **context)


def _switch(request: web.Request, language: str) -> str:
    """The other language's version of the page: the same GET, or for a POST the page whose
    form led here (a signed-in form's answer falls back to the sign-in page)."""
    other = "en" if language == "fr" else "fr"
    path = request.path
    if request.method == "POST":
        if path.startswith(INVITATION_PATH):
            path = path.removesuffix(RENEW_SUFFIX)
        elif not (path.startswith(LOGIN_FORM) or path.startswith(SPACE + "/adresse/")):
            path = LOGIN_FORM
    return f"{path}?lang={other}"


async def _language(request: web.Request, preferred: str | None = None) -> str:
    """`?lang=` or the form's `lang`, then the invitation's or account's, then the browser's."""
    form: Mapping[str, Any] = await request.post() if request.method == "POST" else {}
    asked = form.get("lang") or request.query.get("lang", "")
    if asked in LANGUAGES:
        return str(asked)
    if preferred in LANGUAGES:
        return str(preferred)
    return _accept_language(request.headers.get("Accept-Language", ""))


def _accept_language(header: str) -> str:
    """The first of French or English in the browser's preferences; French by default."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, index, primary))
    return min(ranked)[2] if ranked else "fr"
