"""`cordee reply …`: show what the bot understands of an emailed reply."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from bot.replies import ParsedReply, UnreadableMessage, parse_message

DECISION_LABELS = {"authorise": "autoriser", "refuse": "refuser", None: "aucune"}


@click.group("reply")
def reply_group() -> None:
    """Réponses reçues par email aux demandes d'accès."""


@reply_group.command("parse")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Résultat en JSON sur la sortie standard.")
def reply_parse(file: Path, as_json: bool) -> None:
    """Dire ce que le bot comprend du message FILE (.eml) ; rien n'est enregistré."""
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        _fail(f"le fichier {file} n'existe pas")
    except IsADirectoryError:
        _fail(f"{file} est un dossier, pas un fichier .eml")
    except OSError as error:
        _fail(f"impossible de lire {file} ({error.strerror or error})")
    try:
        reply = parse_message(raw)
    except UnreadableMessage as error:
        _fail(f"{file} : {error}")
    if as_json:
        click.echo(json.dumps(as_dict(reply), ensure_ascii=False, indent=2))
    else:
        click.echo(summary(reply))


def as_dict(reply: ParsedReply) -> dict[str, Any]:
    return {
        "decision": reply.decision,
        "auto_reply": reply.auto_reply,
        "bounce": reply.bounce,
        "text": reply.text,
        "reason": reply.reason.value,
        "reason_label": reply.reason.label,
        "matched": list(reply.matched),
        "bounce_permanent": reply.bounce_permanent,
        "bounced_recipient": reply.bounced_recipient,
        "from": reply.from_address,
        "subject": reply.subject,
        "message_id": reply.message_id,
        "in_reply_to": list(reply.in_reply_to),
        "references": list(reply.references),
    }


def summary(reply: ParsedReply) -> str:
    lines = [f"Décision : {DECISION_LABELS[reply.decision]} ({reply.reason.label})"]
    if reply.auto_reply:
        lines.append("Réponse automatique : oui")
    if reply.bounce:
        kind = "définitif" if reply.bounce_permanent else "temporaire ou inconnu"
        lines.append(f"Avis de non-remise : oui, échec {kind}")
        lines.append(f"Adresse en échec : {reply.bounced_recipient or 'inconnue'}")
    lines.append(f"Expéditeur : {reply.from_address or 'inconnu'}")
    if reply.text:
        lines.append("Texte retenu :")
        lines.extend(f"  {line}" for line in reply.text.splitlines())
    else:
        lines.append("Texte retenu : (aucun)")
    return "\n".join(lines)


def _fail(message: str) -> NoReturn:
    click.echo(f"Erreur : {message}", err=True)
    sys.exit(2)
