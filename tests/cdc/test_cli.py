"""`cordee xml validate`: exit codes, French text, JSON shape."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bot.cdc.cli import xml_group
from tests.cdc.conftest import DATA


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(xml_group, ["validate", *args])


def test_valid_file_exits_0_with_a_short_french_line() -> None:
    result = run(str(DATA / "valide-minimal.xml"))
    assert result.exit_code == 0
    assert "est valide (schéma 1.1.2, 1 passage(s))" in result.output


def test_invalid_file_exits_1_and_lists_each_error() -> None:
    result = run(str(DATA / "plusieurs-erreurs.xml"))
    assert result.exit_code == 1
    assert "4 erreur(s)" in result.output
    assert "ligne 142 · passage P-005" in result.output
    assert "[XSD_ENUM] « sexe » vaut « X »" in result.output
    assert "passageCertification[5]/identificationTitulaire/titulaire/sexe" in result.output


@pytest.mark.parametrize(
    "name", ["vide.xml", "pas-du-xml.csv.xml", "dangereux-billion-laughs.xml", "absent.xml"]
)
def test_unreadable_or_unsafe_file_exits_2(name: str) -> None:
    result = run(str(DATA / name))
    assert result.exit_code == 2
    assert result.output.startswith("✘")


def test_json_output_has_the_documented_shape() -> None:
    result = run(str(DATA / "regle-doublon-idtechnique.xml"), "--json")
    assert result.exit_code == 1
    payload = json.loads(result.output)
    assert payload["valid"] is False
    assert payload["schema"] == "1.1.2"
    assert payload["passages"] == 3
    assert payload["errors"] == [
        {
            "line": 77,
            "path": "/flux/emetteur/certificateurs/certificateur/certifications/certification[2]"
            "/passageCertifications/passageCertification[1]/idTechnique",
            "code": "DUPLICATE_ID_TECHNIQUE",
            "message": payload["errors"][0]["message"],
            "id_technique": "P-DOUBLE",
        }
    ]


def test_json_for_a_valid_file() -> None:
    result = run(str(DATA / "valide-1.1.5-nir.xml"), "--schema", "1.1.5", "--json")
    assert result.exit_code == 0
    payload = json.loads(result.output)
    assert payload["valid"] is True
    assert payload["schema"] == "1.1.5-provisoire"
    assert payload["errors"] == []


def test_schema_by_path_and_max_errors() -> None:
    xsd = DATA.parents[2] / "xsd" / "cdc-1.1.2.xsd"
    result = run(str(DATA / "plusieurs-erreurs.xml"), "--schema", str(xsd), "--max-errors", "2")
    assert result.exit_code == 1
    assert "TOO_MANY_ERRORS" in result.output
    assert "Q-003" not in result.output


def test_unknown_schema_exits_2_with_a_message() -> None:
    result = run(str(DATA / "valide-minimal.xml"), "--schema", "0.0.0")
    assert result.exit_code == 2
    assert "schéma « 0.0.0 » inconnu" in result.output
