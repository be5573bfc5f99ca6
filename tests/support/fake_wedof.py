"""A local fake of a Wedof-style registration-folder API (aiohttp, 127.0.0.1, port 0).

GET /api/registrationFolders?page=&limit=&updatedSince=&sort=lastUpdate&order=asc with the
`X-Api-Key` header: a JSON list, oldest update first, and `X-Total-Count`. Records carry the
fields a real export has, prices and notes included, so tests can prove they never pass.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

API_KEY = "wedof-test-key-7f3a9c"
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def record(
    number: int | str,
    *,
    state: str = "accepted",
    code: str = "RNCP34567",
    updated: datetime | None = None,
    last_name: str = "Martin",
) -> dict[str, Any]:
    """A registration folder as the API returns it (with data that must never be shared)."""
    stamp = updated or T0 + timedelta(minutes=number if isinstance(number, int) else 0)
    return {
        "externalId": f"R-{number}" if isinstance(number, int) else number,
        "state": state,
        "lastUpdate": stamp.isoformat().replace("+00:00", "Z"),
        "attendee": {
            "firstName": "Claire",
            "lastName": last_name,
            "email": "claire@example.org",
            "phoneNumber": "0612345678",
            "birthName": "NE-PAS-PARTAGER-NAISSANCE",
        },
        "trainingActionInfo": {
            "sessionStartDate": "2026-09-01",
            "sessionEndDate": "2026-11-30",
            "totalIncl": 1490.5,
            "totalExcl": "PRIX-HT-1242",
        },
        "certification": {"code": code, "name": "Développeur web"},
        "history": {f"{state}Date": "2026-08-15T10:00:00+02:00"},
        "billingState": "FACTURATION-PAYEE",
        "notes": "NOTE-PRIVEE-SECRETE",
        "fundingType": "FINANCEMENT-CPF",
    }


@dataclass
class FakeWedof:
    folders: list[dict[str, Any]] = field(default_factory=list)
    api_key: str = API_KEY
    # Faults a test can switch on: an HTTP status for every request, or a slow answer.
    status: int | None = None
    delay: float = 0.0
    requests: list[dict[str, str]] = field(default_factory=list)
    base_url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/api/registrationFolders", self._list)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}/api"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def update(self, number: int, **changes: Any) -> None:
        """Change a folder as the partner would: its lastUpdate moves forward."""
        for index, folder in enumerate(self.folders):
            if folder["externalId"] == f"R-{number}":
                newest = max(_instant(f["lastUpdate"]) for f in self.folders)
                self.folders[index] = record(
                    number, updated=newest + timedelta(minutes=1), **changes
                )
                return
        raise KeyError(number)

    async def _list(self, request: web.Request) -> web.Response:
        self.requests.append(
            {"api_key": request.headers.get("X-Api-Key", ""), **dict(request.query)}
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status is not None:
            return web.json_response({"error": "simulated"}, status=self.status)
        if request.headers.get("X-Api-Key") != self.api_key:
            return web.json_response({"error": "invalid api key"}, status=401)
        page = int(request.query.get("page", "1"))
        limit = int(request.query.get("limit", "100"))
        since = request.query.get("updatedSince")
        chosen = sorted(self.folders, key=lambda f: _instant(f["lastUpdate"]))
        if since:
            threshold = _instant(since)
            chosen = [f for f in chosen if _instant(f["lastUpdate"]) >= threshold]
        body = chosen[(page - 1) * limit : page * limit]
        return web.json_response(body, headers={"X-Total-Count": str(len(chosen))})


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@contextmanager
def fake_wedof_in_thread(fake: FakeWedof) -> Iterator[FakeWedof]:
    """Serve `fake` from its own event loop in a thread (for code that runs asyncio.run)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(fake.start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(fake.stop())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield fake
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
