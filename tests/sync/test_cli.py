"""`cordee sync …` and `cordee folders …` end to end: exit codes, summaries, tenant scoping."""

from __future__ import annotations

import asyncio
import email
import json
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from bot.app import build_app
from bot.cli import cli
from bot.config import load_settings
from bot.store.models import WorkflowInstance
from tests.support.builders import CERTIFIER_SIRET, ORGANISATION_SIRET, OTHER_SIRET
from tests.support.fake_wedof import API_KEY, FakeWedof, fake_wedof_in_thread, record
from tests.sync.conftest import HEADER, write_csv
from workflows.access_request import Event

Cordee = Callable[..., Result]
ROWS = [
    "F-001;Martin;Claire;claire@example.org;;RNCP34567;01/09/2026;30/11/2026;Accepté",
    "F-002;Durand;Luc;;;RNCP34567;01/09/2026;30/11/2026;En formation",
    "F-003;Petit;Zoé;;;RNCP34567;01/09/2026;30/11/2026;Non traité",
]


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

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, list(args), env=env, input=input, catch_exceptions=False)

    return run


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.output, result.stderr)
    return result


def setup(cordee: Cordee, env: dict[str, str], *, authorise: bool = True) -> None:
    """Two certifiers; the first partners with « Formations Sud », which authorised it."""
    ok(cordee("db", "upgrade"))
    for name, siret in (("Certif & Co", CERTIFIER_SIRET), ("Autre Certif", OTHER_SIRET)):
        ok(
            cordee(
                "certifier",
                "add",
                name,
                "--siret",
                siret,
                "--matricule",
                "12ABC345",
                "--contract",
                "MCFCER000123",
            )
        )
    ok(
        cordee(
            "certification", "add", "RNCP34567", "--title", "Développeur web", "--certifier", "1"
        )
    )
    ok(cordee("certification", "add", "RS5875", "--title", "Agile", "--certifier", "2"))
    ok(
        cordee(
            "organisation",
            "add",
            "Formations Sud",
            "--siret",
            ORGANISATION_SIRET,
            "--contact-email",
            "claire@formations-sud.example",
            "--contact-name",
            "Claire Martin",
        )
    )
    ok(
        cordee(
            "partnership",
            "add",
            "--certifier",
            "1",
            "--partner",
            "1",
            "--certification",
            "RNCP34567",
        )
    )
    ok(
        cordee(
            "partnership", "add", "--certifier", "2", "--partner", "1", "--certification", "RS5875"
        )
    )
    ok(cordee("access-request", "send", "--certifier", "1", "--partner", "1"))
    if authorise:
        asyncio.run(_authorise(env))


async def _authorise(env: dict[str, str]) -> None:
    app = build_app(load_settings(env))
    try:
        reference = await app.db.run(
            lambda s: s.scalar(
                select(WorkflowInstance.public_id).where(WorkflowInstance.certifier_id == 1)
            )
        )
        await app.engine.fire(reference, Event.AUTHORISE, actor="partner_contact:web")
    finally:
        await app.close()


def outbox(env: dict[str, str]) -> list[EmailMessage]:
    folder = Path(env["CORDEE_DATA_DIR"]) / "outbox" / "new"
    return [
        email.message_from_bytes(p.read_bytes(), _class=EmailMessage, policy=policy.default)
        for p in sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    ]


def test_import_prints_a_summary_and_exits_1_when_rows_are_rejected(
    cordee: Cordee, env: dict[str, str], tmp_path: Path
) -> None:
    setup(cordee, env)
    rows = [*ROWS, "F-004;Blanc;Anne;;;RNCP34567;31/02/2026;;Accepté"]
    path = write_csv(tmp_path, rows, header=HEADER + ";Prix TTC")
    result = cordee(
        "sync", "import", str(path), "--partner", ORGANISATION_SIRET, "--certifier", "1"
    )
    assert result.exit_code == 1
    assert "Import de export.csv (partenariat n° 1) : lignes rejetées." in result.output
    assert "Colonnes non partagées, ignorées : Prix TTC." in result.output
    assert "Dossiers : 2 créé(s), 0 mis à jour, 0 inchangé(s), 1 ignoré(s)" in result.output
    assert "ligne 5 (dossier F-004) : date de début « 31/02/2026 » invalide" in result.output

    listed = json.loads(ok(cordee("folders", "list", "--certifier", "1", "--json")).output)
    assert sorted(row["folder_number"] for row in listed) == ["F-001", "F-002"]

    again = cordee(
        "sync",
        "import",
        str(write_csv(tmp_path, ROWS)),
        "--partner",
        "1",
        "--certifier",
        "1",
        "--json",
    )
    assert again.exit_code == 0
    summary = json.loads(again.output)
    assert (summary["created"], summary["unchanged"], summary["rejected"]) == (0, 2, 0)


def test_import_refuses_what_is_not_shared_and_unreadable_files(
    cordee: Cordee, env: dict[str, str], tmp_path: Path
) -> None:
    setup(cordee, env, authorise=False)
    path = write_csv(tmp_path, ROWS)
    refused = cordee("sync", "import", str(path), "--partner", "1", "--certifier", "1")
    assert refused.exit_code == 1
    assert "n'est pas autorisé" in refused.stderr
    assert "cordee access-request send" in refused.stderr

    ambiguous = cordee("sync", "import", str(path), "--partner", "1")
    assert ambiguous.exit_code == 2
    assert "précisez lequel avec --certifier" in ambiguous.stderr

    bad = tmp_path / "bad.csv"
    bad.write_text("Nom;Prénom\nMartin;Claire\n", encoding="utf-8")
    missing = cordee("sync", "import", str(bad), "--partner", "1", "--certifier", "1")
    assert missing.exit_code == 1
    assert "« N° du dossier »" in missing.stderr
    assert json.loads(cordee("folders", "list", "--certifier", "1", "--json").output) == []
    assert cordee("sync", "import", "absent.csv", "--partner", "1").exit_code == 2


def test_folders_are_seen_and_changed_only_by_their_certifier(
    cordee: Cordee, env: dict[str, str], tmp_path: Path
) -> None:
    setup(cordee, env)
    ok(
        cordee(
            "sync", "import", str(write_csv(tmp_path, ROWS)), "--partner", "1", "--certifier", "1"
        )
    )

    assert json.loads(ok(cordee("folders", "list", "--certifier", "2", "--json")).output) == []
    other = cordee("folders", "show", "F-001", "--certifier", "2")
    assert other.exit_code == 1
    assert "introuvable pour ce certificateur" in other.stderr
    moved = cordee("folders", "set-state", "F-001", "registered", "--certifier", "2")
    assert moved.exit_code == 1
    statuses = json.loads(ok(cordee("sync", "status", "--certifier", "2", "--json")).output)
    assert [s["partnership_id"] for s in statuses] == [2]
    pause = cordee(
        "sync", "pause", "--partner", "1", "--certifier", "2", "--certification", "RNCP34567"
    )
    assert pause.exit_code == 1
    assert "ne couvre pas RNCP34567" in pause.stderr

    shown = ok(cordee("folders", "show", "F-001", "--certifier", "1"))
    assert "— à enregistrer" in shown.output
    assert "Titulaire : Claire MARTIN" in shown.output
    assert "Session : du 01/09/2026 au 30/11/2026" in shown.output


def test_a_result_is_mailed_to_the_organisation_and_counted_for_the_certifier(
    cordee: Cordee, env: dict[str, str], tmp_path: Path
) -> None:
    setup(cordee, env)
    ok(
        cordee(
            "sync", "import", str(write_csv(tmp_path, ROWS)), "--partner", "1", "--certifier", "1"
        )
    )
    mails = len(outbox(env))

    early = cordee("folders", "set-state", "F-001", "success", "--certifier", "1")
    assert early.exit_code == 1
    assert "il ne peut pas passer à « réussi »" in early.stderr
    assert "états possibles : abandonné, enregistré, refusé" in early.stderr
    assert cordee("folders", "set-state", "F-001", "done", "--certifier", "1").exit_code == 2

    for state in ("registered", "toTake", "toControl"):
        ok(cordee("folders", "set-state", "F-001", state, "--certifier", "1"))
    assert len(outbox(env)) == mails  # steps before the result are not mailed
    passed = ok(cordee("folders", "set-state", "F-001", "success", "--certifier", "1"))
    assert "réussi ; l'organisme en est informé par courriel" in passed.output
    assert "Réussite enregistrée : dossier F-001 (Formations Sud), RNCP34567" in passed.output
    assert "Bilan RNCP34567 à ce jour : 1 réussite(s), 0 échec(s)." in passed.output

    [result] = outbox(env)[mails:]
    assert result["To"] == "claire@formations-sud.example"
    assert str(result["Subject"]) == (
        "Résultat de certification : Claire Martin a réussi RNCP34567"
    )
    body = result.get_body(("plain",))
    assert body is not None
    assert "dossier de formation n° F-002" not in body.get_content()
    assert "(dossier de formation n° F-001) a réussi la certification" in body.get_content()

    for state in ("registered", "toTake", "toControl"):
        ok(cordee("folders", "set-state", "F-002", state, "--certifier", "1"))
    failed = ok(cordee("folders", "set-state", "F-002", "failed", "--certifier", "1"))
    assert "Bilan RNCP34567 à ce jour : 1 réussite(s), 1 échec(s)." in failed.output
    history = json.loads(
        ok(cordee("folders", "show", "F-002", "--certifier", "1", "--json")).output
    )
    assert [entry["event"] for entry in history["history"]] == [
        "start",
        "register",
        "take",
        "control",
        "fail",
    ]
    final = cordee("folders", "set-state", "F-002", "toRetake", "--certifier", "1")
    assert final.exit_code == 1
    assert "c'est un état final" in final.stderr


def test_pause_and_resume_from_the_command_line(
    cordee: Cordee, env: dict[str, str], tmp_path: Path
) -> None:
    setup(cordee, env)
    args = ("--partner", "1", "--certifier", "1", "--certification", "rncp 34567")
    paused = ok(cordee("sync", "pause", *args))
    assert "Partage de RNCP34567 suspendu" in paused.output
    assert cordee("sync", "pause", *args).exit_code == 1
    refused = cordee(
        "sync", "import", str(write_csv(tmp_path, ROWS)), "--partner", "1", "--certifier", "1"
    )
    assert refused.exit_code == 1
    assert "est suspendu (RNCP34567)" in refused.stderr
    status = ok(cordee("sync", "status", "--certifier", "1"))
    assert "RNCP34567:suspendue" in status.output
    assert "Partage suspendu pour RNCP34567" in str(outbox(env)[-1]["Subject"])

    ok(cordee("sync", "resume", *args))
    imported = ok(
        cordee(
            "sync", "import", str(write_csv(tmp_path, ROWS)), "--partner", "1", "--certifier", "1"
        )
    )
    assert "2 créé(s)" in imported.output
    assert "RNCP34567:partagée" in ok(cordee("sync", "status")).output


def test_configure_then_run_against_the_partner_api(cordee: Cordee, env: dict[str, str]) -> None:
    setup(cordee, env)
    nothing = cordee("sync", "run")
    assert nothing.exit_code == 1
    assert "aucune API d'organisme n'est configurée" in nothing.stderr
    fake = FakeWedof(folders=[record(n) for n in range(1, 6)])
    with fake_wedof_in_thread(fake):
        args = ("sync", "configure", "--partner", "1", "--certifier", "1", "--url")
        configured = ok(
            cordee(*args, fake.base_url, "--api-key-stdin", "--interval", "30", input=API_KEY)
        )
        assert "toutes les 30 minutes. La clé est conservée chiffrée." in configured.output
        assert API_KEY not in configured.output
        ran = ok(cordee("sync", "run", "--certifier", "1"))
        assert "Synchronisation (partenariat n° 1) : réussie." in ran.output
        assert "5 créé(s)" in ran.output

        fake.api_key = "renewed"
        failed = cordee("sync", "run", "--partner", "1", "--certifier", "1")
        assert failed.exit_code == 1
        assert "identifiants refusés par l'API de l'organisme (HTTP 401)" in failed.output
        assert "Nouvelle tentative automatique vers" in failed.output
        assert str(outbox(env)[-1]["Subject"]).startswith("Action requise")
        assert API_KEY not in "".join(m.as_string() for m in outbox(env))

    insecure = cordee(*args, "http://partner.example/api", "--api-key-stdin", input="k")
    assert insecure.exit_code == 2
    assert "non chiffrée" in insecure.stderr
    often = cordee(*args, fake.base_url, "--keep-key", "--interval", "1")
    assert often.exit_code == 2
    assert "intervalle invalide (1 min)" in often.stderr
