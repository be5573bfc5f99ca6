"""Where training folders come from: one small interface, a file adapter and a REST adapter.

A source yields batches of allow-listed rows (`RawFolder`) or row errors; nothing outside the
allow-list ever leaves an adapter. Sources know nothing of the store or of the sharing rules.

    SourceError                 the source as a whole failed (the run stops, nothing half-done)
    ├── SourceAuthError         the partner's credentials were refused (401, 403)
    └── SourceUnavailable       timeout, connection refused, 5xx, unreadable answer
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp

from bot.errors import CordeeError, InvalidInput
from bot.sync.files import TableFile
from bot.sync.rules import Field, RawFolder, RowError, Value

API_KEY_HEADER = "X-Api-Key"
FOLDERS_PATH = "/registrationFolders"
PAGE_SIZE = 100
# Sorting on the last update makes the newest date read a safe cursor for the next run.
SORT = {"sort": "lastUpdate", "order": "asc"}


class SourceError(CordeeError):
    """The source failed as a whole; `detail` is safe to show (no key, no personal data)."""

    kind = "unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class SourceAuthError(SourceError):
    kind = "credentials"


class SourceUnavailable(SourceError):
    kind = "unavailable"


@dataclass(frozen=True)
class Batch:
    """Rows read since the previous batch, and how far the source is (for a progress bar)."""

    rows: list[RawFolder | RowError]
    done: int
    total: int | None


class FolderSource(Protocol):
    """A partner's training folders, batch after batch."""

    kind: str  # "file" or "api": shown in the status

    def batches(self, cursor: str | None, size: int) -> AsyncIterator[Batch]:
        """Rows changed since `cursor` (sources without a filter send everything)."""
        ...

    def notes(self) -> list[str]:
        """What the summary should say about the source itself (ignored columns…)."""
        ...

    def close(self) -> None:
        """Release what the source holds (an open file); the run calls it when done."""
        ...


# ---------------------------------------------------------------------- files


class FileSource:
    """A CSV or XLSX export of the partner; read in a worker thread, batch by batch."""

    kind = "file"

    def __init__(self, table: TableFile) -> None:
        self.table = table

    @classmethod
    async def open(cls, path: Path) -> FileSource:
        """Open and check the header row; raises RejectedFile (missing columns, encoding…)."""
        return cls(await asyncio.to_thread(TableFile, path))

    def notes(self) -> list[str]:
        layout = self.table.layout
        notes = []
        if self.table.encoding is not None:
            encoding = "UTF-8" if self.table.encoding == "utf-8" else "Windows-1252"
            separator = {";": "point-virgule", ",": "virgule", "\t": "tabulation"}
            notes.append(
                f"Fichier CSV lu en {encoding}, séparateur "
                f"{separator.get(self.table.delimiter or '', '?')}."
            )
        if layout.not_shared:
            notes.append("Colonnes non partagées, ignorées : " + ", ".join(layout.not_shared) + ".")
        if layout.unknown:
            notes.append("Colonnes inconnues, ignorées : " + ", ".join(layout.unknown) + ".")
        if layout.repeated:
            notes.append(
                "Colonnes en double, seule la première est lue : "
                + ", ".join(layout.repeated)
                + "."
            )
        return notes

    async def batches(self, cursor: str | None, size: int) -> AsyncIterator[Batch]:
        rows = self.table.rows()

        def next_batch() -> list[RawFolder | RowError]:
            batch: list[RawFolder | RowError] = []
            for row in rows:
                batch.append(row)
                if len(batch) >= size:
                    break
            return batch

        try:
            while batch := await asyncio.to_thread(next_batch):
                yield Batch(batch, self.table.done, self.table.total)
        finally:
            self.close()

    def close(self) -> None:
        self.table.close()


# ----------------------------------------------------------------------- REST


def check_base_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(
            f"adresse de l'API invalide « {url} » : attendu https://…, par ex. "
            "https://www.wedof.fr/api."
        )
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise InvalidInput(
            f"adresse de l'API non chiffrée « {url} » : la clé d'API ne peut circuler qu'en "
            "https (http n'est accepté que sur la machine elle-même, pour les essais)."
        )
    return url.strip().rstrip("/")


def folder_from_record(record: object) -> RawFolder | RowError:
    """One Wedof-style registration folder → the allow-listed fields, nothing else."""
    if not isinstance(record, dict):
        return RowError(None, None, "dossier illisible (objet JSON attendu)")
    attendee = _object(record.get("attendee"))
    session = _object(record.get("trainingActionInfo"))
    certification = _object(record.get("certification"))
    state = _scalar(record.get("state"))
    values: dict[str, Value] = {
        Field.FOLDER_NUMBER: _scalar(record.get("externalId")),
        Field.LAST_NAME: _scalar(attendee.get("lastName")),
        Field.FIRST_NAME: _scalar(attendee.get("firstName")),
        Field.EMAIL: _scalar(attendee.get("email")),
        Field.PHONE: _scalar(attendee.get("phoneNumber")),
        Field.CERTIFICATION_CODE: _scalar(certification.get("code")),
        Field.SESSION_START: _scalar(session.get("sessionStartDate")),
        Field.SESSION_END: _scalar(session.get("sessionEndDate")),
        Field.STATE: state,
        Field.STATE_DATE: _scalar(_object(record.get("history")).get(f"{state}Date")),
        Field.UPDATED_AT: _scalar(record.get("lastUpdate")),
    }
    return RawFolder(None, values)


_EMPTY: dict[str, Any] = {}
_SCALARS = (str, int, float)


def _object(value: object) -> dict[str, Any]:
    # JSON objects decode to dicts: an exact type test is many times cheaper than an ABC's.
    return value if type(value) is dict else _EMPTY


def _scalar(value: object) -> Value:
    return value if type(value) in _SCALARS else None  # type: ignore[return-value]


class RestSource:
    """A Wedof-style REST API: paginated list, `updatedSince` filter, API key header."""

    kind = "api"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        page_size: int = PAGE_SIZE,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.page_size = page_size
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    def notes(self) -> list[str]:
        return []

    def close(self) -> None:
        return None  # each run opens and closes its own HTTP session

    async def batches(self, cursor: str | None, size: int) -> AsyncIterator[Batch]:
        headers = {API_KEY_HEADER: self._api_key, "Accept": "application/json"}
        done = 0
        pending: list[RawFolder | RowError] = []
        async with aiohttp.ClientSession(timeout=self.timeout, headers=headers) as http:
            page, last = 1, False
            while not last:
                records, total = await self._page(http, page, cursor)
                done += len(records)
                pending.extend(folder_from_record(r) for r in records)
                last = len(records) < self.page_size
                # Several pages per batch: one transaction per batch, not per page.
                if pending and (last or len(pending) >= size):
                    yield Batch(pending, done, total)
                    pending = []
                page += 1

    async def _page(
        self, http: aiohttp.ClientSession, page: int, cursor: str | None
    ) -> tuple[list[object], int | None]:
        params = {"page": str(page), "limit": str(self.page_size), **SORT}
        if cursor is not None:
            params["updatedSince"] = cursor
        try:
            async with http.get(self.base_url + FOLDERS_PATH, params=params) as response:
                if response.status in (401, 403):
                    raise SourceAuthError(
                        f"identifiants refusés par l'API de l'organisme (HTTP {response.status})"
                    )
                if response.status != 200:
                    raise SourceUnavailable(
                        f"l'API de l'organisme a répondu HTTP {response.status} à la page {page}"
                    )
                payload = await response.json(content_type=None)
                total_header = response.headers.get("X-Total-Count", "")
        except TimeoutError:
            raise SourceUnavailable(
                f"l'API de l'organisme n'a pas répondu en {self.timeout.total:g} s"
            ) from None
        except aiohttp.ClientConnectionError as error:
            raise SourceUnavailable(
                f"connexion impossible à l'API de l'organisme ({type(error).__name__})"
            ) from None
        except (aiohttp.ContentTypeError, ValueError):
            raise SourceUnavailable(
                "réponse illisible de l'API de l'organisme (JSON attendu)"
            ) from None
        if not isinstance(payload, list):
            raise SourceUnavailable("réponse inattendue de l'API de l'organisme (liste attendue)")
        total = int(total_header) if total_header.isdigit() else None
        return payload, total
