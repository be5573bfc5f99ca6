"""The CDC processing-report parser on the variants seen in the wild, and unsafe input."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.cdc.report import ReportUnreadable, is_duplicate, parse_report, xml_attachments
from tests.support.cdc_deposit import report_xml

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "cdc"


def test_the_reconstructed_reference_report_is_read() -> None:
    path = REFERENCE / "accuse-traitement-RECONSTRUCTED-example.xml"
    if not path.exists():
        pytest.skip("../shared/reference is not here")
    parsed = parse_report(path.read_bytes())
    assert parsed.id_flux == "lnf00000-0000-0000-0000-000000000008"
    assert parsed.file_name == "lnf00000-0000-0000-0000-000000000008.xml"
    assert parsed.id_traitement == "51354"
    assert parsed.ok == ("202006-2094", "LNF_Accrochage_21")
    assert [line.id_technique for line in parsed.ko] == ["202006-2510", "202104-10523"]
    assert parsed.ko[1].message == "Plusieurs titulaires ont été identifiés"


def test_element_names_match_whatever_their_case_and_prefix() -> None:
    data = (
        b'<?xml version="1.0"?><ns2:RAPPORT xmlns:ns2="urn:cdc:cpf:pc5:rapport:schema">'
        b"<ns2:NomFichier>f.xml</ns2:NomFichier><IDFLUX>abc</IDFLUX><idtraitement>7</idtraitement>"
        b"<passagesKO><Passage><IdTechnique>K1</IdTechnique><MessageErreur>non</MessageErreur>"
        b"<codeErreur>E12</codeErreur></Passage></passagesKO>"
        b"<passagesOk><IDTECHNIQUE>O1</IDTECHNIQUE></passagesOk></ns2:RAPPORT>"
    )
    parsed = parse_report(data)
    assert (parsed.file_name, parsed.id_flux, parsed.id_traitement) == ("f.xml", "abc", "7")
    assert parsed.ok == ("O1",)
    assert [(line.id_technique, line.message) for line in parsed.ko] == [("K1", "E12 : non")]


def test_a_single_passage_is_still_a_list_and_empty_sections_are_empty() -> None:
    one = parse_report(report_xml("f", ko=[("K1", "Aucun titulaire")]))
    assert [line.id_technique for line in one.ko] == ["K1"]
    assert one.ok == ()
    only_ok = parse_report(report_xml("f", ok=["O1"]))
    assert (only_ok.ok, only_ok.ko) == (("O1",), ())


def test_the_duplicate_message_counts_as_accepted() -> None:
    assert is_duplicate("Le passage de certification 202006-2510 existe déjà en base")
    assert is_duplicate("EXISTE DEJA EN BASE")
    assert not is_duplicate("Aucun titulaire ne correspond aux critères obligatoires")


def test_windows_1252_is_read_declared_or_not() -> None:
    declared = report_xml(
        "f", ko=[("K1", "critères enrichis de réconciliation")], encoding="windows-1252"
    )
    assert "é".encode("cp1252") in declared
    assert parse_report(declared).ko[0].message == "critères enrichis de réconciliation"
    # Claimed UTF-8 (or nothing) but written in Windows-1252, as some tools do.
    wrong = declared.replace(b'encoding="windows-1252"', b'encoding="UTF-8"')
    assert parse_report(wrong).ko[0].message == "critères enrichis de réconciliation"
    bare = b"<rapport><idFlux>f</idFlux><PassagesKO><passage><idTechnique>K</idTechnique>"
    bare += "<messageErreur>Plusieurs titulaires ont été identifiés</messageErreur>".encode(
        "cp1252"
    )
    bare += b"</passage></PassagesKO></rapport>"
    assert parse_report(bare).ko[0].message == "Plusieurs titulaires ont été identifiés"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            b"<rapport><idFlux>&b;</idFlux></rapport>",
            "DOCTYPE",
        ),
        (
            b'<!DOCTYPE rapport SYSTEM "http://example.org/evil.dtd"><rapport/>',
            "DOCTYPE",
        ),
        (b"", "vide"),
        (b"not xml at all", "XML lisible"),
        (b"<rapport><idFlux>f</idFlux>", "XML lisible"),
        (b'<flux xmlns="urn:cdc:cpf:pc5:schema:1.0.0"/>', "« flux »"),
    ],
)
def test_unsafe_or_foreign_files_are_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(ReportUnreadable, match=message):
        parse_report(data)


def test_reports_attached_to_an_email_are_found() -> None:
    mail = EmailMessage()
    mail["From"] = "staff@certif.example"
    mail["Subject"] = "Accusé de traitement"
    mail.set_content("Voici le rapport.")
    report = report_xml("abc", ok=["O1"])
    mail.add_attachment(
        report,
        maintype="application",
        subtype="xml",
        filename="Accusé de traitement_f.xml_20260101.xml",
    )
    mail.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="guide.pdf")
    assert xml_attachments(mail.as_bytes()) == [("Accusé de traitement_f.xml_20260101.xml", report)]
