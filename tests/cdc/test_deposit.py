"""CDC deposit: build → validate → report round trip, splitting, offsets, batch states."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from bot.app import App
from bot.cdc.build import build_deposit, horodatage
from bot.cdc.deposit import mark_batch
from bot.cdc.passages import ResultData, deposit_status
from bot.cdc.report import import_report
from bot.cdc.validate import validate_file
from bot.channels.memory import MemoryChannel
from bot.clock import FrozenClock
from bot.errors import Conflict, NotFound
from bot.store.models import CdcPassage
from bot.sync.services import SyncServices
from tests.support.builders import Seed
from tests.support.cdc_deposit import add_successes, report_xml, set_result

NS = {"c": "urn:cdc:cpf:pc5:schema:1.0.0"}


@pytest.fixture
def services(app: App) -> SyncServices:
    return SyncServices.of(app)


def ids_in(path: Path) -> list[str]:
    return [e.text or "" for e in etree.parse(str(path)).iterfind(".//c:idTechnique", NS)]


def states(app: App) -> dict[str, str]:
    rows = app.db.run_sync(
        lambda s: s.execute(select(CdcPassage.id_technique, CdcPassage.state)).all()
    )
    return dict(rows)


def test_horodatage_has_the_paris_offset_of_the_day() -> None:
    assert (
        horodatage(datetime(2026, 7, 1, 8, 30, 15, 123456, tzinfo=UTC))
        == "2026-07-01T10:30:15+02:00"
    )
    assert horodatage(datetime(2026, 1, 15, 8, 30, tzinfo=UTC)) == "2026-01-15T09:30:00+01:00"
    # The night the clocks go back: 00:59 UTC is 02:59 summer time, 01:00 UTC is 02:00 winter.
    assert horodatage(datetime(2026, 10, 25, 0, 59, tzinfo=UTC)).endswith("T02:59:00+02:00")
    assert horodatage(datetime(2026, 10, 25, 1, 0, tzinfo=UTC)).endswith("T02:00:00+01:00")


async def test_build_validate_report_round_trip(
    app: App,
    seed: Seed,
    services: SyncServices,
    clock: FrozenClock,
    staff: MemoryChannel,
    tmp_path: Path,
) -> None:
    refs = add_successes(
        app.db, seed, ["F-1", "F-2", "F-3"], entered_at=clock.now(), issued_on=date(2026, 11, 20)
    )
    set_result(app.db, seed, "F-3", ResultData(edof_number="1234567890123"), clock.now())
    incomplete = add_successes(app.db, seed, ["F-4"], entered_at=clock.now(), result=None)

    built = await build_deposit(services, seed.certifier_id, tmp_path / "out", actor="test")

    assert [left.reference for left in built.left_out] == [incomplete["F-4"]]
    assert "date de délivrance manquante" in built.left_out[0].reason
    (file,) = built.files
    assert file.passages == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [file.file_name]  # no .part left
    report = validate_file(file.path, "1.1.2", now=clock.now())
    assert (report.exit_code, report.passages) == (0, 3)
    root = etree.parse(str(file.path)).getroot()
    assert root.findtext("c:horodatage", namespaces=NS) == "2026-11-23T10:00:00+01:00"
    assert root.findtext("c:idFlux", namespaces=NS) == file.id_flux
    assert sorted(ids_in(file.path)) == sorted(refs.values())
    edof = root.find(".//c:dossierFormation", NS)
    assert edof is not None
    assert edof.findtext("c:idDossier", namespaces=NS) == "1234567890123"
    assert len(root.findall(".//c:titulaire", NS)) == 2
    assert set(states(app).values()) == {"exported", "pending"}

    # Built but not deposited: building again sends nothing twice.
    again = await build_deposit(services, seed.certifier_id, tmp_path / "out", actor="test")
    assert again.files == ()
    await mark_batch(services, seed.certifier_id, file.reference, "deposited", actor="test")
    with pytest.raises(Conflict, match="qu'une fois"):
        await mark_batch(services, seed.certifier_id, file.reference, "deposited", actor="test")

    staff.sent.clear()
    outcome = await import_report(
        services,
        report_xml(
            file.id_flux,
            ok=[refs["F-1"]],
            ko=[
                (refs["F-2"], "Aucun titulaire ne correspond aux critères obligatoires"),
                (refs["F-3"], "Le passage DC-… existe déjà en base"),
                ("INCONNU-42", "Aucun titulaire ne correspond aux critères obligatoires"),
            ],
        ),
        actor="test",
    )
    assert (outcome.ok, outcome.duplicates, outcome.ko) == (2, 1, 1)
    assert outcome.unknown == ("INCONNU-42",)
    assert outcome.state == "processed_ko"
    assert states(app)[refs["F-2"]] == "ko"
    assert states(app)[refs["F-1"]] == states(app)[refs["F-3"]] == "ok"
    (notice,) = staff.sent
    assert "1 passage(s) à corriger" in notice.subject
    assert "Camille MARTIN (dossier F-2" in notice.text
    assert "Aucun titulaire ne correspond" in notice.text

    # The same report again changes nothing and is said so.
    twice = await import_report(services, report_xml(file.id_flux, ok=[refs["F-1"]]), actor="test")
    assert twice.already_imported

    # Next file: the refused passage and the one now complete; accepted ones never again.
    set_result(
        app.db,
        seed,
        "F-4",
        ResultData(
            issued_on=date(2026, 11, 2), birth_date=date(1999, 2, 28), sex="M", birth_insee="2A004"
        ),
        clock.now(),
    )
    clock.advance(timedelta(minutes=1))
    second = await build_deposit(services, seed.certifier_id, tmp_path / "out", actor="test")
    (next_file,) = second.files
    assert sorted(ids_in(next_file.path)) == sorted([refs["F-2"], incomplete["F-4"]])
    assert next_file.id_flux != file.id_flux
    assert validate_file(next_file.path, "1.1.2", now=clock.now()).exit_code == 0

    status = app.db.run_sync(lambda s: deposit_status(s, seed.certifier_id, clock.now()))
    assert status.passages == {"pending": 0, "exported": 2, "ok": 2, "ko": 0}
    assert [b.state for b in status.batches] == ["generated", "processed_ko"]


async def test_a_summer_build_carries_plus_two_hours_and_is_valid(
    app: App, seed: Seed, services: SyncServices, clock: FrozenClock, tmp_path: Path
) -> None:
    clock.set(datetime(2026, 7, 1, 8, 30, tzinfo=UTC))
    add_successes(app.db, seed, ["S-1"], entered_at=clock.now(), issued_on=date(2026, 6, 30))
    (file,) = (await build_deposit(services, seed.certifier_id, tmp_path, actor="test")).files
    text = file.path.read_text(encoding="utf-8")
    assert "<cpf:horodatage>2026-07-01T10:30:00+02:00</cpf:horodatage>" in text
    assert validate_file(file.path, "1.1.2", now=clock.now()).exit_code == 0


async def test_big_builds_are_split_and_every_file_is_valid(
    app: App, seed: Seed, services: SyncServices, clock: FrozenClock, tmp_path: Path
) -> None:
    add_successes(
        app.db,
        seed,
        [f"A-{n}" for n in range(3)],
        entered_at=clock.now(),
        issued_on=date(2026, 11, 1),
    )
    add_successes(
        app.db,
        seed,
        [f"B-{n}" for n in range(2)],
        entered_at=clock.now(),
        code="RS5875",
        issued_on=date(2026, 11, 1),
    )

    built = await build_deposit(services, seed.certifier_id, tmp_path, actor="test", max_passages=2)

    assert [f.passages for f in built.files] == [2, 2, 1]
    assert len({f.id_flux for f in built.files}) == len({f.reference for f in built.files}) == 3
    every = [ident for f in built.files for ident in ids_in(f.path)]
    assert len(every) == len(set(every)) == 5
    for file in built.files:
        assert validate_file(file.path, "1.1.2", now=clock.now()).exit_code == 0
    # The file that straddles two certifications has both, each with its own passages.
    codes = etree.parse(str(built.files[1].path)).getroot().findall(".//c:certification/c:code", NS)
    assert [c.text for c in codes] == ["RNCP34567", "RS5875"]


async def test_reports_are_scoped_to_their_batch_and_certifier(
    app: App, seed: Seed, services: SyncServices, clock: FrozenClock, tmp_path: Path
) -> None:
    add_successes(app.db, seed, ["F-1"], entered_at=clock.now(), issued_on=date(2026, 11, 1))
    (file,) = (await build_deposit(services, seed.certifier_id, tmp_path, actor="test")).files
    with pytest.raises(NotFound, match="introuvable pour ce certificateur"):
        await import_report(
            services, report_xml(file.id_flux), actor="test", certifier_id=seed.certifier_id + 1
        )
    with pytest.raises(NotFound, match="introuvable"):
        await import_report(
            services,
            report_xml("00000000-0000-0000-0000-000000000000", file_name="x.xml"),
            actor="test",
        )
    # Rejected by the CDC: the passages go back to the next file.
    await mark_batch(services, seed.certifier_id, file.id_flux, "deposited", actor="test")
    marked = await mark_batch(services, seed.certifier_id, file.file_name, "rejected", actor="test")
    assert (marked.state, marked.returned) == ("rejected", 1)
    with pytest.raises(Conflict, match="rejeté"):
        await import_report(services, report_xml(file.id_flux), actor="test")
    assert set(states(app).values()) == {"pending"}


async def test_a_deposited_batch_without_report_reminds_the_staff_after_7_days(
    app: App,
    seed: Seed,
    services: SyncServices,
    clock: FrozenClock,
    staff: MemoryChannel,
    tmp_path: Path,
) -> None:
    add_successes(app.db, seed, ["F-1"], entered_at=clock.now(), issued_on=date(2026, 11, 1))
    (file,) = (await build_deposit(services, seed.certifier_id, tmp_path, actor="test")).files
    deposited = clock.now()
    await mark_batch(services, seed.certifier_id, file.reference, "deposited", actor="test")
    staff.sent.clear()

    assert await app.engine.tick(deposited + timedelta(days=7) - timedelta(minutes=1)) == 0
    assert await app.engine.tick(deposited + timedelta(days=7)) == 1
    (reminder,) = staff.sent
    assert reminder.subject == f"Rapport de traitement CDC toujours attendu : {file.file_name}"
    assert "déposé le 23 novembre 2026" in reminder.text
    assert await app.engine.tick(deposited + timedelta(days=13)) == 0
    assert await app.engine.tick(deposited + timedelta(days=14)) == 1
    assert await app.engine.tick(deposited + timedelta(days=60)) == 0
