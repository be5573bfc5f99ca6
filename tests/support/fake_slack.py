"""A local fake of the Slack Web API (aiohttp, 127.0.0.1, port 0) that records every call.

`/api/<method>` (POST, or GET for the few methods slack_sdk reads that way) answers Slack-shaped
JSON (`{"ok": true, …}`) for the methods Cordée uses; arguments are read from the query string,
form and JSON bodies alike, as slack_sdk sends all three. Files shared in a channel are served
at `GET /files/<id>` to the bot token only; the external upload URL of
`files.getUploadURLExternal` is `POST /upload/<id>`; `response_url`s are `POST /respond/<n>`.
Faults a test can queue: `fail_next(method, error)` (an `ok: false` answer), and
`rate_limit_next(method, retry_after)` (HTTP 429 with Retry-After, as Slack does).

Socket Mode: `apps.connections.open` (with the app token) points at `GET /socket`, a WebSocket
that says hello, sends the queued `envelopes` and records the client's acknowledgements.

Also `signed_headers` and the `*_body` builders: requests to our `/slack/events` signed exactly
as Slack signs them, with the SDK's SignatureVerifier.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from aiohttp import WSMsgType, web
from slack_sdk.signature import SignatureVerifier

BOT_TOKEN = "xoxb-test-0000000000-cordee"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM_ID = "T0CORDEE"
BOT_USER = "U0CORDEEBOT"
APP_TOKEN = "xapp-1-A0CORDEE-0000-socket"


@dataclass
class Call:
    """One Web API call as the fake received it."""

    method: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class SharedFile:
    id: str
    name: str
    content: bytes
    filetype: str = "xml"
    mimetype: str = "application/xml"
    size: int | None = None  # as announced by Slack; defaults to len(content)


@dataclass
class FakeSlack:
    """The Web API, a file host and the response URLs, all recording what they were sent."""

    token: str = BOT_TOKEN
    # conversations.members by channel; anyone not listed is not a member.
    members: dict[str, list[str]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, SharedFile] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    responses: list[dict[str, Any]] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)
    # Socket Mode: envelopes sent once a client connects, and the acknowledgements it sent.
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    socket_acks: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""
    _faults: dict[str, deque[tuple[str, int, float]]] = field(
        default_factory=lambda: defaultdict(deque)
    )
    _ts: int = 0
    _uploads_announced: int = 0
    _runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> str:
        app = web.Application(client_max_size=400 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)  # a few methods are GETs
        app.router.add_get("/files/{file_id}", self._download)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/respond/{number}", self._respond)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self.api_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"  # the trailing slash matters to slack_sdk

    def response_url(self, number: int = 1) -> str:
        return f"{self.base_url}/respond/{number}"

    # ------------------------------------------------------------------ test helpers

    def fail_next(self, method: str, error: str = "internal_error") -> None:
        self._faults[method].append((error, 200, 0.0))

    def rate_limit_next(self, method: str, retry_after: float = 1) -> None:
        self._faults[method].append(("ratelimited", 429, retry_after))

    def share(self, shared: SharedFile) -> SharedFile:
        self.files[shared.id] = shared
        return shared

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    # ------------------------------------------------------------------ handlers

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await _body(request)
        self.calls.append(Call(method, dict(request.headers), body))
        faults = self._faults.get(method)
        if faults:
            error, status, retry_after = faults.popleft()
            headers = {"Retry-After": f"{retry_after:g}"} if status == 429 else {}
            return web.json_response({"ok": False, "error": error}, status=status, headers=headers)
        if method == "apps.connections.open":
            if request.headers.get("Authorization") != f"Bearer {APP_TOKEN}":
                return web.json_response({"ok": False, "error": "invalid_auth"})
            socket_url = self.base_url.replace("http://", "ws://") + "/socket"
            return web.json_response({"ok": True, "url": socket_url})
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        return web.json_response(self._answer(method, body))

    def _answer(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "team_id": TEAM_ID, "user_id": BOT_USER, "bot_id": "B0CORDEE"}
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            self._ts += 1
            ts = body.get("ts") or f"1700000000.{self._ts:06d}"
            return {"ok": True, "channel": body.get("channel"), "ts": ts, "message_ts": ts}
        if method == "conversations.members":
            channel = str(body.get("channel", ""))
            if channel not in self.members:
                return {"ok": False, "error": "channel_not_found"}
            return {"ok": True, "members": self.members[channel], "response_metadata": {}}
        if method == "users.lookupByEmail":
            email = str(body.get("email", "")).lower()
            found = [u for u in self.users.values() if u.get("profile", {}).get("email") == email]
            return (
                {"ok": True, "user": found[0]}
                if found
                else {"ok": False, "error": "users_not_found"}
            )
        if method == "users.info":
            user = self.users.get(str(body.get("user", "")))
            return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}
        if method == "files.info":
            shared = self.files.get(str(body.get("file", "")))
            if shared is None:
                return {"ok": False, "error": "file_not_found"}
            return {"ok": True, "file": self._file_json(shared)}
        if method == "files.getUploadURLExternal":
            self._uploads_announced += 1
            file_id = f"F0UPLOAD{self._uploads_announced:04d}"
            upload_url = f"{self.base_url}/upload/{file_id}"
            return {"ok": True, "upload_url": upload_url, "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = body.get("files")
            listed = json.loads(files) if isinstance(files, str) else files or []
            return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in listed]}
        return {"ok": True}

    def _file_json(self, shared: SharedFile) -> dict[str, Any]:
        return {
            "id": shared.id,
            "name": shared.name,
            "title": shared.name,
            "filetype": shared.filetype,
            "mimetype": shared.mimetype,
            "size": shared.size if shared.size is not None else len(shared.content),
            "url_private": f"{self.base_url}/files/{shared.id}",
            "url_private_download": f"{self.base_url}/files/{shared.id}",
        }

    async def _download(self, request: web.Request) -> web.StreamResponse:
        shared = self.files.get(request.match_info["file_id"])
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            # Slack answers an HTML login page, not an error status, to a missing token.
            return web.Response(text="<html>login</html>", content_type="text/html")
        if shared is None:
            raise web.HTTPNotFound
        self.downloads.append(shared.id)
        return web.Response(body=shared.content, content_type=shared.mimetype)

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        reader = await request.post()
        uploaded = next(iter(reader.values()), None) if reader else None
        if uploaded is not None and hasattr(uploaded, "file"):
            self.uploads[file_id] = uploaded.file.read()
        else:
            self.uploads[file_id] = await request.read()
        return web.Response(text=f"OK - {len(self.uploads[file_id])}")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        """Socket Mode: hello, then the queued envelopes; acknowledgements are recorded."""
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        await socket.send_json({"type": "hello", "num_connections": 1})
        for envelope in self.envelopes:
            await socket.send_json(envelope)
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                self.socket_acks.append(json.loads(message.data))
        return socket

    async def _respond(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        return web.Response(text="ok")


async def _body(request: web.Request) -> dict[str, Any]:
    """The call's arguments: slack_sdk sends some in the query string, the rest in the body."""
    arguments: dict[str, Any] = dict(request.query)
    if request.method == "GET":
        return arguments
    raw = await request.read()
    if request.content_type == "application/json":
        return arguments | dict(json.loads(raw or b"{}"))
    return arguments | {key: values[0] for key, values in parse_qs(raw.decode()).items()}


# ---------------------------------------------------------------------- signed requests


def signed_headers(
    body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None, json_body: bool
) -> dict[str, str]:
    """Headers Slack sends with a request to our endpoint, signature included."""
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
        "Content-Type": "application/json" if json_body else "application/x-www-form-urlencoded",
    }


def command_body(
    text: str,
    *,
    user: str,
    channel: str,
    response_url: str,
    command: str = "/cordee",
) -> str:
    return urlencode(
        {
            "command": command,
            "text": text,
            "user_id": user,
            "team_id": TEAM_ID,
            "channel_id": channel,
            "response_url": response_url,
            "trigger_id": "1337.42.abcd",
        }
    )


def action_body(
    action_id: str, value: str, *, user: str, channel: str, response_url: str, ts: str = "1.0"
) -> str:
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM_ID},
        "user": {"id": user},
        "channel": {"id": channel},
        "container": {"type": "message", "message_ts": ts, "channel_id": channel},
        "message": {"ts": ts, "text": "", "blocks": []},
        "response_url": response_url,
        "trigger_id": "1337.42.abcd",
        "actions": [
            {
                "action_id": action_id,
                "block_id": "actions",
                "value": value,
                "type": "button",
                "action_ts": "1700000001.000001",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


def event_body(event_id: str, event: dict[str, Any]) -> str:
    return json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": "A0CORDEE",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "event": event,
        }
    )
