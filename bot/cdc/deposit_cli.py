"""`cordee xml build`, `cordee deposit …` and `cordee folders set-result`: the CDC deposit.

Exit codes as everywhere: 0 done; 1 refused by the data (unknown batch, impossible change,
passages left out of a build, report naming unknown passages); 2 invalid input (unreadable
or unsafe report, bad option value).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from sqlalchemy.orm import Session

from bot.cdc.build import BuildResult, build_deposit
from bot.cdc.deposit import MARKS, Marked, mark_batch, set_result
from bot.cdc.passages import MENTIONS, DepositStatus, ResultData, deposit_status
from bot.cdc.reminders import Sent, run_reminders
from bot.cdc.report import ImportOutcome, import_report
from bot.directory import find_certifier
from bot.store.models import Certifier
from bot.sync.folders import FolderDetail
from bot.sync.services import SyncServices

if TYPE_CHECKING:
    from bot.app import App

T = TypeVar("T")
SHOWN = 50


def _app(ctx: click.Context, work: Callable[[App], Awaitable[T]]) -> T:
    from bot.cli import run_with_app

    return run_with_app(ctx, work)


def _json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not serialisable: {type(value).__name__}")


def _when(instant: datetime | None) -> str:
    from bot.cli import when

    return when(instant)


def _day(value: date | None) -> str:
    return value.strftime("%d/%m/%Y") if value else "—"


async def _certifier_id(app: App, certifier: str) -> int:
    return await app.db.run(lambda s: find_certifier(s, certifier).id)


# -------------------------------------------------------------------- build


@click.command("build")
@click.option("--certifier", required=True, help="Certificateur (n° ou SIRET).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Dossier où écrire les fichiers (par défaut <dossier de données>/depots).",
)
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def build_command(ctx: click.Context, certifier: str, out_dir: Path | None, as_json: bool) -> None:
    """Produit le(s) fichier(s) de dépôt CDC des titulaires à déposer.

    Y figurent les dossiers « réussi » jamais acceptés par la CDC (jamais envoyés, ou refusés
    au dernier dépôt). Un fichier au plus par tranche de 199 999 passages ou 200 Mo ; chaque
    fichier est vérifié avant d'être proposé. Les passages incomplets sont écartés et listés
    avec la raison (code de sortie 1 s'il y en a).
    """

    async def work(app: App) -> BuildResult:
        target = out_dir or app.settings.data_dir / "depots"
        return await build_deposit(
            SyncServices.of(app), await _certifier_id(app, certifier), target, actor="certifier:cli"
        )

    result = _app(ctx, work)
    if as_json:
        _json(
            {
                "horodatage": result.horodatage,
                "files": [dataclasses.asdict(item) for item in result.files],
                "left_out": [dataclasses.asdict(item) for item in result.left_out],
            }
        )
    else:
        if not result.files:
            click.echo("Aucun passage à déposer : aucun fichier produit.")
        for item in result.files:
            click.echo(
                f"✔ {item.path} — lot {item.reference}, {item.passages} passage(s), "
                f"idFlux {item.id_flux}, fichier valide."
            )
        if result.files:
            click.echo(
                "Déposez ce(s) fichier(s) sur l'espace certificateur de la Caisse des Dépôts, puis "
                "indiquez-le : cordee deposit mark-deposited LD-… --certifier …"
            )
        if result.left_out:
            click.echo(f"Passages écartés ({len(result.left_out)}) :")
            for left in result.left_out[:SHOWN]:
                click.echo(
                    f"  {left.reference} (dossier {left.folder_number}, {left.certification}) : "
                    f"{left.reason}"
                )
            if len(result.left_out) > SHOWN:
                click.echo(f"  … et {len(result.left_out) - SHOWN} autre(s) (--json pour tous).")
    if result.left_out:
        sys.exit(1)


# ------------------------------------------------------------------ deposit


@click.group("deposit")
def deposit_group() -> None:
    """Dépôts à la Caisse des Dépôts : lots, rapports de traitement, échéances."""


@deposit_group.command("report")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--certifier", help="Certificateur (n° ou SIRET) ; par défaut, d'après l'idFlux.")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def deposit_report(ctx: click.Context, file: Path, certifier: str | None, as_json: bool) -> None:
    """Importe un rapport de traitement (accusé de traitement) de la CDC.

    Les passages acceptés (ou « existe déjà en base ») ne seront plus jamais renvoyés ; les
    refusés iront dans le prochain fichier. Code de sortie 1 si le rapport cite des passages
    inconnus de ce lot (ils ne sont pas appliqués).
    """
    try:
        data = file.read_bytes()
    except OSError as error:
        click.echo(f"Erreur : lecture de « {file} » impossible ({error.strerror}).", err=True)
        sys.exit(2)

    async def work(app: App) -> ImportOutcome:
        certifier_id = await _certifier_id(app, certifier) if certifier else None
        return await import_report(
            SyncServices.of(app), data, actor="certifier:cli", certifier_id=certifier_id
        )

    outcome = _app(ctx, work)
    if as_json:
        _json(dataclasses.asdict(outcome))
    else:
        click.echo(
            f"Rapport {outcome.id_traitement or '—'} pour {outcome.file_name} (lot "
            f"{outcome.batch_reference}) : {outcome.ok} accepté(s)"
            + (f" dont {outcome.duplicates} déjà en base" if outcome.duplicates else "")
            + f", {outcome.ko} refusé(s)."
        )
        if outcome.already_imported:
            click.echo("Ce rapport avait déjà été importé : rien n'a changé.")
        if outcome.ko:
            click.echo(
                "Les passages refusés iront dans le prochain fichier (`cordee xml build`) ; "
                "corrigez d'abord leur état civil (`cordee folders set-result`)."
            )
        if outcome.without_result:
            click.echo(f"{outcome.without_result} passage(s) du lot sans résultat dans ce rapport.")
        if outcome.unknown:
            click.echo(
                f"{len(outcome.unknown)} identifiant(s) inconnu(s) dans ce lot, non appliqué(s) : "
                + ", ".join(outcome.unknown[:SHOWN])
            )
    if outcome.unknown:
        sys.exit(1)


def _mark_command(mark: str, summary: str) -> click.Command:
    @click.command(f"mark-{mark}" if mark != "cancelled" else "cancel", help=summary)
    @click.argument("batch")
    @click.option("--certifier", required=True, help="Certificateur (n° ou SIRET).")
    @click.pass_context
    def command(ctx: click.Context, batch: str, certifier: str) -> None:
        async def work(app: App) -> Marked:
            return await mark_batch(
                SyncServices.of(app),
                await _certifier_id(app, certifier),
                batch,
                mark,
                actor="certifier:cli",
            )

        marked = _app(ctx, work)
        click.echo(f"Lot {marked.reference} ({marked.file_name}) : {marked.state_label}.")
        if marked.returned:
            click.echo(f"{marked.returned} passage(s) iront dans le prochain fichier.")

    return command


for _mark, _summary in (
    ("deposited", "Indique qu'un lot (LD-…, idFlux ou nom de fichier) a été déposé à la CDC."),
    ("acknowledged", "Indique que l'accusé de réception d'un lot déposé est arrivé."),
    ("rejected", "Indique que la CDC a rejeté le fichier : ses passages seront renvoyés."),
    ("cancelled", "Abandonne un lot produit mais jamais déposé : ses passages seront renvoyés."),
):
    assert _mark in MARKS  # noqa: S101
    deposit_group.add_command(_mark_command(_mark, _summary))


@deposit_group.command("status")
@click.option("--certifier", help="Seulement ce certificateur (n° ou SIRET).")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def deposit_status_command(ctx: click.Context, certifier: str | None, as_json: bool) -> None:
    """Résumé : lots, passages par état, échéances (3 mois après la délivrance)."""

    async def work(app: App) -> list[DepositStatus]:
        now = app.engine.clock.now()

        def read(session: Session) -> list[DepositStatus]:
            from sqlalchemy import select

            ids = (
                [find_certifier(session, certifier).id]
                if certifier
                else list(session.scalars(select(Certifier.id).order_by(Certifier.id)))
            )
            return [deposit_status(session, ident, now) for ident in ids]

        return await app.db.run(read)

    statuses = _app(ctx, work)
    if as_json:
        _json([dataclasses.asdict(status) for status in statuses])
        return
    from bot.cli import table

    for status in statuses:
        p = status.passages
        click.echo(f"{status.certifier_name} (n° {status.certifier_id})")
        click.echo(
            f"  Passages : {p['pending']} à déposer, {p['exported']} envoyé(s), {p['ok']} "
            f"accepté(s), {p['ko']} refusé(s) ; {status.incomplete} incomplet(s)."
        )
        click.echo(
            f"  Échéances : {status.overdue} en retard, {status.due_soon} à déposer sous un mois"
            + (f", prochaine le {_day(status.next_deadline)}." if status.next_deadline else ".")
        )
        table(
            ("Lot", "Fichier", "État", "Passages", "OK", "KO", "Produit", "Déposé"),
            [
                (
                    b.reference,
                    b.file_name,
                    b.state_label,
                    b.passages,
                    b.ok,
                    b.ko,
                    _when(b.created_at),
                    _when(b.deposited_at),
                )
                for b in status.batches
            ],
        )


@deposit_group.command("remind")
@click.pass_context
def deposit_remind(ctx: click.Context) -> None:
    """Envoie maintenant les relances d'échéance dues (le serveur le fait chaque jour à 8 h)."""

    async def work(app: App) -> list[Sent]:
        return await run_reminders(SyncServices.of(app))

    sent = _app(ctx, work)
    if not sent:
        click.echo("Aucune relance à envoyer.")
    for item in sent:
        click.echo(
            f"Certificateur n° {item.certifier_id} : {item.event} ({item.count} passage(s))."
        )


# --------------------------------------------------------------- set-result


def _date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(value, pattern).date()  # noqa: DTZ007 - a calendar date
        except ValueError:
            continue
    raise click.BadParameter(f"« {value} » n'est pas une date (AAAA-MM-JJ ou JJ/MM/AAAA).")


@click.command("set-result")
@click.argument("reference")
@click.option("--certifier", required=True, help="Certificateur (n° ou SIRET).")
@click.option("--issued-on", callback=_date, help="Date de délivrance de la certification.")
@click.option("--mention", type=click.Choice(MENTIONS), help="Mention obtenue, s'il y en a une.")
@click.option(
    "--edof-number", help="N° du dossier EDOF, si la formation a été financée par le CPF."
)
@click.option("--birth-name", help="Nom de naissance, s'il diffère du nom du dossier.")
@click.option("--birth-date", callback=_date, help="Date de naissance.")
@click.option("--sex", type=click.Choice(["M", "F"]), help="Sexe, comme sur la pièce d'identité.")
@click.option("--birth-insee", help="Code INSEE de la commune de naissance (99xxx : à l'étranger).")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def set_result_command(
    ctx: click.Context,
    reference: str,
    certifier: str,
    issued_on: date | None,
    mention: str | None,
    edof_number: str | None,
    birth_name: str | None,
    birth_date: date | None,
    sex: str | None,
    birth_insee: str | None,
    as_json: bool,
) -> None:
    """Enregistre le résultat d'un dossier pour le dépôt CDC (délivrance, état civil).

    Un dossier « à contrôler » passe à « réussi » (l'organisme en est informé). Seules les
    données exigées par la CDC sont demandées : le n° EDOF suffit pour une formation CPF ;
    sinon date, sexe et commune de naissance.
    """
    data = ResultData(
        issued_on=issued_on,
        mention=mention,
        edof_number=edof_number,
        birth_name=birth_name,
        birth_date=birth_date,
        sex=sex,
        birth_insee=birth_insee.upper() if birth_insee else None,
    )
    if all(value is None for value in dataclasses.astuple(data)):
        raise click.UsageError("indiquez au moins une donnée (--issued-on, --birth-date…).")

    async def work(app: App) -> FolderDetail:
        return await set_result(
            SyncServices.of(app),
            await _certifier_id(app, certifier),
            reference,
            data,
            actor="certifier:cli",
        )

    detail = _app(ctx, work)
    if as_json:
        _json({"reference": detail.row.reference, "state": detail.row.state})
        return
    click.echo(
        f"Dossier {detail.row.reference} : résultat enregistré pour le dépôt CDC "
        f"({detail.row.state_label})."
    )
