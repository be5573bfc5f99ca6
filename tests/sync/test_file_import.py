"""File import through the real store (SQLite and PostgreSQL): sharing rules, bad input, safety."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select, text

from bot.app import App
from bot.errors import Conflict
from bot.store.models import (
    Base,
    CertificationFolder,
    OutboxMessage,
    PartnerSync,
    TransitionLog,
    WorkflowInstance,
)
from bot.sync import folders as store
from bot.sync.files import RejectedFile
from bot.sync.folders import FolderRow, list_folders
from bot.sync.run import PartnerSyncRunner
from bot.sync.services import SyncServices
from bot.sync.sharing import BY_ORGANISATION, pause_sharing, resume_sharing
from bot.sync.sources import FileSource
from tests.support.builders import Seed
from tests.sync.conftest import HEADER, write_csv
from workflows.access_request import Event as RequestEvent

ROWS = [
    "F-001;Martin;Claire;claire@example.org;06 12 34 56 78;RNCP34567;01/09/2026;30/11/2026;Accepté",
    "F-002;Durand;Luc;;;RS5875;2026-09-01;2026-11-30;inTraining",
    "F-003;Petit;Zoé;;;RS5875;2026-09-01;2026-11-30;Non traité",
    "F-004;Leroy;Inès;;;RNCP34567;01/09/2026;30/11/2026;Sortie de formation",
    "F-005;Moreau;Hugo;;;RNCP99999;01/09/2026;30/11/2026;Accepté",
    "F-006;Roux;Léa;;;RS5875;01/09/2026;30/11/2026;Annulé par le titulaire",
]


async def run_file(runner: PartnerSyncRunner, seed: Seed, path: Path) -> Any:
    return await runner.run(seed.partnership_id, await FileSource.open(path), actor="test")


def folders_of(app: App, seed: Seed) -> dict[str, FolderRow]:
    rows = app.db.run_sync(lambda s: list_folders(s, seed.certifier_id))
    return {row.folder_number: row for row in rows}


def count(app: App, model: type[Base]) -> int:
    return app.db.run_sync(lambda s: s.scalar(select(func.count()).select_from(model)) or 0)


async def test_accepted_or_later_folders_of_covered_certifications_become_folders(
    app: App, authorised: Seed, runner: PartnerSyncRunner, tmp_path: Path
) -> None:
    report = await run_file(runner, authorised, write_csv(tmp_path, ROWS))

    assert (report.created, report.ignored, report.rejected) == (3, 3, 0)
    folders = folders_of(app, authorised)
    assert sorted(folders) == ["F-001", "F-002", "F-004"]
    assert {row.state for row in folders.values()} == {"toRegister"}
    first = folders["F-001"]
    assert (first.attendee_last_name, first.attendee_first_name) == ("Martin", "Claire")
    assert first.certification_code == "RNCP34567"
    assert first.training_state == "accepted"
    # Each one starts with an audit-trail entry.
    assert count(app, TransitionLog) >= 3


async def test_running_the_same_file_again_creates_no_duplicate(
    app: App, authorised: Seed, runner: PartnerSyncRunner, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, ROWS)
    await run_file(runner, authorised, path)
    instances = count(app, WorkflowInstance)
    again = await run_file(runner, authorised, path)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert count(app, CertificationFolder) == 3
    assert count(app, WorkflowInstance) == instances


async def test_changes_update_and_cancellations_close_certification_folders(
    app: App, authorised: Seed, runner: PartnerSyncRunner, tmp_path: Path
) -> None:
    await run_file(runner, authorised, write_csv(tmp_path, ROWS))
    changed = [
        ROWS[0].replace("Accepté", "En formation"),
        ROWS[1].replace("inTraining", "canceledByAttendee"),
        ROWS[3].replace("Sortie de formation", "Refusé par le financeur"),
        ROWS[5],
    ]
    report = await run_file(runner, authorised, write_csv(tmp_path, changed))
    assert (report.updated, report.closed, report.ignored) == (3, 2, 1)
    folders = folders_of(app, authorised)
    assert folders["F-001"].state == "toRegister"
    assert folders["F-001"].training_state == "inTraining"
    assert folders["F-002"].state == "aborted"
    assert folders["F-004"].state == "refused"
    assert "F-006" not in folders  # cancelled before it was ever shared


async def test_bad_rows_are_rejected_with_their_line_and_the_rest_imported(
    app: App, authorised: Seed, runner: PartnerSyncRunner, tmp_path: Path
) -> None:
    rows = [
        ROWS[0],
        "F-010;Blanc;Anne;;;RNCP34567;31/02/2026;30/11/2026;Accepté",
        "F-011;Noir;;;;RNCP34567;01/09/2026;30/11/2026;Presque",
        ROWS[0].replace("Martin", "Martine"),
        "F-012;Vert;Paul;;;RNCP34567;01/09/2026;30/11/2026;Accepté;en trop",
        ROWS[1],
    ]
    report = await run_file(runner, authorised, write_csv(tmp_path, rows))
    assert report.created == 2
    described = [error.describe() for error in report.errors]
    assert described[0].startswith("ligne 3 (dossier F-010) : date de début « 31/02/2026 »")
    assert described[1].startswith("ligne 4 (dossier F-011) : prénom manquant ; état « Presque »")
    assert described[2] == (
        "ligne 5 (dossier F-001) : numéro de dossier en double (déjà ligne 2) : "
        "seule la première ligne est importée"
    )
    assert described[3].startswith("ligne 6 : 10 valeurs pour 9 colonnes")
    assert report.outcome == "rejected"
    assert sorted(folders_of(app, authorised)) == ["F-001", "F-002"]
    assert folders_of(app, authorised)["F-001"].attendee_last_name == "Martin"


async def test_windows_1252_and_comma_separated_exports_are_read(
    app: App, authorised: Seed, runner: PartnerSyncRunner, tmp_path: Path
) -> None:
    rows = [row.replace(";", ",") for row in ROWS[:2]]
    path = write_csv(tmp_path, rows, header=HEADER.replace(";", ","), encoding="cp1252")
    report = await run_file(runner, authorised, path)
    assert report.created == 2
    assert report.notes[0] == "Fichier CSV lu en Windows-1252, séparateur virgule."
    assert folders_of(app, authorised)["F-001"].attendee_first_name == "Claire"
    accents = write_csv(tmp_path, ["F-020;Hélène;Zoé;;;RNCP34567;;;Accepté"], encoding="cp1252")
    await run_file(runner, authorised, accents)
    assert folders_of(app, authorised)["F-020"].attendee_last_name == "Hélène"


async def test_a_line_in_another_encoding_is_one_rejected_row(
    app: App, authorised: Seed, runner: PartnerSyncRunner, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(
        (HEADER + "\n" + ROWS[0] + "\n").encode("utf-8")
        + "F-030;Gérard;Noé;;;RNCP34567;;;Accepté\n".encode("cp1252")
        + (ROWS[1] + "\n").encode("utf-8")
    )
    report = await run_file(runner, authorised, path)
    assert report.created == 2
    [problem] = report.errors
    assert problem.line == 3
    assert "caractères illisibles" in problem.message
    assert "F-030" not in folders_of(app, authorised)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("N° du dossier;Nom;Certification\nF-1;Martin;RNCP34567\n".encode(), "« Prénom »"),
        ((HEADER + "\n").encode("utf-16"), "UTF-16 ou fichier binaire"),
    ],
)
async def test_unreadable_files_are_refused_whole(
    app: App, authorised: Seed, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(content)
    with pytest.raises(RejectedFile) as raised:
        await FileSource.open(path)
    assert message in str(raised.value)


async def test_xlsx_exports_are_read_with_typed_cells(
    app: App, authorised: Seed, runner: PartnerSyncRunner, tmp_path: Path
) -> None:
    from datetime import date

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["N° du dossier", "Nom", "Prénom", "Certification", "Date de début", "État"])
    sheet.append([4021, "Martin", "Claire", "RNCP34567", date(2026, 9, 1), "Accepté"])
    sheet.append(["F-2", "Durand", "Luc", "RS5875", "32/09/2026", "Accepté"])
    sheet.append([None, None, None, None, None, None])
    sheet.append(["F-3", "Petit", "Zoé", "RS5875", "2026-09-01", "En formation"])
    path = tmp_path / "export.xlsx"
    book.save(path)

    report = await run_file(runner, authorised, path)
    assert report.created == 2
    [problem] = report.errors
    assert (problem.line, problem.folder_number) == (3, "F-2")
    folders = folders_of(app, authorised)
    assert folders["4021"].session_start == date(2026, 9, 1)


async def test_prices_funding_billing_and_notes_never_reach_the_database_or_the_logs(
    app: App,
    authorised: Seed,
    runner: PartnerSyncRunner,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secrets = ["PRIX-1490-EUR", "FINANCEMENT-OPCO-XYZ", "FACTURE-2026-0042", "NOTE-PRIVEE-QWERTY"]
    header = HEADER + ";Prix TTC;Montant financé;Facturation;Notes internes"
    rows = [ROWS[0] + ";" + ";".join(secrets), ROWS[1] + ";" + ";".join(secrets)]
    caplog.set_level(logging.DEBUG)

    await run_file(runner, authorised, write_csv(tmp_path, rows, header=header))
    report = await run_file(runner, authorised, write_csv(tmp_path, rows, header=header))

    assert report.notes[1] == (
        "Colonnes non partagées, ignorées : Prix TTC, Montant financé, Facturation, Notes internes."
    )
    dump = database_dump(app)
    assert "Martin" in dump  # the dump does see what was imported
    for secret in secrets:
        assert secret not in dump
        assert secret not in caplog.text
    # No personal data in the logs either.
    for personal in ("Martin", "Claire", "claire@example.org", "0612345678"):
        assert personal not in caplog.text


def database_dump(app: App) -> str:
    """Every value of every table, as text."""

    def work(session: Any) -> str:
        parts = []
        for table in Base.metadata.sorted_tables:
            for row in session.execute(text(f'SELECT * FROM "{table.name}"')):  # noqa: S608
                parts.append(" ".join(map(str, row)))
        return "\n".join(parts)

    return app.db.run_sync(work)


async def test_nothing_is_synced_unless_the_partner_authorised_it(
    app: App, seed: Seed, runner: PartnerSyncRunner, tmp_path: Path
) -> None:
    with pytest.raises(Conflict) as raised:
        await run_file(runner, seed, write_csv(tmp_path, ROWS))
    assert "n'est pas autorisé" in str(raised.value)
    assert count(app, CertificationFolder) == 0


async def test_only_the_certifications_the_request_covers_are_synced(
    app: App, seed: Seed, runner: PartnerSyncRunner, tmp_path: Path
) -> None:
    from bot.access_requests import send_request

    view = await send_request(
        app.engine,
        certifier=str(seed.certifier_id),
        partner=str(seed.organisation_id),
        certifications=["RS5875"],
    )
    await app.engine.fire(view.public_id, RequestEvent.AUTHORISE, actor="partner_contact:web")
    report = await run_file(runner, seed, write_csv(tmp_path, ROWS))
    assert sorted(folders_of(app, seed)) == ["F-002"]
    assert report.ignored == 5


async def test_revoked_sharing_stops_the_sync(
    app: App, authorised: Seed, runner: PartnerSyncRunner, tmp_path: Path
) -> None:
    reference = app.db.run_sync(
        lambda s: s.scalar(
            select(WorkflowInstance.public_id).where(WorkflowInstance.workflow == "access_request")
        )
    )
    await app.engine.fire(reference, RequestEvent.REVOKE, actor="partner_contact:web")
    with pytest.raises(Conflict):
        await run_file(runner, authorised, write_csv(tmp_path, ROWS))
    assert count(app, CertificationFolder) == 0


async def test_a_pause_stops_the_sync_at_once_even_during_a_run(
    app: App,
    authorised: Seed,
    services: SyncServices,
    runner: PartnerSyncRunner,
    tmp_path: Path,
    mail: Any,
    staff: Any,
) -> None:
    await pause_sharing(
        services,
        partnership_id=authorised.partnership_id,
        code="RS5875",
        by=BY_ORGANISATION,
        actor="partner_contact:web",
    )
    assert "Partage suspendu pour RS5875" in mail.sent[-1].subject
    assert "à votre demande" in mail.sent[-1].text
    assert "à la demande de Formations <Sud>" in staff.sent[-1].text
    report = await run_file(runner, authorised, write_csv(tmp_path, ROWS))
    assert sorted(folders_of(app, authorised)) == ["F-001", "F-004"]
    assert report.ignored == 4

    # Paused between two batches (of 3 rows): the run stops before the next one.
    await pause_sharing(
        services,
        partnership_id=authorised.partnership_id,
        code="RNCP34567",
        by=BY_ORGANISATION,
        actor="partner_contact:web",
    )
    await resume_sharing(
        services,
        partnership_id=authorised.partnership_id,
        code="RS5875",
        by=BY_ORGANISATION,
        actor="partner_contact:web",
    )
    assert sorted(folders_of(app, authorised)) == ["F-001", "F-004"]
    original = store.create_folders
    calls = 0

    def pause_after_first_batch(session: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        original(session, **kwargs)
        if calls == 1:
            session.execute(text("UPDATE partnership_certification SET sharing_enabled = false"))

    many = [f"G-{n:03};Nom;Prénom;;;RS5875;;;Accepté" for n in range(9)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "create_folders", pause_after_first_batch)
        report = await run_file(runner, authorised, write_csv(tmp_path, many))
    assert report.outcome == "interrupted"
    assert report.created == 3
    assert "synchronisation interrompue" in (report.failure or "")


async def test_an_interrupted_batch_leaves_nothing_half_written(
    app: App, authorised: Seed, runner: PartnerSyncRunner, tmp_path: Path
) -> None:
    rows = [f"H-{n:03};Nom;Prénom;;;RS5875;;;Accepté" for n in range(7)]
    path = write_csv(tmp_path, rows)
    original = store.update_folders
    calls = 0

    def crash_in_second_batch(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("panne simulée au milieu d'un lot")
        original(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "update_folders", crash_in_second_batch)
        with pytest.raises(RuntimeError):
            await run_file(runner, authorised, path)
    # The first batch (3 rows) is whole; the second left no instance, log or folder row.
    assert count(app, CertificationFolder) == 3
    assert count(app, WorkflowInstance) == 1 + 3  # the access request and 3 folders
    status = app.db.run_sync(lambda s: s.scalars(select(PartnerSync)).one())
    assert status.last_outcome == "interrupted"

    again = await run_file(runner, authorised, path)
    assert (again.created, again.unchanged) == (4, 3)
    assert count(app, CertificationFolder) == 7


async def test_status_is_kept_per_partnership(
    app: App, authorised: Seed, runner: PartnerSyncRunner, tmp_path: Path
) -> None:
    await run_file(runner, authorised, write_csv(tmp_path, [*ROWS, "F-9;;;;;;;;"]))
    status = app.db.run_sync(lambda s: s.scalars(select(PartnerSync)).one())
    assert status.last_outcome == "rejected"
    assert (status.last_created, status.last_ignored, status.last_rejected) == (3, 3, 1)
    assert status.last_errors[0]["line"] == 8
    assert status.last_finished_at is not None
    # The request and its authorisation, each told to both sides: nothing from the sync.
    assert count(app, OutboxMessage) == 4


async def test_bulk_written_rows_read_back_like_the_engines_own(
    app: App, authorised: Seed, runner: PartnerSyncRunner, tmp_path: Path, clock: Any
) -> None:
    await run_file(runner, authorised, write_csv(tmp_path, ROWS[:1]))

    def read(session: Any) -> tuple[Any, ...]:
        folder = session.scalars(
            select(WorkflowInstance).where(WorkflowInstance.workflow == "certification_folder")
        ).one()
        log = session.scalars(
            select(TransitionLog).where(TransitionLog.instance_id == folder.id)
        ).one()
        raw = list(
            session.execute(text("SELECT created_at FROM workflow_instance ORDER BY id")).scalars()
        )
        return folder, log, raw

    folder, log, raw = app.db.run_sync(read)
    assert folder.created_at == clock.now()
    assert folder.data == {"folder_number": "F-001"}
    assert (log.event, log.to_state, log.at) == ("start", "toRegister", clock.now())
    # Same stored text form as rows the ORM writes: dates compare correctly in SQL.
    assert [type(value) for value in raw] == [type(raw[0])] * len(raw)
    if isinstance(raw[0], str):
        assert len(raw[0]) == len(raw[1])


async def test_line_numbers_hold_across_read_chunks_and_quoted_line_breaks(
    app: App,
    authorised: Seed,
    runner: PartnerSyncRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.sync import files

    monkeypatch.setattr(files, "CHUNK_BYTES", 40)  # many chunk boundaries in a small file
    path = tmp_path / "export.csv"
    path.write_bytes(
        (HEADER + "\n").encode()
        + (ROWS[0] + "\n").encode()
        + 'F-040;"Le\nGoff";Yann;;;RS5875;;;Accepté\n'.encode()
        + "F-041;Gérard;Noé;;;RS5875;;;Accepté\n".encode("cp1252")
        + "F-042;Durand;Léo;;;RS5875;;;31/02/2026\n".encode()
        + (ROWS[1] + "\n").encode()
    )
    report = await run_file(runner, authorised, path)
    assert [(e.line, e.folder_number) for e in report.errors] == [(5, None), (6, "F-042")]
    assert sorted(folders_of(app, authorised)) == ["F-001", "F-002", "F-040"]
    assert folders_of(app, authorised)["F-040"].attendee_last_name == "Le Goff"
