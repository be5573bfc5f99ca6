"""`cordee xml …`: check a CDC deposit file from the command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from bot.cdc.outcome import Outcome, Report
from bot.cdc.schemas import DEFAULT_SCHEMA, builtin_names
from bot.cdc.validate import validate_file
from bot.errors import ConfigError

PROGRESS_FROM_BYTES = 20_000_000
"""Files smaller than this are checked in about a second: no progress bar."""


@click.group("xml")
def xml_group() -> None:
    """Fichiers XML de dépôt à la Caisse des Dépôts (accrochage)."""


@xml_group.command("validate")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--schema",
    default=DEFAULT_SCHEMA,
    show_default=True,
    metavar="NOM|CHEMIN",
    help=f"Schéma : {', '.join(builtin_names())}, ou le chemin d'un fichier .xsd.",
)
@click.option("--json", "as_json", is_flag=True, help="Résultat en JSON sur la sortie standard.")
@click.option(
    "--max-errors",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="S'arrêter après N erreurs.",
)
@click.pass_context
def validate_command(
    ctx: click.Context, file: Path, schema: str, as_json: bool, max_errors: int | None
) -> None:
    """Vérifie FILE : schéma XSD et règles de la CDC.

    Code de sortie : 0 valide, 1 invalide, 2 fichier illisible, pas du XML ou refusé.
    """
    stderr = sys.stderr
    try:
        size = file.stat().st_size if file.is_file() else 0
    except OSError:
        size = 0
    try:
        if stderr.isatty() and size >= PROGRESS_FROM_BYTES:
            with click.progressbar(
                length=size, label="Vérification", file=stderr, show_eta=True
            ) as bar:
                done = [0]

                def advance(read: int, _total: int) -> None:
                    bar.update(read - done[0])
                    done[0] = read

                report = validate_file(file, schema, max_errors, advance)
        else:
            report = validate_file(file, schema, max_errors)
    except ConfigError as exc:
        click.echo(f"Erreur : {exc}", err=True)
        ctx.exit(2)
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(render(report, file))
    ctx.exit(report.exit_code)


def _number(value: int) -> str:
    return f"{value:,}".replace(",", "\u202f")


def render(report: Report, file: Path) -> str:
    """The report as plain French text, one block per error."""
    name = os.fspath(file)
    if report.outcome is Outcome.VALID:
        return (
            f"✔ {name} est valide (schéma {report.schema}, {_number(report.passages)} passage(s))."
        )
    if report.outcome is not Outcome.INVALID:
        reason = {
            Outcome.NOT_XML: "ce n'est pas un fichier XML lisible",
            Outcome.UNSAFE: "fichier refusé par sécurité",
            Outcome.UNREADABLE: "fichier inaccessible",
        }[report.outcome]
        lines = [f"✘ {name} : {reason}."]
        lines += [f"  {e.message}" for e in report.errors]
        return "\n".join(lines)
    total = len(report.errors)
    lines = [
        f"✘ {name} : {_number(total)} erreur(s) (schéma {report.schema}, "
        f"{_number(report.passages)} passage(s))."
    ]
    for error in report.errors:
        where = []
        if error.line is not None:
            where.append(f"ligne {error.line}")
        if error.id_technique:
            where.append(f"passage {error.id_technique}")
        lines.append("")
        lines.append(" · ".join(where) if where else "fichier")
        if error.path:
            lines.append(f"  {error.path}")
        lines.append(f"  [{error.code.value}] {error.message}")
    return "\n".join(lines)
