"""validate_file on the corpus: outcomes, codes, lines, paths and idTechnique a user relies on."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cdc import Code, Outcome, validate_file
from bot.cdc import validate as validate_module
from bot.errors import ConfigError
from tests.cdc.conftest import DATA, NOW
from tests.support import cdc_factory as factory

CERTS = "/flux/emetteur/certificateurs/certificateur/certifications"
P1 = f"{CERTS}/certification[1]/passageCertifications/passageCertification[1]"


def check(name: str, schema: str = "1.1.2", **kwargs: object):  # type: ignore[no-untyped-def]
    return validate_file(DATA / name, schema, now=NOW, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "schema"),
    [
        ("valide-minimal.xml", "1.1.2"),
        ("valide-complet.xml", "1.1.2"),
        ("valide-fins-de-ligne-windows.xml", "1.1.2"),
        ("valide-1.1.5-nir.xml", "1.1.5"),
        ("valide-1.1.5-suppression.xml", "1.1.5"),
    ],
)
def test_valid_files_have_no_error(name: str, schema: str) -> None:
    report = check(name, schema)
    assert report.outcome is Outcome.VALID, report.errors
    assert report.valid
    assert report.errors == ()
    assert report.exit_code == 0


def test_passages_are_counted() -> None:
    assert check("valide-complet.xml").passages == 3
    assert check("plusieurs-erreurs.xml").passages == 44


# (file, schema, code, line, path, idTechnique): one file per kind of problem.
SINGLE_ERROR = [
    ("xsd-enum-sexe.xml", "1.1.2", Code.XSD_ENUM, 38,
     f"{P1}/identificationTitulaire/titulaire/sexe", "P-ENUM"),
    ("xsd-enum-langue-minuscules.xml", "1.1.2", Code.XSD_ENUM, 27,
     f"{P1}/niveauLangueEuropeen", "P-ENUM-2"),
    ("xsd-length-nom.xml", "1.1.2", Code.XSD_LENGTH, 32,
     f"{P1}/identificationTitulaire/titulaire/nomNaissance", "P-LONG"),
    ("xsd-length-dossier.xml", "1.1.2", Code.XSD_LENGTH, 32,
     f"{P1}/identificationTitulaire/dossierFormation/idDossier", "P-EDOF"),
    ("xsd-length-vide.xml", "1.1.2", Code.XSD_LENGTH, 27, f"{P1}/libelleOption", "P-VIDE"),
    ("xsd-length-matricule.xml", "1.1.2", Code.XSD_LENGTH, 6, "/flux/emetteur/idClient", None),
    ("xsd-pattern-date-annee.xml", "1.1.2", Code.XSD_PATTERN, 21,
     f"{P1}/dateDebutValidite", "P-1850"),
    ("xsd-type-date-impossible.xml", "1.1.2", Code.XSD_TYPE, 21,
     f"{P1}/dateDebutValidite", "P-3002"),
    ("xsd-type-booleen.xml", "1.1.2", Code.XSD_TYPE, 20, f"{P1}/donneeCertifiee", "P-BOOL"),
    ("xsd-range-mois.xml", "1.1.2", Code.XSD_RANGE, 36,
     f"{P1}/identificationTitulaire/titulaire/moisNaissance", "P-MOIS"),
    ("xsd-missing-obtention.xml", "1.1.2", Code.XSD_MISSING, 17, P1, "P-MANQUE"),
    ("xsd-missing-identification.xml", "1.1.2", Code.XSD_MISSING, 30,
     f"{P1}/identificationTitulaire", "P-SANS-ID"),
    ("xsd-unexpected-element.xml", "1.1.2", Code.XSD_UNEXPECTED, 42,
     f"{P1}/commentaire", "P-INCONNU"),
    ("xsd-unexpected-deux-voies.xml", "1.1.2", Code.XSD_UNEXPECTED, 41,
     f"{P1}/identificationTitulaire/dossierFormation", "P-DEUX-VOIES"),
    ("xsd-nil-interdit.xml", "1.1.2", Code.XSD_NIL, 21, f"{P1}/dateDebutValidite", "P-NIL"),
    ("xsd-root-namespace.xml", "1.1.2", Code.XSD_ROOT, 2, "/flux", None),
    ("xsd-1.1.2-action.xml", "1.1.2", Code.XSD_UNEXPECTED, 5, "/flux/action", None),
    ("xsd-pattern-horodatage-z.xml", "1.1.2", Code.HORODATAGE_OFFSET, 4, "/flux/horodatage", None),
    ("xsd-pattern-horodatage-sans-fuseau.xml", "1.1.2", Code.HORODATAGE_OFFSET, 4,
     "/flux/horodatage", None),
    ("regle-horodatage-futur.xml", "1.1.2", Code.HORODATAGE_FUTURE, 4, "/flux/horodatage", None),
    ("regle-doublon-idtechnique.xml", "1.1.2", Code.DUPLICATE_ID_TECHNIQUE, 77,
     f"{CERTS}/certification[2]/passageCertifications/passageCertification[1]/idTechnique",
     "P-DOUBLE"),
    ("regle-dates-validite.xml", "1.1.2", Code.DATE_VALIDITE_ORDER, 22,
     f"{P1}/dateFinValidite", "P-VALIDITE"),
    ("regle-dates-examen.xml", "1.1.2", Code.DATE_EXAMEN_ORDER, 28,
     f"{P1}/dateFinExamen", "P-EXAMEN"),
    ("regle-langue-absente.xml", "1.1.2", Code.LANGUE_NIVEAU_MISSING, 23,
     f"{P1}/presenceNiveauLangueEuro", "P-LANGUE"),
    ("regle-numerique-absent.xml", "1.1.2", Code.NUMERIQUE_NIVEAU_MISSING, 24,
     f"{P1}/presenceNiveauNumeriqueEuro", "P-NUMERIQUE"),
    ("regle-scoring-nil.xml", "1.1.2", Code.SCORING_MISSING, 25, f"{P1}/scoring", "P-SCORING"),
    ("regle-date-naissance.xml", "1.1.2", Code.BIRTH_DATE_INVALID, 37,
     f"{P1}/identificationTitulaire/titulaire/jourNaissance", "P-NAISSANCE"),
    ("regle-nir-1.1.5.xml", "1.1.5", Code.NIR_INVALID, 33,
     f"{P1}/identificationTitulaire/identifiantNational/nir", "P-NIR-FAUX"),
    ("regle-deux-certificateurs.xml", "1.1.2", Code.MULTIPLE_CERTIFICATEURS, 47,
     "/flux/emetteur/certificateurs/certificateur[2]", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "schema", "code", "line", "path", "id_technique"),
    SINGLE_ERROR,
    ids=[case[0] for case in SINGLE_ERROR],
)
def test_each_problem_is_reported_once_and_located(
    name: str, schema: str, code: Code, line: int, path: str, id_technique: str | None
) -> None:
    report = check(name, schema)
    assert report.outcome is Outcome.INVALID
    assert report.exit_code == 1
    assert [(e.code, e.line, e.path, e.id_technique) for e in report.errors] == [
        (code, line, path, id_technique)
    ]
    message = report.errors[0].message
    assert message.endswith(".")
    assert "Element '" not in message  # libxml2's English text is translated


def test_all_errors_of_a_file_are_reported_in_order() -> None:
    report = check("plusieurs-erreurs.xml")
    found = [(e.code, e.line, e.id_technique) for e in report.errors]
    assert found == [
        (Code.XSD_ENUM, 142, "P-005"),
        (Code.DATE_VALIDITE_ORDER, 256, "P-010"),
        (Code.XSD_TYPE, 514, "P-020"),
        (Code.XSD_ENUM, 1111, "Q-003"),
    ]
    assert report.errors[-1].path == (
        f"{CERTS}/certification[2]/passageCertifications/passageCertification[3]"
        "/identificationTitulaire/titulaire/sexe"
    )


def test_messages_are_french_and_say_what_to_do() -> None:
    sexe = check("xsd-enum-sexe.xml").errors[0].message
    assert "« sexe » vaut « H »" in sexe
    assert "M, F" in sexe
    missing = check("xsd-missing-obtention.xml").errors[0].message
    # libxml2 lists every child still possible; only the mandatory one is named.
    assert "« obtentionCertification »" in missing
    assert "urlPreuve" not in missing
    duplicate = check("regle-doublon-idtechnique.xml").errors[0].message
    assert "passage n° 1 de la certification n° 1" in duplicate


def test_the_rule_message_replaces_the_xsd_echo_for_the_same_element() -> None:
    # The NIR breaks both the 1.1.5 XSD pattern and the rule: one error, the clearer one.
    codes = [e.code for e in check("regle-nir-1.1.5.xml", "1.1.5").errors]
    assert codes == [Code.NIR_INVALID]


def test_schema_1_1_5_requires_action_and_knows_nir() -> None:
    assert check("valide-minimal.xml", "1.1.5").errors[0].code is Code.XSD_MISSING
    assert check("valide-1.1.5-nir.xml", "1.1.2").outcome is Outcome.INVALID


def test_any_xsd_file_can_be_given_by_path(tmp_path: Path) -> None:
    schema = tmp_path / "mon-schema.xsd"
    schema.write_bytes((Path(__file__).resolve().parents[2] / "xsd/cdc-1.1.2.xsd").read_bytes())
    report = validate_file(DATA / "xsd-enum-sexe.xml", str(schema), now=NOW)
    assert report.schema == str(schema)
    assert report.errors[0].code is Code.XSD_ENUM


def test_unknown_schema_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="inconnu"):
        validate_file(DATA / "valide-minimal.xml", "9.9.9")


@pytest.mark.parametrize(
    ("name", "outcome", "code", "line"),
    [
        ("vide.xml", Outcome.NOT_XML, Code.EMPTY_FILE, None),
        ("pas-du-xml.csv.xml", Outcome.NOT_XML, Code.NOT_XML, 1),
        ("tronque.xml", Outcome.NOT_XML, Code.NOT_XML, 24),
        ("dangereux-billion-laughs.xml", Outcome.UNSAFE, Code.UNSAFE_XML, 2),
        ("dangereux-entite-externe.xml", Outcome.UNSAFE, Code.UNSAFE_XML, 2),
        ("dangereux-dtd-externe.xml", Outcome.UNSAFE, Code.UNSAFE_XML, 3),
    ],
)
def test_unreadable_and_unsafe_files_are_refused(
    name: str, outcome: Outcome, code: Code, line: int | None
) -> None:
    report = check(name)
    assert report.outcome is outcome
    assert report.exit_code == 2
    assert [(e.code, e.line) for e in report.errors] == [(code, line)]


def test_missing_file_and_directory_are_unreadable(tmp_path: Path) -> None:
    for target in (tmp_path / "absent.xml", tmp_path):
        report = validate_file(target, now=NOW)
        assert report.outcome is Outcome.UNREADABLE
        assert report.errors[0].code is Code.UNREADABLE
        assert report.exit_code == 2


def test_max_errors_stops_early_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "erreurs.xml"
    factory.write_big_flux(path, 200, error_every=2)
    report = validate_file(path, max_errors=10, now=NOW)
    assert report.truncated
    assert [e.code for e in report.errors] == [Code.XSD_ENUM] * 10 + [Code.TOO_MANY_ERRORS]
    everything = validate_file(path, now=NOW)
    assert not everything.truncated
    assert len(everything.errors) == 100


def test_limits_on_passages_and_size_suggest_splitting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "gros.xml"
    factory.write_big_flux(path, 30)
    monkeypatch.setattr(validate_module, "MAX_PASSAGES", 25)
    monkeypatch.setattr(validate_module, "MAX_FILE_BYTES", 1000)
    report = validate_file(path, now=NOW)
    codes = {e.code: e for e in report.errors}
    assert set(codes) == {Code.TOO_MANY_PASSAGES, Code.FILE_TOO_LARGE}
    assert codes[Code.TOO_MANY_PASSAGES].id_technique == "PASSAGE-00000026"
    assert "plusieurs fichiers" in codes[Code.TOO_MANY_PASSAGES].message
    assert "plusieurs fichiers" in codes[Code.FILE_TOO_LARGE].message


def test_streaming_keeps_paths_and_ids_exact_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tiny chunks and margin: passages are checked and dropped many times during the read.
    monkeypatch.setattr(validate_module, "CHUNK", 4096)
    monkeypatch.setattr(validate_module, "XSD_MARGIN", 8192)
    path = tmp_path / "flux.xml"
    factory.write_big_flux(path, 3000, error_every=997, per_certification=1000)
    seen: list[int] = []
    report = validate_file(path, now=NOW, progress=lambda done, total: seen.append(done))
    assert report.passages == 3000
    assert seen[-1] == path.stat().st_size
    assert [(e.id_technique, e.path.rsplit("/passageCertifications/", 1)[-1]) for e in
            report.errors] == [
        ("PASSAGE-00000997", "passageCertification[997]/identificationTitulaire/titulaire/sexe"),
        ("PASSAGE-00001994", "passageCertification[994]/identificationTitulaire/titulaire/sexe"),
        ("PASSAGE-00002991", "passageCertification[991]/identificationTitulaire/titulaire/sexe"),
    ]  # fmt: skip
    assert "/certification[3]/" in report.errors[-1].path
    lines = path.read_text().splitlines()
    for error in report.errors:
        assert error.line is not None
        assert "<cpf:sexe>X</cpf:sexe>" in lines[error.line - 1]


def test_a_file_on_one_line_is_still_fully_checked(tmp_path: Path) -> None:
    text = factory.flux(
        [
            factory.certification(
                [
                    factory.passage("A"),
                    factory.passage("B", titulaire_xml=factory.titulaire(sexe="X")),
                    factory.passage("C", dateFinValidite="2000-01-01"),
                ]
            )
        ]
    )
    path = tmp_path / "une-ligne.xml"
    path.write_text("".join(line.strip() for line in text.splitlines()))
    report = validate_file(path, now=NOW)
    # Everything is on line 1: errors are found, their order on that line is not specified.
    assert sorted((e.id_technique, e.code, e.line) for e in report.errors) == [
        ("B", Code.XSD_ENUM, 1),
        ("C", Code.DATE_VALIDITE_ORDER, 1),
    ]
    assert report.errors[0].path.endswith("]/dateFinValidite")


def test_batch_shortcut_never_hides_a_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the whole-batch shortcut disabled (every passage examined), nothing changes."""
    from bot.cdc import rules

    names = sorted(p.name for p in DATA.glob("*.xml"))
    normal = {n: check(n, "1.1.5" if "1.1.5" in n else "1.1.2").errors for n in names}
    monkeypatch.setattr(rules, "_batch_is_plain", lambda container: False)
    for name in names:
        assert check(name, "1.1.5" if "1.1.5" in name else "1.1.2").errors == normal[name], name


@pytest.mark.parametrize("max_errors", [None, 3])
def test_big_file_engine_in_a_child_process_gives_the_same_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_errors: int | None
) -> None:
    path = tmp_path / "flux.xml"
    factory.write_big_flux(path, 400, error_every=50, per_certification=150)
    in_thread = validate_file(path, max_errors=max_errors, now=NOW)
    monkeypatch.setattr(validate_module, "PROCESS_FROM_BYTES", 0)
    in_process = validate_file(path, max_errors=max_errors, now=NOW)
    assert in_process == in_thread
    assert len(in_thread.errors) == (8 if max_errors is None else 4)
