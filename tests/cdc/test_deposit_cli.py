"""`cordee folders set-result`, `cordee xml build` and `cordee deposit …` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot.cli import cli
from tests.support.cdc_deposit import report_xml
from tests.sync.conftest import write_csv
from tests.sync.test_cli import ROWS, Cordee, ok, setup


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> dict[str, str]:
    return {
        "CORDEE_DATA_DIR": str(tmp_path / "var"),
        "CORDEE_DATABASE_URL": db_url,
        "CORDEE_PUBLIC_URL": "https://cordee.example.fr",
        "CORDEE_SECRET_KEY": "cli-test-secret-" + "k" * 32,
    }


@pytest.fixture
def cordee(env: dict[str, str]) -> Cordee:
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    return run


def test_result_build_deposit_report_and_status(
    cordee: Cordee, env: dict[str, str], tmp_path: Path
) -> None:
    setup(cordee, env)
    ok(
        cordee(
            "sync", "import", str(write_csv(tmp_path, ROWS)), "--partner", "1", "--certifier", "1"
        )
    )
    for state in ("registered", "toTake", "toControl"):
        ok(cordee("folders", "set-state", "F-001", state, "--certifier", "1"))
        ok(cordee("folders", "set-state", "F-002", state, "--certifier", "1"))

    refused = cordee("folders", "set-result", "F-001", "--certifier", "1", "--birth-insee", "315")
    assert refused.exit_code == 2
    assert "code INSEE de la commune de naissance invalide" in refused.stderr
    done = ok(
        cordee(
            "folders",
            "set-result",
            "F-001",
            "--certifier",
            "1",
            "--issued-on",
            "2026-11-20",
            "--birth-date",
            "17/04/1990",
            "--sex",
            "F",
            "--birth-insee",
            "31555",
        )
    )
    assert "résultat enregistré pour le dépôt CDC (réussi)" in done.output
    ok(cordee("folders", "set-state", "F-002", "success", "--certifier", "1"))

    out = tmp_path / "depots"
    built = cordee("xml", "build", "--certifier", "1", "--out", str(out), "--json")
    assert built.exit_code == 1  # F-002 lacks its issue date: left out, listed
    result = json.loads(built.output)
    (file,) = result["files"]
    assert file["passages"] == 1
    assert [left["folder_number"] for left in result["left_out"]] == ["F-002"]
    assert "date de délivrance manquante" in result["left_out"][0]["reason"]
    ok(cordee("xml", "validate", file["path"]))

    status = json.loads(ok(cordee("deposit", "status", "--certifier", "1", "--json")).output)
    (mine,) = status
    assert mine["passages"] == {"pending": 1, "exported": 1, "ok": 0, "ko": 0}
    assert mine["incomplete"] == 1
    assert mine["batches"][0]["state"] == "generated"
    assert mine["batches"][0]["id_flux"] == file["id_flux"]
    other = json.loads(ok(cordee("deposit", "status", "--certifier", "2", "--json")).output)
    assert other[0]["batches"] == []  # another certifier sees nothing of it

    wrong = cordee("deposit", "mark-deposited", file["reference"], "--certifier", "2")
    assert wrong.exit_code == 1
    assert "introuvable pour ce certificateur" in wrong.stderr
    ok(cordee("deposit", "mark-deposited", file["reference"], "--certifier", "1"))

    unsafe = tmp_path / "evil.xml"
    unsafe.write_bytes(
        b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><rapport>&x;</rapport>'
    )
    refused_report = cordee("deposit", "report", str(unsafe))
    assert refused_report.exit_code == 2
    assert "DOCTYPE" in refused_report.stderr

    report = tmp_path / "Accusé de traitement.xml"
    (reference,) = [
        line.split()[0]
        for line in ok(cordee("folders", "list", "--certifier", "1")).output.splitlines()
        if "F-001" in line
    ]
    report.write_bytes(report_xml(file["id_flux"], ok=[reference, "DC-INCONNU"]))
    imported = cordee("deposit", "report", str(report))
    assert imported.exit_code == 1  # an unknown identifier is reported, not applied
    assert "1 accepté(s), 0 refusé(s)" in imported.output
    assert "DC-INCONNU" in imported.output
    status = json.loads(ok(cordee("deposit", "status", "--json")).output)
    assert status[0]["passages"]["ok"] == 1
    assert status[0]["batches"][0]["state"] == "processed_ok"
