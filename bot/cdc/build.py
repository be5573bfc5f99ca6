"""Build CDC deposit files from the folders « réussi » not yet accepted: streamed, split, checked.

One pass over the passages, in the database's order (certification, then passage): each
passage is written as soon as it is read (lxml's incremental writer), so memory does not grow
with their number; only the ids of the written passages are kept (8 bytes each). A file is
closed before 200,000 passages or 200 MB, and every file is checked with the validator before
it gets its final name. The batches, their workflow instances and the passages' new state are
written in the same transaction: on any failure, no file and no row is left behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from lxml import etree
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.cdc.passages import (
    CHUNK,
    EXPORTED,
    KO,
    PENDING,
    certifier_of,
    ensure_passages,
    new_instance,
)
from bot.cdc.rules import MAX_FILE_BYTES, MAX_PASSAGES
from bot.cdc.validate import validate_file
from bot.clock import PARIS
from bot.errors import Conflict, CordeeError, InvalidInput
from bot.store.models import CdcBatch, CdcPassage, Certification, CertificationFolder
from bot.sync.services import SyncServices
from workflows import cdc_batch

NS = "urn:cdc:cpf:pc5:schema:1.0.0"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA = "1.1.2"
PASSAGES_PER_FILE = MAX_PASSAGES - 1
"""Split before 200,000 passages."""
BYTES_PER_FILE = MAX_FILE_BYTES - (1 << 20)
"""Split before 200 MB, keeping room for the writer's buffer and the closing tags."""
_NIL = {f"{{{XSI}}}nil": "true"}


class BuildFailed(CordeeError):
    """A built file did not pass the validator: a bug of ours, nothing is kept."""


@dataclass(frozen=True)
class BuiltFile:
    reference: str
    file_name: str
    path: Path
    id_flux: str
    passages: int
    size_bytes: int


@dataclass(frozen=True)
class LeftOut:
    """A passage not put in the file, and why (no personal data: references only)."""

    reference: str
    folder_number: str
    certification: str
    reason: str


@dataclass(frozen=True)
class BuildResult:
    certifier_id: int
    files: tuple[BuiltFile, ...]
    left_out: tuple[LeftOut, ...]
    horodatage: str


def horodatage(now: datetime) -> str:
    """Europe/Paris with the offset of the day (+01:00 winter, +02:00 summer), whole seconds."""
    return now.astimezone(PARIS).replace(microsecond=0).isoformat()


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


# ------------------------------------------------------------- passage data


@dataclass(frozen=True, slots=True)
class Candidate:
    passage_id: int
    id_technique: str
    folder_number: str
    first_name: str
    last_name: str
    certification_type: str
    certification_code: str
    issued_on: date | None
    mention: str | None
    edof_number: str | None
    birth_name: str | None
    birth_date: date | None
    sex: str | None
    birth_insee: str | None


def missing(candidate: Candidate, today: date) -> str | None:
    """Why a passage cannot be deposited yet, in French, or None when it can."""
    if candidate.issued_on is None:
        return "date de délivrance manquante (`cordee folders set-result … --issued-on`)"
    if candidate.issued_on > today:
        return "date de délivrance dans le futur"
    if candidate.edof_number:
        return None
    lacking = [
        label
        for label, value in (
            ("date de naissance", candidate.birth_date),
            ("sexe", candidate.sex),
            ("commune de naissance (code INSEE)", candidate.birth_insee),
        )
        if value is None
    ]
    if lacking:
        return (
            "état civil incomplet, il manque : "
            + ", ".join(lacking)
            + " (ou le n° de dossier EDOF si la formation a été financée par le CPF)"
        )
    if len(candidate.birth_name or candidate.last_name) > 60 or len(candidate.first_name) > 60:
        return "nom ou prénom de plus de 60 caractères : donnez le nom de naissance exact"
    return None


def _leaf(parent: etree._Element, name: str, text: str | None) -> None:
    child = etree.SubElement(parent, _q(name), _NIL if text is None else None)
    if text is not None:
        child.text = text


def passage_element(candidate: Candidate) -> etree._Element:
    """One passageCertification; results not recorded by Cordée are sent as nil or omitted."""
    assert candidate.issued_on is not None  # noqa: S101 - checked by missing()
    passage = etree.Element(_q("passageCertification"), nsmap={"cpf": NS, "xsi": XSI})
    _leaf(passage, "idTechnique", candidate.id_technique)
    _leaf(passage, "obtentionCertification", "PAR_ADMISSION")
    _leaf(passage, "donneeCertifiee", "true")
    _leaf(passage, "dateDebutValidite", candidate.issued_on.isoformat())
    _leaf(passage, "dateFinValidite", None)
    _leaf(passage, "presenceNiveauLangueEuro", "false")
    _leaf(passage, "presenceNiveauNumeriqueEuro", "false")
    _leaf(passage, "scoring", None)
    _leaf(passage, "mentionValidee", candidate.mention)
    inscription = etree.SubElement(passage, _q("modalitesInscription"))
    _leaf(inscription, "modaliteAcces", None)
    identification = etree.SubElement(passage, _q("identificationTitulaire"))
    if candidate.edof_number:
        # The EDOF route: the CDC finds the holder from the CPF folder (name ≤ 30, first ≤ 20).
        route = etree.SubElement(identification, _q("dossierFormation"))
        _leaf(route, "idDossier", candidate.edof_number)
        _leaf(route, "nomTitulaire", candidate.last_name.strip()[:30])
        _leaf(route, "prenom1Titulaire", candidate.first_name.strip()[:20])
        return passage
    assert candidate.birth_date is not None  # noqa: S101 - checked by missing()
    route = etree.SubElement(identification, _q("titulaire"))
    birth_name = (candidate.birth_name or candidate.last_name).strip()
    _leaf(route, "nomNaissance", birth_name)
    usage = candidate.last_name.strip()
    _leaf(route, "nomUsage", usage if usage.upper() != birth_name.upper() else None)
    _leaf(route, "prenom1", candidate.first_name.strip())
    _leaf(route, "anneeNaissance", str(candidate.birth_date.year))
    _leaf(route, "moisNaissance", str(candidate.birth_date.month))
    _leaf(route, "jourNaissance", str(candidate.birth_date.day))
    _leaf(route, "sexe", candidate.sex)
    commune = etree.SubElement(route, _q("codeCommuneNaissance"))
    insee = etree.SubElement(commune, _q("codeInseeNaissance"))
    _leaf(insee, "codeInsee", candidate.birth_insee)
    return passage


def candidates(session: Session, certifier_id: int) -> Iterator[Candidate]:
    """Passages to deposit (never sent, or refused by the CDC), streamed in file order."""
    query = (
        select(
            CdcPassage.id,
            CdcPassage.id_technique,
            CertificationFolder.folder_number,
            CertificationFolder.attendee_first_name,
            CertificationFolder.attendee_last_name,
            Certification.type,
            Certification.code,
            CdcPassage.issued_on,
            CdcPassage.mention,
            CdcPassage.edof_number,
            CdcPassage.birth_name,
            CdcPassage.birth_date,
            CdcPassage.sex,
            CdcPassage.birth_insee,
        )
        .join(CertificationFolder, CertificationFolder.id == CdcPassage.folder_id)
        .join(Certification, Certification.id == CertificationFolder.certification_id)
        .where(
            CdcPassage.certifier_id == certifier_id,
            CertificationFolder.certifier_id == certifier_id,
            CdcPassage.state.in_((PENDING, KO)),
        )
        .order_by(Certification.code, CdcPassage.id)
        .execution_options(yield_per=1000)
    )
    for row in session.execute(query):
        yield Candidate(*cast(tuple[Any, ...], row))


# ------------------------------------------------------------------- writing


class _Counting:
    """A binary file that counts what goes through it (and hashes it)."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.size = 0
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.size += len(data)
        self.digest.update(data)
        return self.handle.write(data)


@dataclass
class _Open:
    temp: Path
    final: Path
    id_flux: str
    handle: BinaryIO
    counter: _Counting
    stack: list[Any]
    writer: Any
    passage_ids: array[int] = field(default_factory=lambda: array("q"))
    certification: str | None = None
    sha256: str = ""


class _Writer:
    """Writes the passages into as many files as the limits require."""

    def __init__(
        self,
        out_dir: Path,
        stem: str,
        header: dict[str, str],
        stamp: str,
        max_passages: int,
        max_bytes: int,
    ) -> None:
        self.out_dir = out_dir
        self.stem = stem
        self.header = header
        self.stamp = stamp
        self.max_passages = max_passages
        self.max_bytes = max_bytes
        self.current: _Open | None = None
        self.done: list[_Open] = []

    def add(self, candidate: Candidate) -> None:
        current = self.current
        if current is not None and (
            len(current.passage_ids) >= self.max_passages or current.counter.size >= self.max_bytes
        ):
            self._close()
            current = None
        if current is None:
            current = self._open()
        if current.certification != candidate.certification_code:
            self._close_certification(current)
            self._open_certification(current, candidate)
        current.writer.write(passage_element(candidate))
        current.passage_ids.append(candidate.passage_id)

    def finish(self) -> list[_Open]:
        if self.current is not None:
            self._close()
        return self.done

    def discard(self) -> None:
        for item in [*self.done, *([self.current] if self.current else [])]:
            if not item.handle.closed:
                item.handle.close()
            item.temp.unlink(missing_ok=True)

    def _open(self) -> _Open:
        number = len(self.done) + 1
        final = self.out_dir / f"{self.stem}-{number:02d}.xml"
        temp = self.out_dir / f".{final.name}.part"
        handle = temp.open("xb")
        counter = _Counting(handle)
        context = etree.xmlfile(counter, encoding="UTF-8")
        writer = context.__enter__()
        writer.write_declaration()
        stack: list[Any] = [context]
        id_flux = str(uuid.uuid4())

        def enter(name: str, nsmap: dict[str, str] | None = None) -> None:
            element = writer.element(_q(name), nsmap=nsmap) if nsmap else writer.element(_q(name))
            element.__enter__()
            stack.append(element)

        def leaf(name: str, text: str) -> None:
            with writer.element(_q(name)):
                writer.write(text)

        enter("flux", {"cpf": NS, "xsi": XSI})
        leaf("idFlux", id_flux)
        leaf("horodatage", self.stamp)
        enter("emetteur")
        leaf("idClient", self.header["emitter"])
        enter("certificateurs")
        enter("certificateur")
        leaf("idClient", self.header["certifier"])
        leaf("idContrat", self.header["contract"])
        enter("certifications")
        self.current = _Open(temp, final, id_flux, handle, counter, stack, writer)
        return self.current

    def _open_certification(self, current: _Open, candidate: Candidate) -> None:
        writer = current.writer
        element = writer.element(_q("certification"))
        element.__enter__()
        current.stack.append(element)
        for name, text in (
            ("type", candidate.certification_type),
            ("code", candidate.certification_code),
            ("natureDeposant", "CERTIFICATEUR"),
        ):
            with writer.element(_q(name)):
                writer.write(text)
        container = writer.element(_q("passageCertifications"))
        container.__enter__()
        current.stack.append(container)
        current.certification = candidate.certification_code

    def _close_certification(self, current: _Open) -> None:
        if current.certification is None:
            return
        for _ in range(2):  # passageCertifications, certification
            current.stack.pop().__exit__(None, None, None)
        current.certification = None

    def _close(self) -> None:
        current = self.current
        assert current is not None  # noqa: S101
        self._close_certification(current)
        while current.stack:
            current.stack.pop().__exit__(None, None, None)
        current.handle.flush()
        os.fsync(current.handle.fileno())
        current.handle.close()
        current.sha256 = current.counter.digest.hexdigest()
        self.done.append(current)
        self.current = None


# -------------------------------------------------------------------- build


async def build_deposit(
    services: SyncServices,
    certifier_id: int,
    out_dir: Path,
    *,
    actor: str,
    max_passages: int = PASSAGES_PER_FILE,
    max_bytes: int = BYTES_PER_FILE,
) -> BuildResult:
    """Write the certifier's deposit file(s) into `out_dir`; see the module docstring."""
    return await asyncio.to_thread(
        _build, services, certifier_id, out_dir, actor, max_passages, max_bytes
    )


def _build(
    services: SyncServices,
    certifier_id: int,
    out_dir: Path,
    actor: str,
    max_passages: int,
    max_bytes: int,
) -> BuildResult:
    now = services.clock.now()
    stamp = horodatage(now)
    today = now.astimezone(PARIS).date()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidInput(
            f"impossible de créer le dossier « {out_dir} » ({error.strerror}) : choisissez un "
            "autre dossier avec --out."
        ) from error
    placed: list[Path] = []
    writer: _Writer | None = None
    try:
        with services.db.transaction() as session:
            certifier = certifier_of(session, certifier_id)
            if len(certifier.cdc_matricule) != 8 or not certifier.contract_number:
                raise InvalidInput(
                    f"le certificateur « {certifier.name} » n'a pas de matricule CDC de 8 "
                    "caractères ou de n° de contrat : la CDC les attribue ; enregistrez-les avant "
                    "de produire un fichier."
                )
            ensure_passages(session, certifier_id, now)
            stem = f"cordee-{certifier.cdc_matricule}-{now.astimezone(PARIS):%Y%m%d-%H%M%S}"
            writer = _Writer(
                out_dir,
                stem,
                {
                    "emitter": certifier.cdc_matricule,
                    "certifier": certifier.cdc_matricule,
                    "contract": certifier.contract_number,
                },
                stamp,
                max_passages,
                max_bytes,
            )
            left_out: list[LeftOut] = []
            for candidate in candidates(session, certifier_id):
                reason = missing(candidate, today)
                if reason is None:
                    writer.add(candidate)
                else:
                    left_out.append(
                        LeftOut(
                            candidate.id_technique,
                            candidate.folder_number,
                            candidate.certification_code,
                            reason,
                        )
                    )
            files = writer.finish()
            for item in files:
                _check(item, now)
            built = [_record(session, certifier, item, actor=actor, now=now) for item in files]
            for item in files:
                if item.final.exists():
                    raise Conflict(
                        f"le fichier « {item.final} » existe déjà : relancez dans une seconde ou "
                        "choisissez un autre dossier avec --out."
                    )
                os.replace(item.temp, item.final)
                placed.append(item.final)
    except BaseException:
        if writer is not None:
            writer.discard()
        for path in placed:
            path.unlink(missing_ok=True)
        raise
    return BuildResult(certifier_id, tuple(built), tuple(left_out), stamp)


def _check(item: _Open, now: datetime) -> None:
    report = validate_file(item.temp, SCHEMA, max_errors=5, now=now)
    if report.exit_code != 0:
        detail = " ; ".join(f"[{e.code.value}] {e.message}" for e in report.errors[:5])
        raise BuildFailed(
            f"le fichier produit ne passe pas la validation ({detail}). Rien n'a été enregistré ; "
            "signalez ce problème à l'équipe Cordée."
        )


def _record(
    session: Session, certifier: Any, item: _Open, *, actor: str, now: datetime
) -> BuiltFile:
    count = len(item.passage_ids)
    size = item.counter.size
    instance = new_instance(
        session,
        workflow=cdc_batch.NAME,
        prefix=cdc_batch.WORKFLOW.reference_prefix,
        initial=cdc_batch.WORKFLOW.initial,
        certifier_id=certifier.id,
        data={
            "certifier_name": certifier.name,
            "file_name": item.final.name,
            "id_flux": item.id_flux,
            "passages": count,
        },
        actor=actor,
        now=now,
    )
    batch = CdcBatch(
        certifier_id=certifier.id,
        instance_id=instance.id,
        id_flux=item.id_flux,
        file_name=item.final.name,
        file_path=str(item.final.resolve()),
        schema=SCHEMA,
        passages=count,
        size_bytes=size,
        sha256=item.sha256,
        ok_count=0,
        ko_count=0,
        created_at=now,
    )
    session.add(batch)
    session.flush()
    ids = item.passage_ids
    for start in range(0, len(ids), CHUNK):
        session.execute(
            update(CdcPassage)
            .where(
                CdcPassage.certifier_id == certifier.id,
                CdcPassage.id.in_(ids[start : start + CHUNK].tolist()),
            )
            .values(state=EXPORTED, batch_id=batch.id, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return BuiltFile(instance.public_id, item.final.name, item.final, item.id_flux, count, size)
