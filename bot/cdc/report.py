"""CDC processing reports (« accusé de traitement »): safe parsing, then applying to a batch.

`parse_report` is pure: it reads the `rapport` whatever the case of its element names, with
one passage or many, in UTF-8 or Windows-1252, and refuses any DOCTYPE (no DTD, no entity,
no network). `import_report` applies it to the batch it names (idFlux, else nomFichier):
accepted passages become ok — « … existe déjà en base » too, the CDC already has them —,
refused ones ko with the CDC's message, and identifiers that are not in the batch are
reported, never applied. Channels (an email attachment, a Slack file) call `import_report`
with the file's bytes, like `cordee deposit report` does; a report that comes by email is
matched by its idFlux alone (see import_report_mail).
"""

from __future__ import annotations

import email
import io
import re
import unicodedata
import uuid
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from typing import Any, cast

from lxml import etree
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from bot.cdc.passages import KO, LISTED, OK, find_batch, holder
from bot.errors import Conflict, InvalidInput
from bot.store.models import CdcBatch, CdcPassage, CertificationFolder
from bot.sync.services import SyncServices
from workflows.cdc_batch import AWAITING_REPORT, Event, State

MAX_REPORT_BYTES = 256 << 20
PASSAGES = cast(Table, CdcPassage.__table__)
_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']", re.I)
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.I)
DUPLICATE = "existe deja en base"


class ReportUnreadable(InvalidInput):
    """The file is not a CDC processing report we can read safely."""


@dataclass(frozen=True)
class KoLine:
    id_technique: str
    message: str


@dataclass(frozen=True)
class ParsedReport:
    file_name: str | None
    id_flux: str | None
    id_traitement: str | None
    ok: tuple[str, ...]
    ko: tuple[KoLine, ...]


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).lower().split())


def is_duplicate(message: str) -> bool:
    """« Le passage … existe déjà en base »: the CDC holds it already, so it counts as OK."""
    return DUPLICATE in _plain(message)


def _utf8(data: bytes) -> bytes:
    """Windows-1252 files that do not say so (or claim UTF-8) are re-encoded as UTF-8."""
    match = _DECLARATION.match(data)
    declared = match.group(1).decode("ascii").lower() if match else None
    if declared not in (None, "utf-8", "utf8"):
        return data  # libxml2 converts the declared encoding itself
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
        body = re.sub(r"^\s*<\?xml[^>]*\?>", "", text, count=1)
        return body.encode("utf-8")
    return data


def _local(element: Any) -> str:
    tag = element.tag
    if not isinstance(tag, str):
        return ""  # comments, processing instructions
    return etree.QName(tag).localname.lower()


def _text(element: Any) -> str:
    return "".join(element.itertext()).strip()


def parse_report(data: bytes) -> ParsedReport:
    """Read a processing report; raise ReportUnreadable with what to do when it cannot be."""
    if len(data) > MAX_REPORT_BYTES:
        raise ReportUnreadable("fichier de plus de 256 Mo : ce n'est pas un rapport de la CDC.")
    if not data.strip():
        raise ReportUnreadable("le fichier est vide : téléchargez de nouveau le rapport.")
    if _DOCTYPE.search(data[: 1 << 20]):
        raise ReportUnreadable(
            "le fichier contient une déclaration DOCTYPE (DTD, entités) : refusé par sécurité. "
            "Les rapports de la CDC n'en ont pas ; téléchargez de nouveau l'original."
        )
    file_name = id_flux = id_traitement = None
    ok: list[str] = []
    ko: list[KoLine] = []
    root_seen = False
    try:
        events = etree.iterparse(
            io.BytesIO(_utf8(data)),
            events=("start", "end"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        depth = 0
        for event, element in events:
            if event == "start":
                if depth == 0:
                    root_seen = True
                    if _local(element) != "rapport":
                        raise ReportUnreadable(
                            f"l'élément racine est « {etree.QName(element).localname} » et non "
                            "« rapport » : ce n'est pas un accusé de traitement de la CDC (un "
                            "fichier de dépôt se vérifie avec `cordee xml validate`)."
                        )
                depth += 1
                continue
            depth -= 1
            name = _local(element)
            parent = element.getparent()
            parent_name = _local(parent) if parent is not None else ""
            if depth == 1 and name in ("nomfichier", "idflux", "idtraitement"):
                value = _text(element) or None
                if name == "nomfichier":
                    file_name = value
                elif name == "idflux":
                    id_flux = value
                else:
                    id_traitement = value
            elif name == "passage" and parent_name == "passagesko":
                fields = {_local(child): _text(child) for child in element}
                identifier = fields.get("idtechnique", "")
                if identifier:
                    message = fields.get("messageerreur", "")
                    code = fields.get("codeerreur")
                    ko.append(KoLine(identifier, f"{code} : {message}" if code else message))
                _drop(element)
            elif name == "idtechnique" and parent_name == "passagesok":
                value = _text(element)
                if value:
                    ok.append(value)
                _drop(element)
    except etree.XMLSyntaxError as error:
        raise ReportUnreadable(
            f"ce n'est pas un fichier XML lisible (ligne {error.lineno}) : téléchargez de nouveau "
            "le rapport depuis l'espace certificateur."
        ) from error
    if not root_seen:
        raise ReportUnreadable("le fichier ne contient aucun élément XML.")
    return ParsedReport(file_name, id_flux, id_traitement, tuple(ok), tuple(ko))


def _drop(element: Any) -> None:
    """Free what is read: memory stays flat on a report of 200,000 lines."""
    element.clear()
    parent = element.getparent()
    while parent is not None and element.getprevious() is not None:
        del parent[0]


# -------------------------------------------------------------------- import


@dataclass(frozen=True)
class ImportOutcome:
    certifier_id: int
    batch_reference: str
    file_name: str
    id_flux: str
    id_traitement: str | None
    state: str
    ok: int
    duplicates: int
    ko: int
    # In the report but not a passage of this batch: reported, not applied.
    unknown: tuple[str, ...]
    # Passages of the batch the report says nothing about (still awaiting a result).
    without_result: int
    already_imported: bool


async def import_report(
    services: SyncServices,
    data: bytes,
    *,
    actor: str,
    certifier_id: int | None = None,
    by_id_flux_only: bool = False,
) -> ImportOutcome:
    """Apply a processing report (the file's bytes) to its batch, in one transaction.

    `certifier_id`, when given, restricts the batches searched to that certifier's;
    `by_id_flux_only` accepts no other way to name the batch than its idFlux. Raises
    ReportUnreadable (unsafe or not a report), NotFound (no batch matches) or Conflict (the
    batch was cancelled or rejected).
    """
    parsed = parse_report(data)
    outcome = await services.db.run(
        lambda session: _apply(session, services, parsed, actor, certifier_id, by_id_flux_only)
    )
    await services.engine.deliver()
    return outcome


def _apply(
    session: Session,
    services: SyncServices,
    parsed: ParsedReport,
    actor: str,
    certifier_id: int | None,
    by_id_flux_only: bool = False,
) -> ImportOutcome:
    wanted = parsed.id_flux or parsed.file_name
    if by_id_flux_only:
        wanted = _canonical_uuid(parsed.id_flux)
        if wanted is None:
            raise ReportUnreadable(
                "le rapport reçu par courriel ne donne pas l'idFlux du fichier déposé : "
                "importez-le avec « cordee deposit report FICHIER.xml »."
            )
    if not wanted:
        raise ReportUnreadable(
            "le rapport ne donne ni idFlux ni nomFichier : impossible de savoir quel fichier il "
            "concerne."
        )
    batch, instance = find_batch(session, certifier_id, wanted)
    owner = batch.certifier_id
    if instance.state in (State.CANCELLED, State.REJECTED):
        raise Conflict(
            f"le lot {instance.public_id} est « abandonné » ou « rejeté » : ses passages ont été "
            "remis à déposer, ce rapport ne s'y applique pas."
        )
    now = services.clock.now()
    already = (
        instance.state in (State.PROCESSED_OK, State.PROCESSED_KO)
        and batch.id_traitement is not None
        and batch.id_traitement == parsed.id_traitement
    )
    members = dict(
        session.execute(
            select(CdcPassage.id_technique, CdcPassage.id).where(
                CdcPassage.certifier_id == owner, CdcPassage.batch_id == batch.id
            )
        ).all()
    )
    results: dict[str, tuple[str, str | None]] = {}
    for line in parsed.ko:
        if is_duplicate(line.message):
            results[line.id_technique] = (OK, line.message[:2000])
        else:
            results.setdefault(line.id_technique, (KO, line.message[:2000] or "refusé"))
    for identifier in parsed.ok:
        results[identifier] = (OK, None)  # an OK line wins over any KO line for the same id
    unknown = tuple(sorted(identifier for identifier in results if identifier not in members))
    applied = [
        {"pid": members[identifier], "st": state, "msg": message}
        for identifier, (state, message) in results.items()
        if identifier in members
    ]
    if applied:
        session.execute(
            update(PASSAGES)
            .where(PASSAGES.c.id == bindparam("pid"), PASSAGES.c.certifier_id == owner)
            .values(state=bindparam("st"), message=bindparam("msg"), result_at=now, updated_at=now),
            applied,
        )
    ok_count = sum(1 for item in applied if item["st"] == OK)
    ko_count = len(applied) - ok_count
    duplicates = sum(
        1
        for identifier, (state, message) in results.items()
        if identifier in members and state == OK and message is not None
    )
    batch.id_traitement = parsed.id_traitement or batch.id_traitement
    batch.ok_count, batch.ko_count = ok_count, ko_count
    batch.processed_at = now
    engine = services.engine
    if instance.state == State.GENERATED:
        # The staff forgot to record the deposit: the report proves it happened.
        batch.deposited_at = batch.deposited_at or now
        engine.fire_in(session, instance.public_id, Event.DEPOSIT, actor=actor, certifier_id=owner)
    if instance.state in AWAITING_REPORT:
        instance.data = {
            **instance.data,
            **_message_data(session, owner, batch, parsed, ok_count, ko_count, len(unknown)),
        }
        event = Event.PROCESS_KO if ko_count else Event.PROCESS_OK
        engine.fire_in(session, instance.public_id, event, actor=actor, certifier_id=owner)
    return ImportOutcome(
        certifier_id=owner,
        batch_reference=instance.public_id,
        file_name=batch.file_name,
        id_flux=batch.id_flux,
        id_traitement=batch.id_traitement,
        state=instance.state,
        ok=ok_count,
        duplicates=duplicates,
        ko=ko_count,
        unknown=unknown,
        without_result=len(members) - len(applied),
        already_imported=already,
    )


def _message_data(
    session: Session,
    certifier_id: int,
    batch: CdcBatch,
    parsed: ParsedReport,
    ok: int,
    ko: int,
    unknown: int,
) -> dict[str, Any]:
    rows = session.execute(
        select(
            CdcPassage.id_technique,
            CdcPassage.message,
            CertificationFolder.folder_number,
            CertificationFolder.attendee_first_name,
            CertificationFolder.attendee_last_name,
        )
        .join(CertificationFolder, CertificationFolder.id == CdcPassage.folder_id)
        .where(
            CdcPassage.certifier_id == certifier_id,
            CdcPassage.batch_id == batch.id,
            CdcPassage.state == KO,
        )
        .order_by(CdcPassage.id)
        .limit(LISTED)
    ).all()
    return {
        "id_traitement": parsed.id_traitement or "—",
        "ok": ok,
        "ko": ko,
        "unknown": unknown,
        "ko_list": [
            {
                "reference": reference,
                "folder_number": number,
                "holder": holder(first, last),
                "message": message or "",
            }
            for reference, message, number, first, last in rows
        ],
        "more": max(ko - LISTED, 0),
    }


# ---------------------------------------------------------------- channels


def xml_attachments(raw: bytes) -> list[tuple[str, bytes]]:
    """The XML files attached to an email (name, bytes): what a mail channel hands over."""
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)  # noqa: S101 - policy.default builds these
    found: list[tuple[str, bytes]] = []
    for part in message.iter_attachments():
        name = part.get_filename() or ""
        if not (name.lower().endswith(".xml") or part.get_content_type().endswith("/xml")):
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            found.append((name, payload))
    return found


_XML_HINT = re.compile(rb"xml", re.I)


def attached_reports(raw: bytes) -> list[bytes]:
    """The CDC processing reports attached to an email; other attachments are left out."""
    if _XML_HINT.search(raw) is None:  # most mails: no XML part, no second parse
        return []
    return [data for _, data in xml_attachments(raw) if is_report(data)]


def is_report(data: bytes) -> bool:
    """Whether the root element is a `rapport` (read no further, resolve nothing).

    Enough of the file to reach the root element will do: the rest is not read.
    """
    try:
        for _, element in etree.iterparse(
            io.BytesIO(data[: 1 << 20]),
            events=("start",),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
        ):
            return _local(element) == "rapport"
    except etree.XMLSyntaxError:
        return False
    return False


def _canonical_uuid(text: str | None) -> str | None:
    try:
        return str(uuid.UUID(text or ""))
    except ValueError:
        return None


async def import_report_mail(services: SyncServices, reports: list[bytes]) -> list[ImportOutcome]:
    """Import the processing reports attached to an email (see attached_reports).

    Nobody signs in to send an email: a report is matched by its idFlux alone, the random
    UUID that Cordée wrote in the deposited file, which only the certifier and the CDC know.
    A file name or a batch reference, easier to guess, is not accepted here.
    """
    return [
        await import_report(services, data, actor="cdc:mail", by_id_flux_only=True)
        for data in reports
    ]
