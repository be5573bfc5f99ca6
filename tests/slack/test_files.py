"""validate_shared_file on the fake Slack Web API: what the thread is told, what is uploaded."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.cdc import Code, Finding, Outcome, Report, validate_file
from bot.render import Renderer
from bot.slack import files as files_module
from bot.slack.app import slack_client
from bot.slack.files import CSV_COLUMNS, FileVerdict, report_csv, validate_shared_file
from tests.support import cdc_factory as factory
from tests.support.fake_slack import BOT_TOKEN, FakeSlack, SharedFile

DATA = Path(__file__).resolve().parents[1] / "data" / "cdc"
NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
CHANNEL = "C0CERTIF01"
SHARE_TS = "1700000000.000100"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    slack = FakeSlack()
    await slack.start()
    try:
        yield slack
    finally:
        await slack.stop()


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    """The client the app builds: it waits out rate limits itself."""
    return slack_client(BOT_TOKEN, fake.api_url)


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "work"
    directory.mkdir()
    return directory


MINIMAL = (DATA / "valide-minimal.xml").read_bytes()


def leftovers(work_dir: Path) -> list[Path]:
    """What the check left in its work directory (temporary copies must all be gone)."""
    return list(work_dir.iterdir())


def corpus(file_id: str, name: str) -> SharedFile:
    return SharedFile(file_id, name, (DATA / name).read_bytes())


async def check(
    client: AsyncWebClient,
    file_id: str,
    work_dir: Path,
    *,
    thread_ts: str | None = SHARE_TS,
    language: str = "fr",
) -> FileVerdict:
    return await validate_shared_file(
        client,
        file_id=file_id,
        channel=CHANNEL,
        thread_ts=thread_ts,
        renderer=Renderer(),
        language=language,
        work_dir=work_dir,
        now=NOW,
    )


def posted(fake: FakeSlack) -> list[dict[str, Any]]:
    return [call.body for call in fake.calls_to("chat.postMessage")]


def csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "Excel needs the BOM to read UTF-8"
    return list(csv.reader(io.StringIO(data[3:].decode("utf-8")), delimiter=";"))


def many_errors_flux(count: int) -> bytes:
    bad = factory.titulaire(7, sexe="X")
    passages = [factory.passage(f"P-{n:03d}", titulaire_xml=bad) for n in range(1, count + 1)]
    return factory.flux([factory.certification(passages)]).encode("utf-8")


# ---------------------------------------------------------------------- valid and invalid files


async def test_a_valid_file_gets_en_cours_then_a_summary_in_the_same_thread(
    fake: FakeSlack, client: AsyncWebClient, work_dir: Path
) -> None:
    fake.share(corpus("F0VALID", "valide-complet.xml"))

    verdict = await check(client, "F0VALID", work_dir)

    assert verdict == FileVerdict("valid", passages=3, errors=0, report_file_id=None)
    assert fake.downloads == ["F0VALID"]
    pending, summary = posted(fake)
    assert pending["channel"] == summary["channel"] == CHANNEL
    assert pending["thread_ts"] == summary["thread_ts"] == SHARE_TS
    assert "Validation de *valide-complet.xml* en cours" in pending["text"]
    assert "*valide-complet.xml* est valide (schéma CDC 1.1.2) : 3 passages" in summary["text"]
    assert "aucune erreur" in summary["text"]
    # Nothing to list for a valid file: no report is attached.
    assert fake.calls_to("files.getUploadURLExternal") == []
    assert leftovers(work_dir) == []


async def test_an_invalid_file_gets_counts_by_code_and_the_full_csv_report(
    fake: FakeSlack, client: AsyncWebClient, work_dir: Path
) -> None:
    fake.share(corpus("F0INVALID", "plusieurs-erreurs.xml"))
    expected = validate_file(DATA / "plusieurs-erreurs.xml", "1.1.2", now=NOW)

    verdict = await check(client, "F0INVALID", work_dir)

    assert verdict == FileVerdict("invalid", passages=44, errors=4, report_file_id="F0UPLOAD0001")
    pending, summary = posted(fake)
    assert pending["thread_ts"] == summary["thread_ts"] == SHARE_TS
    text = summary["text"]
    assert "n'est pas valide (schéma CDC 1.1.2) : 4 erreurs pour 44 passages" in text
    assert "• valeur non admise (`XSD_ENUM`) : 2" in text
    assert "• dates de validité inversées (`DATE_VALIDITE_ORDER`) : 1" in text
    assert "• type de valeur incorrect (`XSD_TYPE`) : 1" in text
    first = expected.errors[0]
    assert f"1. Ligne {first.line}, passage P-005 — `{first.path}`" in text
    assert "« sexe » vaut « X »" in text
    assert "Corrigez les erreurs puis déposez de nouveau le fichier" in text

    # The three steps of the external upload, never the retired files.upload.
    (announce,) = fake.calls_to("files.getUploadURLExternal")
    assert announce.body["filename"] == "validation-plusieurs-erreurs.csv"
    (complete,) = fake.calls_to("files.completeUploadExternal")
    assert complete.body["channel_id"] == CHANNEL
    assert complete.body["thread_ts"] == SHARE_TS
    assert "4 erreurs" in complete.body["initial_comment"]
    (attached,) = json.loads(complete.body["files"])
    assert attached["id"] == "F0UPLOAD0001"
    assert attached["title"] == "Rapport de validation de plusieurs-erreurs.xml"
    assert fake.calls_to("files.upload") == []
    rows = csv_rows(fake.uploads["F0UPLOAD0001"])
    assert int(announce.body["length"]) == len(fake.uploads["F0UPLOAD0001"])
    assert rows[0] == list(CSV_COLUMNS)
    assert rows[1:] == [
        [str(e.line), e.path, e.code.value, e.message, e.id_technique or ""]
        for e in expected.errors
    ]
    assert rows[1][2] == "XSD_ENUM"
    assert rows[1][4] == "P-005"
    assert leftovers(work_dir) == []


async def test_only_the_first_ten_errors_are_spelled_out_the_csv_has_them_all(
    fake: FakeSlack, client: AsyncWebClient, work_dir: Path
) -> None:
    fake.share(SharedFile("F0MANY", "lot-mars.xml", many_errors_flux(14)))

    verdict = await check(client, "F0MANY", work_dir)

    assert verdict.status == "invalid"
    assert (verdict.passages, verdict.errors) == (14, 14)
    text = posted(fake)[1]["text"]
    numbered = re.findall(r"^(\d+)\. Ligne \d+, passage (P-\d+)", text, flags=re.M)
    assert numbered == [(str(n), f"P-{n:03d}") for n in range(1, 11)]
    assert "*Les 10 premières erreurs*" in text
    assert "• valeur non admise (`XSD_ENUM`) : 14" in text
    assert "… et 4 autres erreurs dans le rapport complet." in text
    rows = csv_rows(fake.uploads[verdict.report_file_id or ""])
    assert [row[4] for row in rows[1:]] == [f"P-{n:03d}" for n in range(1, 15)]
    assert {row[2] for row in rows[1:]} == {"XSD_ENUM"}


async def test_the_summary_is_written_in_english_when_asked(
    fake: FakeSlack, client: AsyncWebClient, work_dir: Path
) -> None:
    fake.share(corpus("F0EN", "plusieurs-erreurs.xml"))

    await check(client, "F0EN", work_dir, language="en")

    pending, summary = posted(fake)
    assert pending["text"].startswith("⏳ Checking *plusieurs-erreurs.xml*")
    assert "is not valid (CDC schema 1.1.2): 4 errors in 44 passages" in summary["text"]
    assert "• value not allowed (`XSD_ENUM`): 2" in summary["text"]


async def test_without_a_thread_the_en_cours_message_starts_one(
    fake: FakeSlack, client: AsyncWebClient, work_dir: Path
) -> None:
    fake.share(corpus("F0ROOT", "valide-minimal.xml"))

    await check(client, "F0ROOT", work_dir, thread_ts=None)

    pending, summary = posted(fake)
    assert "thread_ts" not in pending
    assert summary["thread_ts"] == "1700000000.000001"  # the fake's ts for the first message


async def test_a_file_name_cannot_ping_the_channel_or_make_a_link(
    fake: FakeSlack, client: AsyncWebClient, work_dir: Path
) -> None:
    fake.share(SharedFile("F0NAME", "<!channel> & co.xml", MINIMAL))

    await check(client, "F0NAME", work_dir)

    for message in posted(fake):
        assert "<!channel>" not in message["text"]
        assert "*&lt;!channel&gt; &amp; co.xml*" in message["text"]


# ---------------------------------------------------------------------- refusals


async def test_an_announced_300_mb_file_is_refused_and_never_downloaded(
    fake: FakeSlack, client: AsyncWebClient, work_dir: Path
) -> None:
    content = MINIMAL
    fake.share(SharedFile("F0HUGE", "gros.xml", content, size=300 * 1024 * 1024))

    verdict = await check(client, "F0HUGE", work_dir)

    assert verdict == FileVerdict("refused")
    assert fake.downloads == []
    (message,) = posted(fake)
    assert message["thread_ts"] == SHARE_TS
    assert "*gros.xml* : il pèse 300 Mo" in message["text"]
    assert "au-delà de 250 Mo" in message["text"]
    assert "`cordee xml build` le fait automatiquement" in message["text"]


async def test_a_file_bigger_than_announced_is_cut_off_while_downloading(
    fake: FakeSlack, client: AsyncWebClient, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files_module, "MAX_FILE_BYTES", 1000)
    content = many_errors_flux(3)
    assert len(content) > 1000
    fake.share(SharedFile("F0LIAR", "menteur.xml", content, size=500))

    verdict = await check(client, "F0LIAR", work_dir)

    assert verdict == FileVerdict("refused")
    pending, refusal = posted(fake)
    assert "en cours" in pending["text"]
    assert "il est trop volumineux" in refusal["text"]
    assert leftovers(work_dir) == []


@pytest.mark.parametrize(
    ("name", "filetype", "mimetype"),
    [("passages.csv", "csv", "text/csv"), ("photo.png", "png", "image/png")],
)
async def test_a_file_that_is_not_xml_is_refused_politely(
    fake: FakeSlack,
    client: AsyncWebClient,
    work_dir: Path,
    name: str,
    filetype: str,
    mimetype: str,
) -> None:
    fake.share(SharedFile("F0OTHER", name, b"a;b\n1;2\n", filetype=filetype, mimetype=mimetype))

    verdict = await check(client, "F0OTHER", work_dir)

    assert verdict == FileVerdict("refused")
    assert fake.downloads == []
    (message,) = posted(fake)
    assert f"*{name}* n'en est pas un" in message["text"]
    assert "partagez ici le fichier .xml" in message["text"]


async def test_xml_is_recognised_by_filetype_when_the_name_has_no_extension(
    fake: FakeSlack, client: AsyncWebClient, work_dir: Path
) -> None:
    fake.share(SharedFile("F0NOEXT", "depot", MINIMAL))

    verdict = await check(client, "F0NOEXT", work_dir)

    assert verdict.status == "valid"


@pytest.mark.parametrize(
    ("name", "outcome_text", "detail"),
    [
        ("dangereux-billion-laughs.xml", "le fichier est refusé par sécurité", "DOCTYPE"),
        ("dangereux-entite-externe.xml", "le fichier est refusé par sécurité", "DOCTYPE"),
        ("pas-du-xml.csv.xml", "ce n'est pas un fichier XML lisible", "commencer par"),
        ("vide.xml", "ce n'est pas un fichier XML lisible", "Le fichier est vide"),
    ],
)
async def test_an_unsafe_or_unreadable_file_gets_a_clear_answer(
    fake: FakeSlack,
    client: AsyncWebClient,
    work_dir: Path,
    name: str,
    outcome_text: str,
    detail: str,
) -> None:
    fake.share(corpus("F0BAD", name))

    verdict = await check(client, "F0BAD", work_dir)

    assert verdict.status == "unreadable"
    _pending, answer = posted(fake)
    assert answer["thread_ts"] == SHARE_TS
    assert f"Je n'ai pas pu vérifier *{name}* : {outcome_text}." in answer["text"]
    assert detail in answer["text"]
    assert "&lt;?xml" in answer["text"] or "<" not in answer["text"]
    assert fake.calls_to("files.getUploadURLExternal") == []
    assert leftovers(work_dir) == []


# ---------------------------------------------------------------------- Slack going wrong


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("file_not_found", "il n'est plus disponible dans Slack"),
        ("missing_scope", "`files:read`"),
        ("internal_error", "Slack n'a pas répondu comme prévu"),
    ],
)
async def test_a_files_info_error_is_logged_and_told_in_the_thread(
    fake: FakeSlack,
    client: AsyncWebClient,
    work_dir: Path,
    caplog: pytest.LogCaptureFixture,
    error: str,
    expected: str,
) -> None:
    """files.info failing: nothing is downloaded, the thread says why, the verdict is unreadable."""
    fake.share(corpus("F0GONE", "valide-minimal.xml"))
    fake.fail_next("files.info", error)

    with caplog.at_level(logging.INFO, logger="cordee.slack"):
        verdict = await check(client, "F0GONE", work_dir)

    assert verdict == FileVerdict("unreadable")
    assert fake.downloads == []
    (message,) = posted(fake)
    assert message["thread_ts"] == SHARE_TS
    assert expected in message["text"]
    logged = [r.getMessage() for r in caplog.records if r.name == "cordee.slack"]
    assert any("files.info" in line and error in line for line in logged)
    assert not any(BOT_TOKEN in line for line in caplog.messages)


async def test_a_refused_message_is_logged_and_raised(
    fake: FakeSlack, client: AsyncWebClient, work_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.share(corpus("F0MUTE", "valide-minimal.xml"))
    fake.fail_next("chat.postMessage", "not_in_channel")

    with pytest.raises(SlackApiError), caplog.at_level(logging.WARNING, logger="cordee.slack"):
        await check(client, "F0MUTE", work_dir)

    assert fake.downloads == []
    assert any("chat.postMessage" in m and "not_in_channel" in m for m in caplog.messages)


async def test_a_rate_limited_message_is_sent_again_after_retry_after(
    fake: FakeSlack, client: AsyncWebClient, work_dir: Path
) -> None:
    fake.share(corpus("F0BUSY", "valide-minimal.xml"))
    fake.rate_limit_next("chat.postMessage", 0)

    verdict = await check(client, "F0BUSY", work_dir)

    assert verdict.status == "valid"
    assert len(fake.calls_to("chat.postMessage")) == 3  # refused once, then both messages


@dataclass
class NoFilesRead(FakeSlack):
    """Slack when the app lacks files:read: the API answers, the file host serves a login page."""

    async def _download(self, request: web.Request) -> web.StreamResponse:
        api_token, self.token = self.token, "xoxb-the-token-files-would-need"
        try:
            return await super()._download(request)
        finally:
            self.token = api_token


async def test_a_web_page_instead_of_the_file_gets_a_clear_error(
    work_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = NoFilesRead()
    await fake.start()
    try:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url)
        fake.share(corpus("F0HTML", "valide-minimal.xml"))
        with caplog.at_level(logging.INFO, logger="cordee.slack"):
            verdict = await check(client, "F0HTML", work_dir)
    finally:
        await fake.stop()

    assert verdict == FileVerdict("unreadable")
    _pending, answer = posted(fake)
    assert answer["thread_ts"] == SHARE_TS
    assert "Slack m'a renvoyé une page web au lieu du fichier" in answer["text"]
    assert "`files:read`" in answer["text"]
    assert any("web page" in m for m in caplog.messages)
    assert not any(BOT_TOKEN in m for m in caplog.messages)
    assert leftovers(work_dir) == []


async def test_a_refused_upload_is_told_and_the_verdict_has_no_report(
    fake: FakeSlack, client: AsyncWebClient, work_dir: Path
) -> None:
    fake.share(corpus("F0NOUP", "plusieurs-erreurs.xml"))
    fake.fail_next("files.getUploadURLExternal", "missing_scope")

    verdict = await check(client, "F0NOUP", work_dir)

    assert verdict == FileVerdict("invalid", passages=44, errors=4, report_file_id=None)
    assert fake.uploads == {}
    assert fake.calls_to("files.completeUploadExternal") == []
    *_, apology = posted(fake)
    assert "Je n'ai pas pu joindre le rapport complet" in apology["text"]
    assert "`missing_scope`" in apology["text"]
    assert apology["thread_ts"] == SHARE_TS


async def test_an_unexpected_failure_is_told_in_the_thread_then_raised(
    fake: FakeSlack, client: AsyncWebClient, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> Report:
        raise RuntimeError("validator bug")

    monkeypatch.setattr(files_module, "validate_file", broken)
    fake.share(corpus("F0BUG", "valide-minimal.xml"))

    with pytest.raises(RuntimeError, match="validator bug"):
        await check(client, "F0BUG", work_dir)

    _pending, apology = posted(fake)
    assert "erreur interne de Cordée" in apology["text"]
    assert apology["thread_ts"] == SHARE_TS
    assert leftovers(work_dir) == []


async def test_a_client_without_token_is_a_programming_error(
    fake: FakeSlack, work_dir: Path
) -> None:
    with pytest.raises(ValueError, match="no bot token"):
        await check(AsyncWebClient(base_url=fake.api_url), "F0X", work_dir)
    assert fake.calls == []


# ---------------------------------------------------------------------- the CSV itself


def test_csv_cells_from_the_file_cannot_run_as_excel_formulas() -> None:
    report = Report(
        Outcome.INVALID,
        "1.1.2",
        passages=2,
        errors=(
            Finding(Code.XSD_ENUM, "« sexe » vaut « X ».", 12, "/flux/a", '=HYPERLINK("x")'),
            Finding(Code.NOT_XML, "-1 ; deux", None, "", None),
        ),
    )

    rows = csv_rows(report_csv(report))

    assert rows == [
        list(CSV_COLUMNS),
        ["12", "/flux/a", "XSD_ENUM", "« sexe » vaut « X ».", '\'=HYPERLINK("x")'],
        ["", "", "NOT_XML", "'-1 ; deux", ""],
    ]
    assert b"\r\n" in report_csv(report)
