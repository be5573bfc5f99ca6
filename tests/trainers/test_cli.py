"""`cordee trainer …` end to end: invitations, bulk CSV, listing, invitation text, slot import."""

from __future__ import annotations

import asyncio
import email
import json
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import build_app
from bot.config import load_settings
from bot.render import format_date
from bot.store.db import Database
from bot.store.models import InvitationText, TrainerSlot
from bot.trainer_slots import parse_when
from bot.trainers import INVITATION_PATH, accept
from tests.integration.test_cli import Cordee, cordee, env
from tests.support.builders import ORGANISATION_SIRET

__all__ = ["cordee", "env"]  # the CLI fixtures, shared with the CLI tests


@pytest.fixture
def org(cordee: Cordee) -> str:
    """A migrated database with one training organisation; its number."""
    for step in (
        ("db", "upgrade"),
        (
            "organisation",
            "add",
            "Formations Sud",
            "--siret",
            ORGANISATION_SIRET,
            "--contact-email",
            "claire@formations-sud.example",
        ),
    ):
        result = cordee(*step)
        assert result.exit_code == 0, (step, result.output)
    return "1"


def outbox(env: dict[str, str]) -> list[EmailMessage]:
    folder = Path(env["CORDEE_DATA_DIR"]) / "outbox" / "new"
    return [
        email.message_from_bytes(p.read_bytes(), _class=EmailMessage, policy=policy.default)
        for p in sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    ]


def plain(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def token_in(message: EmailMessage) -> str:
    text = plain(message)
    start = text.index(INVITATION_PATH) + len(INVITATION_PATH)
    return text[start:].split()[0]


def accept_in_app(env: dict[str, str], tmp_path: Path, token: str) -> None:
    """The trainer clicks and accepts, as the web page would, on the CLI's own data."""

    async def run() -> None:
        app = build_app(load_settings(env, config_file=tmp_path / "absent.toml"))
        try:
            await accept(app.engine, token)
        finally:
            await app.close()

    asyncio.run(run())


def listed(cordee: Cordee, org: str) -> list[dict[str, object]]:
    result = cordee("trainer", "list", "--org", org, "--json")
    assert result.exit_code == 0, result.output
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def test_invite_list_resend_and_revoke(cordee: Cordee, env: dict[str, str], org: str) -> None:
    result = cordee(
        "trainer",
        "invite",
        "Anne.Durand@Example.org",
        "--org",
        org,
        "--first-name",
        "Anne",
        "--last-name",
        "Durand",
    )
    assert result.exit_code == 0, result.output
    assert "envoyée à anne.durand@example.org" in result.stdout
    [first] = outbox(env)
    assert first["To"] == "anne.durand@example.org"
    assert "Formations Sud" in first["Subject"]
    assert "https://cordee.example.fr" + INVITATION_PATH in plain(first)

    [row] = listed(cordee, org)
    assert {key: row[key] for key in ("email", "first_name", "last_name", "state")} == {
        "email": "anne.durand@example.org",
        "first_name": "Anne",
        "last_name": "Durand",
        "state": "invited",
    }
    assert set(row) >= {"id", "reference", "since", "has_account", "inviter"}
    text = cordee("trainer", "list", "--org", ORGANISATION_SIRET)
    assert "✉ invité" in text.stdout
    assert "anne.durand@example.org" in text.stdout

    again = cordee("trainer", "invite", "anne.durand@example.org", "--org", org)
    assert again.exit_code == 0
    assert "déjà une invitation en cours" in again.stdout
    assert len(outbox(env)) == 1

    resent = cordee("trainer", "resend", "anne.durand@example.org", "--org", org)
    assert resent.exit_code == 0, resent.output
    assert "le précédent ne fonctionne plus" in resent.stdout
    second = outbox(env)[-1]
    assert token_in(second) != token_in(first)

    revoked = cordee("trainer", "revoke", str(row["id"]), "--org", org)
    assert revoked.exit_code == 0, revoked.output
    assert [r["state"] for r in listed(cordee, org)] == ["revoked"]
    assert "✖ révoqué" in cordee("trainer", "list", "--org", org).stdout

    # Nothing left to re-send, and an unknown trainer is named as such: refused by the data.
    assert cordee("trainer", "resend", "anne.durand@example.org", "--org", org).exit_code == 1
    unknown = cordee("trainer", "revoke", "nobody@example.org", "--org", org)
    assert unknown.exit_code == 1
    assert "introuvable" in unknown.stderr


def test_no_email_an_invalid_one_or_slack_sends_nothing(
    cordee: Cordee, env: dict[str, str], org: str
) -> None:
    missing = cordee("trainer", "invite", "--org", org)
    assert missing.exit_code == 2
    assert "adresse électronique manquante" in missing.stderr
    assert "rien n'a été envoyé" in missing.stderr
    blank = cordee("trainer", "invite", "  ", "--org", org)
    assert blank.exit_code == 2
    assert "manquante" in blank.stderr
    invalid = cordee("trainer", "invite", "pas-une-adresse", "--org", org)
    assert invalid.exit_code == 2
    assert "invalide" in invalid.stderr
    slack = cordee("trainer", "invite", "paul@example.org", "--org", org, "--via", "slack")
    assert slack.exit_code == 2
    assert "Slack n'est pas configuré" in slack.stderr
    assert "invitez par courriel" in slack.stderr
    neither = cordee("trainer", "invite", "paul@example.org")
    assert neither.exit_code == 2
    assert "--org" in neither.stderr
    assert cordee("trainer", "invite", "paul@example.org", "--org", "99").exit_code == 1
    assert outbox(env) == []
    assert listed(cordee, org) == []


def test_an_accepted_trainer_is_offered_a_login_link_not_a_second_invitation(
    cordee: Cordee, env: dict[str, str], org: str, tmp_path: Path
) -> None:
    assert cordee("trainer", "invite", "lea@example.org", "--org", org).exit_code == 0
    [invitation] = outbox(env)
    accept_in_app(env, tmp_path, token_in(invitation))

    again = cordee("trainer", "invite", "LEA@example.org", "--org", org)
    assert again.exit_code == 0, again.output
    assert "déjà accepté" in again.stdout
    assert f"cordee trainer login-link lea@example.org --org {org}" in again.stdout
    # The organisation was told of the acceptance; the trainer got no second invitation.
    assert [m["To"] for m in outbox(env)] == ["lea@example.org", "claire@formations-sud.example"]
    [row] = listed(cordee, org)
    assert (row["state"], row["has_account"]) == ("accepted", True)
    assert "✔ accepté" in cordee("trainer", "list", "--org", org).stdout
    refused = cordee("trainer", "resend", "lea@example.org", "--org", org)
    assert refused.exit_code == 1
    assert "login-link" in refused.stderr

    link = cordee("trainer", "login-link", "lea@example.org", "--org", org)
    assert link.exit_code == 0, link.output
    assert "Lien de connexion envoyé à lea@example.org" in link.stdout
    last = outbox(env)[-1]
    assert last["To"] == "lea@example.org"
    assert "/formateur/connexion/" in plain(last)


def test_no_login_link_for_a_trainer_who_has_not_accepted(
    cordee: Cordee, env: dict[str, str], org: str
) -> None:
    assert cordee("trainer", "invite", "paul@example.org", "--org", org).exit_code == 0
    refused = cordee("trainer", "login-link", "paul@example.org", "--org", org)
    assert refused.exit_code == 1
    assert "n'a pas accepté" in refused.stderr
    assert "cordee trainer resend paul@example.org --org 1" in refused.stderr
    assert len(outbox(env)) == 1


def test_bulk_invitations_from_a_windows_1252_file_report_each_bad_line(
    cordee: Cordee, env: dict[str, str], org: str, tmp_path: Path
) -> None:
    assert cordee("trainer", "invite", "deja@example.org", "--org", org).exit_code == 0
    rows = [
        "E-mail;Prénom;NOM",
        "helene@example.org;Hélène;Lefèvre",
        "pas-une-adresse;Paul;Martin",
        ";Sans;Adresse",
        "",
        "HELENE@example.org;Hélène;Doublon",
        "deja@example.org;Déjà;Invité",
        "marc@example.org;Marc;",
    ]
    planning = tmp_path / "formateurs.csv"
    planning.write_bytes("\r\n".join(rows).encode("cp1252"))

    result = cordee("trainer", "invite", "--csv", str(planning), "--org", org)

    assert result.exit_code == 1, result.output
    assert "ligne 3 : refusée — Adresse électronique invalide" in result.stderr
    assert "ligne 4 : refusée — adresse électronique manquante" in result.stderr
    assert "ligne 6 : refusée — helene@example.org figure déjà ligne 2" in result.stderr
    assert "ligne 7 : deja@example.org — invitation déjà en cours" in result.stdout
    assert "2 invitation(s) envoyée(s), 1 déjà en cours" in result.stdout
    assert "3 ligne(s) refusée(s)" in result.stdout
    assert sorted(m["To"] for m in outbox(env)) == [
        "deja@example.org",
        "helene@example.org",
        "marc@example.org",
    ]
    names = {r["email"]: (r["first_name"], r["last_name"]) for r in listed(cordee, org)}
    assert names["helene@example.org"] == ("Hélène", "Lefèvre")


def test_bulk_invitations_in_utf8_with_bom_commas_and_english_headers(
    cordee: Cordee, env: dict[str, str], org: str, tmp_path: Path
) -> None:
    planning = tmp_path / "trainers.csv"
    planning.write_bytes("\ufeffEmail,First_Name,Last Name\nzoe@example.org,Zoé,Ngô\n".encode())
    result = cordee("trainer", "invite", "--csv", str(planning), "--org", org)
    assert result.exit_code == 0, result.output
    assert [(r["first_name"], r["last_name"]) for r in listed(cordee, org)] == [("Zoé", "Ngô")]
    no_email = tmp_path / "sans-adresse.csv"
    no_email.write_text("prenom;nom\nZoé;Ngô\n", encoding="utf-8")
    refused = cordee("trainer", "invite", "--csv", str(no_email), "--org", org)
    assert refused.exit_code == 2
    assert "colonne(s) manquante(s) : email" in refused.stderr


def test_invitation_text_refused_with_its_position_then_saved_previewed_and_sent(
    cordee: Cordee, env: dict[str, str], org: str, tmp_path: Path, db_url: str
) -> None:
    body = tmp_path / "invitation.txt"
    body.write_text("Bonjour {prenom},\n\nRejoignez-nous : {lien}\nSignée {societe}\n")
    refused = cordee(
        "trainer",
        "template",
        "set",
        "--org",
        org,
        "--subject",
        "Bienvenue",
        "--body-file",
        str(body),
    )
    assert refused.exit_code == 2
    assert "balise inconnue « {societe} » dans le texte, ligne 4, colonne 8" in refused.stderr
    database = Database(db_url)
    try:
        assert database.run_sync(lambda s: list(s.scalars(select(InvitationText.id)))) == []
    finally:
        database.dispose()
    assert "pas de texte propre" in cordee("trainer", "template", "show", "--org", org).stdout

    body.write_text(
        "Bonjour {prenom} {nom},\n\n{organisme} vous attend avant le {date_expiration}.\n"
    )
    saved = cordee(
        "trainer",
        "template",
        "set",
        "--org",
        org,
        "--subject",
        "Bienvenue {prenom} chez {organisme}",
        "--body-file",
        str(body),
    )
    assert saved.exit_code == 0, saved.output
    shown = cordee("trainer", "template", "show", "--org", org).stdout
    assert "Objet : Bienvenue {prenom} chez {organisme}" in shown

    preview = cordee("trainer", "template", "preview", "--org", org)
    assert preview.exit_code == 0, preview.output
    text = preview.stdout
    assert text.startswith("Objet : Bienvenue Camille chez Formations Sud\n")
    assert "Bonjour Camille Martin," in text
    expiry = {format_date(datetime.now(UTC) + timedelta(days=14, seconds=s)) for s in (0, 60)}
    assert any(f"Formations Sud vous attend avant le {day}." in text for day in expiry)
    assert "https://cordee.example.fr" + INVITATION_PATH + "exemple\n" in text
    assert "Message envoyé par Cordée pour le compte de Formations Sud" in text
    assert "{" not in text

    invited = cordee("trainer", "invite", "ines@example.org", "--org", org, "--first-name", "Inès")
    assert invited.exit_code == 0, invited.output
    [mail] = outbox(env)
    assert mail["Subject"] == "Bienvenue Inès chez Formations Sud"
    reset = cordee("trainer", "template", "reset", "--org", org)
    assert reset.exit_code == 0
    assert "texte d'invitation de Cordée" in reset.stdout
    default = cordee("trainer", "template", "preview", "--org", org).stdout
    assert "Objet : Formations Sud vous invite dans son espace formateur" in default


def test_slots_imported_with_bad_lines_reported_and_no_duplicate_on_re_import(
    cordee: Cordee, org: str, tmp_path: Path, db_url: str
) -> None:
    assert cordee("trainer", "invite", "anne@example.org", "--org", org).exit_code == 0
    rows = [
        "Email;Action;Début;Fin;Salle;Participants",
        "anne@example.org;Développeur web;02/03/2027 09:00;02/03/2027 12:30;Salle 4;12",
        "ANNE@example.org;Développeur web;2027-07-05T14:00;2027-07-05T17:00+02:00;;",
        "inconnu@example.org;Développeur web;03/03/2027 09:00;03/03/2027 12:00;A;3",
        "anne@example.org;Développeur web;04/03/2027 12:00;04/03/2027 09:00;A;3",
        "anne@example.org;Développeur web;31/02/2027 09:00;31/02/2027 12:00;A;3",
        "anne@example.org;Développeur web;05/03/2027 09:00;05/03/2027 12:00;A;douze",
    ]
    planning = tmp_path / "planning.csv"
    planning.write_text("\n".join(rows) + "\n", encoding="utf-8")

    first = cordee("trainer", "import-slots", str(planning), "--org", org)

    assert first.exit_code == 1, first.output
    assert "2 ajouté(s), 0 mis à jour, 0 inchangé(s), 4 ligne(s) refusée(s)" in first.stdout
    errors = first.stderr
    assert "ligne 4 : refusée — inconnu@example.org n'est pas un formateur" in errors
    assert "ligne 5 : refusée — la fin doit venir après le début" in errors
    assert "ligne 6 : refusée — début : date « 31/02/2027 09:00 » illisible" in errors
    assert "ligne 7 : refusée — nombre de participants « douze » invalide" in errors

    def slots() -> list[tuple[datetime, datetime, str, int]]:
        database = Database(db_url)
        try:
            return database.run_sync(
                lambda s: [
                    (slot.starts_at, slot.ends_at, slot.room, slot.participants)
                    for slot in s.scalars(select(TrainerSlot).order_by(TrainerSlot.starts_at))
                ]
            )
        finally:
            database.dispose()

    # Paris is UTC+1 in March and UTC+2 in July: stored in UTC.
    assert slots() == [
        (
            datetime(2027, 3, 2, 8, 0, tzinfo=UTC),
            datetime(2027, 3, 2, 11, 30, tzinfo=UTC),
            "Salle 4",
            12,
        ),
        (datetime(2027, 7, 5, 12, 0, tzinfo=UTC), datetime(2027, 7, 5, 15, 0, tzinfo=UTC), "", 0),
    ]

    again = cordee("trainer", "import-slots", str(planning), "--org", org)
    assert "0 ajouté(s), 0 mis à jour, 2 inchangé(s)" in again.stdout
    planning.write_text("\n".join([rows[0], rows[1].replace("Salle 4", "Salle 9")]) + "\n")
    moved = cordee("trainer", "import-slots", str(planning), "--org", org)
    assert moved.exit_code == 0, moved.output
    assert "0 ajouté(s), 1 mis à jour, 0 inchangé(s), 0 ligne(s) refusée(s)" in moved.stdout
    assert [room for _, _, room, _ in slots()] == ["Salle 9", ""]

    planning.write_text("email;action\nanne@example.org;Développeur web\n")
    missing = cordee("trainer", "import-slots", str(planning), "--org", org)
    assert missing.exit_code == 2
    assert "colonne(s) manquante(s)" in missing.stderr


def test_dates_in_paris_time_iso_offsets_and_the_skipped_spring_hour() -> None:
    assert parse_when("25/12/2026 10:00") == datetime(2026, 12, 25, 9, 0, tzinfo=UTC)
    assert parse_when("2026-12-25T10:00:00Z") == datetime(2026, 12, 25, 10, 0, tzinfo=UTC)
    assert parse_when("2026-06-25 10:00") == datetime(2026, 6, 25, 8, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="n'existe pas"):
        parse_when("28/03/2027 02:30")
    with pytest.raises(ValueError, match="illisible"):
        parse_when("demain")
