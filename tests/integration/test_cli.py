"""The `cordee` command line end to end: setup, sending, listing, errors and exit codes."""

from __future__ import annotations

import email
import json
import os
import subprocess
import sys
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot.cli import cli
from bot.fsm import mermaid
from tests.support.builders import CERTIFIER_SIRET, ORGANISATION_SIRET
from workflows.access_request import WORKFLOW

ROOT = Path(__file__).resolve().parents[2]
Cordee = Callable[..., Result]


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> dict[str, str]:
    return {
        "CORDEE_DATA_DIR": str(tmp_path / "var"),
        "CORDEE_DATABASE_URL": db_url,
        "CORDEE_PUBLIC_URL": "https://cordee.example.fr",
    }


@pytest.fixture
def cordee(env: dict[str, str]) -> Cordee:
    runner = CliRunner()

    def run(*args: str, extra: dict[str, str] | None = None) -> Result:
        return runner.invoke(cli, list(args), env={**env, **(extra or {})}, catch_exceptions=False)

    return run


def setup_partner(cordee: Cordee) -> None:
    steps = [
        ("db", "upgrade"),
        (
            "certifier",
            "add",
            "Certif & Co",
            "--siret",
            CERTIFIER_SIRET,
            "--matricule",
            "12ABC345",
            "--contract",
            "MCFCER000123",
        ),
        (
            "certification",
            "add",
            "RNCP34567",
            "--title",
            "Développeur web",
            "--certifier",
            CERTIFIER_SIRET,
        ),
        (
            "organisation",
            "add",
            "Formations Sud",
            "--siret",
            ORGANISATION_SIRET,
            "--contact-email",
            "claire@formations-sud.example",
            "--contact-name",
            "Claire Martin",
        ),
        (
            "partnership",
            "add",
            "--certifier",
            "1",
            "--partner",
            ORGANISATION_SIRET,
            "--certification",
            "RNCP34567",
        ),
    ]
    for step in steps:
        result = cordee(*step)
        assert result.exit_code == 0, (step, result.output, result.stderr)


def outbox(env: dict[str, str]) -> list[EmailMessage]:
    folder = Path(env["CORDEE_DATA_DIR"]) / "outbox" / "new"
    return [
        email.message_from_bytes(p.read_bytes(), _class=EmailMessage, policy=policy.default)
        for p in sorted(folder.glob("*.eml"))
    ]


def test_a_request_from_setup_to_the_outbox(cordee: Cordee, env: dict[str, str]) -> None:
    setup_partner(cordee)
    sent = cordee(
        "access-request", "send", "--certifier", CERTIFIER_SIRET, "--partner", "1", "--json"
    )
    assert sent.exit_code == 0, sent.stderr
    # The console channel prints the staff notification before the JSON summary.
    payload = json.loads(sent.output[sent.output.index("{\n") :])
    reference = payload["reference"]
    assert payload["state"] == "pending"
    [message] = outbox(env)
    assert message["To"] == "claire@formations-sud.example"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"]
    assert message.is_multipart()
    assert {part.get_content_type() for part in message.walk()} >= {"text/plain", "text/html"}
    plain = message.get_body(("plain",))
    assert plain is not None
    body = plain.get_content()
    assert "https://cordee.example.fr/lien/" in body

    listed = cordee("access-request", "list", "--json")
    assert [row["reference"] for row in json.loads(listed.output)] == [reference]
    shown = cordee("access-request", "show", reference, "--json")
    assert [entry["event"] for entry in json.loads(shown.output)["history"]] == ["start"]
    human = cordee("access-request", "show", reference)
    assert "en attente de réponse" in human.output
    assert "Prochaine échéance : relance le " in human.output
    raw = next((Path(env["CORDEE_DATA_DIR"]) / "outbox" / "new").glob("*.eml")).read_text()
    assert (
        "https://cordee.example.fr/lien/"
        + body.split("https://cordee.example.fr/lien/")[1].split()[0]
        in raw
    )
    by_id = cordee("access-request", "show", str(payload["id"]), "--json")
    assert json.loads(by_id.output)["reference"] == reference
    missing = cordee("access-request", "show", "DA-NOPE")
    assert missing.exit_code == 1
    assert "introuvable" in missing.stderr

    again = cordee("access-request", "send", "--certifier", "1", "--partner", "1")
    assert again.exit_code == 1
    assert "aucun nouveau courriel" in again.stderr
    assert len(outbox(env)) == 1

    cancelled = cordee("access-request", "cancel", reference)
    assert cancelled.exit_code == 0
    assert len(outbox(env)) == 2
    twice = cordee("access-request", "cancel", reference)
    assert twice.exit_code == 1
    assert "ne peut plus être annulée" in twice.stderr


def test_invalid_input_is_refused_with_exit_2_and_nothing_written(cordee: Cordee) -> None:
    assert cordee("db", "upgrade").exit_code == 0
    bad = cordee(
        "certifier",
        "add",
        "X",
        "--siret",
        "73282932000075",
        "--matricule",
        "12ABC345",
        "--contract",
        "C1",
    )
    assert bad.exit_code == 2
    assert "clé de contrôle" in bad.stderr
    assert json.loads(cordee("certifier", "list", "--json").output) == []
    unknown = cordee("access-request", "send", "--certifier", "42", "--partner", "1")
    assert unknown.exit_code == 1
    assert "Certificateur « 42 » introuvable" in unknown.stderr


def test_a_partner_without_contact_gets_no_request(cordee: Cordee) -> None:
    assert cordee("db", "upgrade").exit_code == 0
    cordee(
        "certifier",
        "add",
        "C",
        "--siret",
        CERTIFIER_SIRET,
        "--matricule",
        "12ABC345",
        "--contract",
        "C1",
    )
    cordee("certification", "add", "RS5875", "--title", "Agile", "--certifier", "1")
    cordee("organisation", "add", "O", "--siret", ORGANISATION_SIRET)
    cordee("partnership", "add", "--certifier", "1", "--partner", "1", "--certification", "RS5875")
    result = cordee("access-request", "send", "--certifier", "1", "--partner", "1")
    assert result.exit_code == 2
    assert "aucun contact joignable" in result.stderr
    assert json.loads(cordee("access-request", "list", "--json").output) == []


def test_malformed_configuration_stops_with_one_line(cordee: Cordee) -> None:
    result = cordee("access-request", "list", extra={"CORDEE_EXPIRY": "x", "CORDEE_PORT": "http"})
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "CORDEE_PORT" in result.stderr


def test_an_unmigrated_database_is_named(cordee: Cordee) -> None:
    result = cordee("access-request", "list")
    assert result.exit_code == 2
    assert "cordee db upgrade" in result.stderr


def test_config_show_masks_secrets(cordee: Cordee) -> None:
    result = cordee("config", "show", extra={"CORDEE_SECRET_KEY": "k" * 40})
    assert result.exit_code == 0
    assert "CORDEE_SECRET_KEY" in result.output
    assert "k" * 40 not in result.output


def test_workflow_diagram_matches_the_committed_file(cordee: Cordee) -> None:
    assert cordee("workflows", "list", "--names").output.split() == [
        "access_request",
        "cdc_batch",
        "cdc_deposit",
        "certification_folder",
        "partner_sync",
        "trainer_invitation",
    ]
    diagram = cordee("workflows", "show", "access_request", "--mermaid")
    assert diagram.output == mermaid(WORKFLOW)
    assert diagram.output == (ROOT / "workflows" / "access_request.mmd").read_text(encoding="utf-8")
    assert cordee("workflows", "show", "nope").exit_code == 2


def test_python_dash_m_bot_runs_the_same_cli(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0
    assert "access-request" in result.stdout


def test_an_unreachable_database_is_one_clear_line(cordee: Cordee) -> None:
    result = cordee(
        "access-request",
        "list",
        extra={"CORDEE_DATABASE_URL": "postgresql+psycopg://u:hunter2@127.0.0.1:1/x"},
    )
    assert result.exit_code == 2
    assert "base de données injoignable" in result.stderr
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_busy_port_is_one_clear_line(cordee: Cordee, tmp_path: Path) -> None:
    import socket

    assert cordee("db", "upgrade").exit_code == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = cordee("serve", "--port", port)
    assert result.exit_code == 2
    assert f"impossible d'écouter sur 127.0.0.1:{port}" in result.stderr


def test_a_reply_dropped_in_the_inbox_is_applied(cordee: Cordee, env: dict[str, str]) -> None:
    setup_partner(cordee)
    sent = cordee("access-request", "send", "--certifier", "1", "--partner", "1", "--json")
    reference = json.loads(sent.output[sent.output.index("{\n") :])["reference"]
    [request] = outbox(env)
    answer = EmailMessage()
    answer["From"] = str(request["To"])
    answer["To"] = str(request["From"])
    answer["Subject"] = "RE: " + str(request["Subject"])
    answer["In-Reply-To"] = str(request["Message-ID"])
    answer["Message-ID"] = "<answer-1@formations-sud.example>"
    answer.set_content("Bon pour accord.\n\nClaire Martin\n")
    inbox = Path(env["CORDEE_DATA_DIR"]) / "inbox" / "new"
    (inbox / "1.answer.eml").write_bytes(bytes(answer))

    fetched = cordee("mail", "fetch")
    assert fetched.exit_code == 0, fetched.stderr
    assert "1 message(s) traité(s)" in fetched.output
    shown = json.loads(cordee("access-request", "show", reference, "--json").output)
    assert shown["state"] == "authorised"
    assert shown["history"][-1]["actor"] == "partner_contact:mail"
    assert len(outbox(env)) == 2  # the confirmation with its « gérer le partage » link
    assert cordee("mail", "fetch").output.startswith("0 message")
