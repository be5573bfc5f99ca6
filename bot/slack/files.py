"""Check a CDC deposit file shared in a linked Slack channel and answer in its thread.

`validate_shared_file` is what the Bolt handlers call for a `file_shared` (or file `message`)
event; it needs nothing but a Web API client holding the bot token:

    files.info ─► refused? (not .xml, or more than 250 Mo announced: never downloaded)
        │
        ├─► « validation en cours… » in the thread
        ├─► url_private_download streamed to a private temporary file (bot token, size capped)
        ├─► validate_file in a worker thread (the event loop keeps serving other events)
        └─► summary in the thread; for an invalid file, the whole report as a CSV file
            (files_upload_v2: getUploadURLExternal → upload URL → completeUploadExternal)

Slack errors are logged with their error code only (no file name, no token, no content).
When files.info fails or the CSV upload is refused, the thread is told and a verdict is
returned; any other failure after the « en cours » message gets a short apology in the thread
and is re-raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import logging
import math
import os
import re
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.cdc.outcome import Code, Finding, Report
from bot.cdc.report import is_report
from bot.cdc.schemas import resolve_schema
from bot.cdc.validate import validate_file
from bot.errors import ConfigError
from bot.render import LANGUAGES, Renderer
from bot.slack.tenancy import slack_error

log = logging.getLogger("cordee.slack")

MAX_FILE_BYTES = 250 * 1024 * 1024
"""Largest file checked from Slack (by the size Slack announces, then by the bytes received)."""
FIRST_ERRORS = 10
"""Errors spelled out in the thread; the CSV has them all."""
CSV_COLUMNS = ("ligne", "chemin", "code", "message", "idTechnique")

Status = Literal["valid", "invalid", "refused", "unreadable", "report"]
# Imports a CDC processing report (its bytes) and returns the mrkdwn answer for the thread.
ReportImporter = Callable[[bytes], Awaitable[str]]
_DownloadProblem = Literal["html", "too_big", "http", "network", "missing"]

_MEBIBYTE = 1024 * 1024
_CHUNK = 1 << 20
_SHOWN_MAX = 500
"""Characters of one value shown in Slack (a finding quotes the file's value, of any length)."""
_TEXT_MAX = 39_000
"""Slack cuts a message's text beyond 40,000 characters; we cut first, cleanly."""
# No total timeout: 250 Mo on a slow link takes minutes; a stalled read is what must end.
_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=30, sock_read=120)
_CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE_FILENAME = re.compile(r"[^\w.-]+")


@dataclass(frozen=True)
class FileVerdict:
    """What happened to one shared file, for logs and tests (people read the thread)."""

    status: Status
    passages: int = 0
    errors: int = 0
    report_file_id: str | None = None
    """The Slack file id of the uploaded CSV report, when there is one."""


class _DownloadRefused(Exception):
    def __init__(self, problem: _DownloadProblem) -> None:
        super().__init__(problem)
        self.problem: _DownloadProblem = problem


async def validate_shared_file(
    client: AsyncWebClient,
    *,
    file_id: str,
    channel: str,
    thread_ts: str | None,
    renderer: Renderer,
    language: str = "fr",
    schema: str = "1.1.2",
    work_dir: Path | None = None,
    now: datetime | None = None,
    import_report: ReportImporter | None = None,
) -> FileVerdict:
    """Check the shared file `file_id` and answer in `channel`, in the thread `thread_ts`.

    With `import_report`, a CDC processing report (root element `rapport`) is not checked
    against the deposit schema but handed to it, and its answer posted in the thread.

    `thread_ts` is the thread to answer in (the ts of the message that shared the file, or
    of its thread). Without it, the share found in files.info is used, and failing that the
    « en cours » message starts the thread. `schema` and `now` are passed to validate_file;
    `work_dir` holds the temporary copy (the system's temporary directory by default).

    Raises SlackApiError when Slack refuses a message (after logging it), and re-raises any
    unexpected failure once the thread has been told.
    """
    token = client.token
    if not token:
        raise ValueError("the Slack client has no bot token: shared files cannot be downloaded")
    thread = _Thread(client, channel, thread_ts, renderer, _language(language), file_id)
    try:
        info = await _call("files.info", file_id, lambda: client.files_info(file=file_id))
    except SlackApiError as exc:
        await thread.say("file_inaccessible", problem=_access_problem(slack_error(exc)))
        return FileVerdict("unreadable")
    file = info.get("file")
    if not isinstance(file, Mapping):
        file = {}
    if thread.ts is None:
        thread.ts = _share_ts(file, channel)
    name = str(file.get("name") or file.get("title") or file_id)
    shown = _escape(_shorten(name, 200))
    if not _is_xml(file, name):
        log.info("slack file %s refused: not XML", file_id)
        await thread.say("file_refused_type", name=shown)
        return FileVerdict("refused")
    size = file.get("size")
    if isinstance(size, int) and size > MAX_FILE_BYTES:
        log.info("slack file %s refused: %d bytes announced", file_id, size)
        await thread.say(
            "file_refused_size", name=shown, size=_megabytes(size), limit=_megabytes(MAX_FILE_BYTES)
        )
        return FileVerdict("refused")

    pending = await thread.say(
        "file_pending", name=shown, schema=_label_shown(_schema_label(schema))
    )
    if thread.ts is None:
        thread.ts = _str_or_none(pending.get("ts"))
    try:
        return await _check(
            thread,
            file,
            name=name,
            shown=shown,
            token=token,
            schema=schema,
            work_dir=work_dir,
            now=now,
            import_report=import_report,
        )
    except Exception:
        log.exception("slack file %s: the check failed", file_id)
        # _call logs a refusal of this message too; the original failure is the one to raise.
        with contextlib.suppress(SlackApiError):
            await thread.say("file_failed", name=shown)
        raise


def _report_bytes(path: Path) -> bytes | None:
    """The file's bytes when it is a CDC processing report, else None (a deposit file)."""
    with path.open("rb") as handle:
        head = handle.read(1 << 20)
    if not is_report(head):
        return None
    return path.read_bytes()


def report_csv(report: Report) -> bytes:
    """Every finding of `report`, one row each, as French Excel opens it (UTF-8 BOM, `;`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for finding in report.errors:
        writer.writerow(
            [
                "" if finding.line is None else finding.line,
                _cell(finding.path),
                finding.code.value,
                _cell(finding.message),
                _cell(finding.id_technique or ""),
            ]
        )
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


# ---------------------------------------------------------------------- the check


async def _check(
    thread: _Thread,
    file: Mapping[str, Any],
    *,
    name: str,
    shown: str,
    token: str,
    schema: str,
    work_dir: Path | None,
    now: datetime | None,
    import_report: ReportImporter | None = None,
) -> FileVerdict:
    url = file.get("url_private_download") or file.get("url_private")
    answer: str | None = None
    report: Report | None = None
    problem: _DownloadProblem | None = None
    path, handle = await asyncio.to_thread(_create_temp, work_dir)
    try:
        try:
            if not isinstance(url, str) or not url:
                raise _DownloadRefused("missing")
            await _download(thread.client, url, token, handle, thread.file_id)
        except _DownloadRefused as refused:
            problem = refused.problem
        else:
            data = await asyncio.to_thread(_report_bytes, path) if import_report else None
            if data is not None and import_report is not None:
                answer = await import_report(data)
            else:
                report = await asyncio.to_thread(validate_file, path, schema, now=now)
    finally:
        handle.close()
        _remove(path)
    if answer is not None:
        await thread.post(answer)
        return FileVerdict("report")
    if report is None:
        if problem == "too_big":
            await thread.say(
                "file_refused_size", name=shown, size=None, limit=_megabytes(MAX_FILE_BYTES)
            )
            return FileVerdict("refused")
        await thread.say("file_download_failed", name=shown, problem=problem)
        return FileVerdict("unreadable")

    findings = [f for f in report.errors if f.code is not Code.TOO_MANY_ERRORS]
    log.info(
        "slack file %s checked: %s, %d passage(s), %d error(s)",
        thread.file_id,
        report.outcome.value,
        report.passages,
        len(findings),
    )
    if report.exit_code == 2:
        await thread.say(
            "file_unreadable",
            name=shown,
            outcome=report.outcome.value,
            messages=[_escape(_shorten(f.message, _SHOWN_MAX)) for f in report.errors[:3]],
        )
        return FileVerdict("unreadable", report.passages, len(findings))
    counts = _counts(report.passages, len(findings), thread.language)
    if report.valid:
        await thread.say("file_valid", name=shown, schema=_label_shown(report.schema), **counts)
        return FileVerdict("valid", report.passages, 0)

    await thread.say(
        "file_invalid",
        name=shown,
        schema=_label_shown(report.schema),
        by_code=_by_code(findings, thread.language),
        first=[_shown_finding(f) for f in findings[:FIRST_ERRORS]],
        more=max(len(findings) - FIRST_ERRORS, 0),
        more_text=_number(max(len(findings) - FIRST_ERRORS, 0), thread.language),
        truncated=report.truncated,
        **counts,
    )
    report_id = await _upload_report(thread, report, name=name, shown=shown, counts=counts)
    return FileVerdict("invalid", report.passages, len(findings), report_id)


async def _upload_report(
    thread: _Thread, report: Report, *, name: str, shown: str, counts: Mapping[str, object]
) -> str | None:
    """Attach the CSV to the thread; if Slack refuses, say so there and go on without it."""
    content = await asyncio.to_thread(report_csv, report)
    filename = f"validation-{_safe_stem(name)}.csv"
    comment = thread.render("file_report_comment", name=shown, **counts)
    title = thread.render("file_report_title", name=_shorten(name, 200)).strip()
    try:
        uploaded = await _call(
            "files.upload_v2",
            thread.file_id,
            lambda: thread.client.files_upload_v2(
                channel=thread.channel,
                thread_ts=thread.ts,
                filename=filename,
                content=content,
                title=title,
                initial_comment=comment,
            ),
        )
    except (SlackApiError, SlackRequestError) as exc:
        error = slack_error(exc) if isinstance(exc, SlackApiError) else "upload_failed"
        if isinstance(exc, SlackRequestError):
            log.warning("slack file %s: CSV report upload failed", thread.file_id)
        await thread.say("file_report_failed", error=_escape(error))
        return None
    uploaded_file = uploaded.get("file")
    if isinstance(uploaded_file, Mapping):
        return _str_or_none(uploaded_file.get("id"))
    return None


# ---------------------------------------------------------------------- Slack calls


@dataclass
class _Thread:
    """Where the answers go, and in which language they are written."""

    client: AsyncWebClient
    channel: str
    ts: str | None
    renderer: Renderer
    language: str
    file_id: str

    def render(self, template: str, **context: object) -> str:
        text = self.renderer.slack(template, self.language, context).strip()
        return text if len(text) <= _TEXT_MAX else text[: _TEXT_MAX - 1] + "…"

    async def say(self, template: str, **context: object) -> AsyncSlackResponse:
        return await self.post(self.render(template, **context))

    async def post(self, text: str) -> AsyncSlackResponse:
        return await _call(
            "chat.postMessage",
            self.file_id,
            lambda: self.client.chat_postMessage(
                channel=self.channel,
                thread_ts=self.ts,
                text=text,
                unfurl_links=False,
                unfurl_media=False,
            ),
        )


async def _call(
    method: str, file_id: str, send: Callable[[], Awaitable[AsyncSlackResponse]]
) -> AsyncSlackResponse:
    """One Web API call; a failure is logged, then raised.

    Rate limits are waited out by the client itself (bot.slack.app.slack_client retries after
    Retry-After), as for every other call Cordée makes to Slack.
    """
    try:
        return await send()
    except SlackApiError as exc:
        log.warning("slack %s failed for file %s: %s", method, file_id, slack_error(exc))
        raise


def _access_problem(error: str) -> str:
    """files.info errors, sorted by what the people in the channel can do about them."""
    if error in ("file_not_found", "file_deleted"):
        return "not_found"
    if error in ("missing_scope", "not_authed", "invalid_auth", "no_permission", "not_allowed"):
        return "permission"
    return "other"


async def _download(
    client: AsyncWebClient, url: str, token: str, handle: BinaryIO, file_id: str
) -> None:
    """Stream the file into `handle` (closed on return), at most MAX_FILE_BYTES."""
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with (
            aiohttp.ClientSession(timeout=_TIMEOUT) as session,
            session.get(
                url,
                headers=headers,
                proxy=client.proxy,
                ssl=client.ssl if client.ssl is not None else True,
            ) as response,
        ):
            if response.status != 200:
                log.warning("slack file %s: download answered HTTP %d", file_id, response.status)
                raise _DownloadRefused("http")
            if response.content_type == "text/html":
                # Slack's answer when the token may not read files (no files:read scope).
                log.warning("slack file %s: download answered a web page", file_id)
                raise _DownloadRefused("html")
            announced = response.content_length
            if announced is not None and announced > MAX_FILE_BYTES:
                raise _DownloadRefused("too_big")
            received = 0
            async for chunk in response.content.iter_chunked(_CHUNK):
                received += len(chunk)
                if received > MAX_FILE_BYTES:
                    log.info("slack file %s: more than %d bytes, stopped", file_id, received)
                    raise _DownloadRefused("too_big")
                await asyncio.to_thread(handle.write, chunk)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("slack file %s: download failed (%s)", file_id, type(exc).__name__)
        raise _DownloadRefused("network") from exc
    finally:
        await asyncio.to_thread(handle.close)


def _create_temp(work_dir: Path | None) -> tuple[Path, BinaryIO]:
    # mkstemp: readable by this user only, as the file holds personal data.
    descriptor, name = tempfile.mkstemp(prefix="cordee-slack-", suffix=".xml", dir=work_dir)
    return Path(name), os.fdopen(descriptor, "wb")


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("temporary copy of a Slack file not removed: %s", exc.strerror or exc)


# ---------------------------------------------------------------------- presentation


def _language(language: str) -> str:
    return language if language in LANGUAGES else "fr"


def _schema_label(schema: str) -> str:
    try:
        return resolve_schema(schema).label
    except ConfigError:
        return schema  # validate_file refuses it next, and the thread hears of it


def _label_shown(label: str) -> str:
    """A schema as the thread shows it: its label, or a custom XSD's file name (not its path)."""
    return _escape(Path(label).name if "/" in label else label)


def _is_xml(file: Mapping[str, Any], name: str) -> bool:
    return name.lower().endswith(".xml") or str(file.get("filetype") or "").lower() == "xml"


def _share_ts(file: Mapping[str, Any], channel: str) -> str | None:
    """The thread of the message that shared the file in `channel`, from files.info."""
    shares = file.get("shares")
    if not isinstance(shares, Mapping):
        return None
    for kind in ("public", "private"):
        group = shares.get(kind)
        entries = group.get(channel) if isinstance(group, Mapping) else None
        if isinstance(entries, list) and entries and isinstance(entries[0], Mapping):
            found = entries[0].get("thread_ts") or entries[0].get("ts")
            if isinstance(found, str):
                return found
    return None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _escape(text: str) -> str:
    """Slack mrkdwn control characters: a file name must not become a link or an @channel."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: int, language: str) -> str:
    grouped = f"{value:,}"
    return grouped.replace(",", "\u202f") if language == "fr" else grouped


def _megabytes(size: int) -> str:
    return str(math.ceil(size / _MEBIBYTE))


def _counts(passages: int, errors: int, language: str) -> dict[str, object]:
    return {
        "passages": _number(passages, language),
        "passages_count": passages,
        "errors": _number(errors, language),
        "errors_count": errors,
    }


def _by_code(findings: list[Finding], language: str) -> list[dict[str, str]]:
    counts = Counter(f.code.value for f in findings)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{"code": code, "count": _number(count, language)} for code, count in ordered]


def _shown_finding(finding: Finding) -> dict[str, object]:
    return {
        "code": finding.code.value,
        "line": finding.line,
        "path": _escape(finding.path).replace("`", "'"),
        "id_technique": _escape(_shorten(finding.id_technique or "", 100)),
        "message": _escape(_shorten(finding.message, _SHOWN_MAX)),
    }


def _cell(value: str) -> str:
    """A text cell Excel will not run as a formula (values come from the shared file)."""
    return "'" + value if value.startswith(_CSV_FORMULA) else value


def _safe_stem(name: str) -> str:
    stem = Path(name.replace("\\", "/")).name
    if stem.lower().endswith(".xml"):
        stem = stem[:-4]
    return _UNSAFE_FILENAME.sub("_", stem).strip("._")[:100] or "fichier"
