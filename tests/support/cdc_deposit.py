"""Builders for the CDC deposit tests: certification folders « réussi » with their results."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.cdc.passages import ResultData, record_result
from bot.store.db import Database
from bot.store.models import Certification, CertificationFolder, WorkflowInstance
from bot.sync.folders import create_folders
from bot.sync.rules import TrainingFolder
from tests.support.builders import Seed

COMPLETE = ResultData(birth_date=date(1990, 4, 17), sex="F", birth_insee="31555")


def add_successes(
    db: Database,
    seed: Seed,
    numbers: list[str],
    *,
    entered_at: datetime,
    code: str = "RNCP34567",
    issued_on: date | None = None,
    result: ResultData | None = COMPLETE,
) -> dict[str, str]:
    """Folders « réussi » (entered at `entered_at`); returns folder number → DC reference."""

    def work(session: Session) -> dict[str, str]:
        certification_id = session.scalar(
            select(Certification.id).where(Certification.code == code)
        )
        assert certification_id is not None
        folders = [
            TrainingFolder(
                None,
                number,
                "Martin",
                "Camille",
                None,
                None,
                code,
                None,
                None,
                "terminated",
                None,
                None,
                f"fp-{number}",
            )
            for number in numbers
        ]
        create_folders(
            session,
            certifier_id=seed.certifier_id,
            partnership_id=seed.partnership_id,
            folders=folders,
            codes={code: certification_id},
            actor="test",
            now=entered_at,
        )
        rows = session.execute(
            select(
                CertificationFolder.id,
                CertificationFolder.folder_number,
                WorkflowInstance.id,
                WorkflowInstance.public_id,
            )
            .join(WorkflowInstance, WorkflowInstance.id == CertificationFolder.instance_id)
            .where(
                CertificationFolder.folder_number.in_(numbers),
                CertificationFolder.partnership_id == seed.partnership_id,
            )
        ).all()
        session.execute(
            update(WorkflowInstance)
            .where(WorkflowInstance.id.in_([row[2] for row in rows]))
            .values(state="success", state_entered_at=entered_at)
        )
        for folder_id, _, _, _ in rows:
            data = result or ResultData()
            if issued_on is not None:
                data = ResultData(**{**data.__dict__, "issued_on": issued_on})
            if any(value is not None for value in data.__dict__.values()):
                record_result(session, seed.certifier_id, folder_id, data, entered_at)
        return {number: reference for _, number, _, reference in rows}

    return db.run_sync(work)


def set_result(db: Database, seed: Seed, number: str, data: ResultData, now: datetime) -> None:
    def work(session: Session) -> None:
        folder_id = session.scalar(
            select(CertificationFolder.id).where(
                CertificationFolder.folder_number == number,
                CertificationFolder.certifier_id == seed.certifier_id,
            )
        )
        assert folder_id is not None
        record_result(session, seed.certifier_id, folder_id, data, now)

    db.run_sync(work)


def report_xml(
    id_flux: str,
    *,
    ok: list[str] = (),  # type: ignore[assignment]
    ko: list[tuple[str, str]] = (),  # type: ignore[assignment]
    file_name: str = "depot.xml",
    ok_tag: str = "PassagesOK",
    ko_tag: str = "PassagesKO",
    encoding: str = "UTF-8",
) -> bytes:
    """A processing report shaped like the CDC's (see domain.md §2)."""
    kos = "".join(
        f"<passage><idTechnique>{ident}</idTechnique><messageErreur>{message}</messageErreur></passage>"
        for ident, message in ko
    )
    oks = "".join(f"<idTechnique>{ident}</idTechnique>" for ident in ok)
    text = (
        f'<?xml version="1.0" encoding="{encoding}" standalone="yes"?>\n'
        '<rapport xmlns:ns2="urn:cdc:cpf:pc5:rapport:schema">'
        f"<nomFichier>{file_name}</nomFichier><idFlux>{id_flux}</idFlux>"
        f"<idTraitement>51354</idTraitement><{ko_tag}>{kos}</{ko_tag}><{ok_tag}>{oks}</{ok_tag}>"
        "</rapport>\n"
    )
    return text.encode("cp1252" if encoding.lower() == "windows-1252" else "utf-8")
