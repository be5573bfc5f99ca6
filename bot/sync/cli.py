"""`cordee sync …` and `cordee folders …`: partner folder sync and certification folders.

Exit codes as everywhere: 0 done; 1 refused by the data (rows rejected, sharing off, unknown
folder, impossible state change, source failing); 2 invalid input.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from sqlalchemy.orm import Session

from bot.directory import find_certifier, find_organisation
from bot.sync.folders import FolderDetail, FolderRow, folder_detail, list_folders, set_folder_state
from bot.sync.run import PartnerSyncRunner, Progress, SyncReport
from bot.sync.services import SyncServices
from bot.sync.sharing import (
    BY_CERTIFIER,
    CertificationSharing,
    pause_sharing,
    resolve_partnership,
    resume_sharing,
)
from bot.sync.sources import FileSource
from bot.sync.status import SyncStatus, configure_api, list_status
from workflows.certification_folder import STATE_LABELS, State

if TYPE_CHECKING:
    from bot.app import App

T = TypeVar("T")
SHOWN_ERRORS = 50
OUTCOMES = {
    "ok": "réussie",
    "rejected": "lignes rejetées",
    "failed": "en échec",
    "interrupted": "interrompue",
    "running": "en cours",
}
STATES = [state.value for state in State]


def _app(ctx: click.Context, work: Callable[[App], Awaitable[T]]) -> T:
    # bot.cli registers these groups and owns the shared helpers: imported when running.
    from bot.cli import run_with_app

    return run_with_app(ctx, work)


def _json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, date):  # datetimes too: ISO 8601, with the UTC offset
        return value.isoformat()
    raise TypeError(f"not serialisable: {type(value).__name__}")


def _table(headers: tuple[str, ...], rows: list[tuple[object, ...]]) -> None:
    from bot.cli import table

    table(headers, rows)


def _when(instant: datetime | None) -> str:
    from bot.cli import when

    return when(instant)


def _day(value: date | None) -> str:
    return value.strftime("%d/%m/%Y") if value else "—"


def _period(start: date | None, end: date | None) -> str:
    if start is None and end is None:
        return "—"
    return f"du {_day(start)} au {_day(end)}"


@contextmanager
def _progress(label: str) -> Iterator[Progress | None]:
    """A progress bar on a terminal (standard error), nothing when piped or in a script."""
    if not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=1, label=label, file=sys.stderr, show_eta=False) as bar:
        shown = 0

        def update(done: int, total: int | None) -> None:
            nonlocal shown
            bar.length = max(total or done, 1)
            bar.update(done - shown)
            shown = done

        yield update


# ------------------------------------------------------------------------- sync


@click.group("sync")
def sync_group() -> None:
    """Synchronisation des dossiers de formation des organismes partenaires."""


@sync_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--partner", required=True, help="Organisme partenaire (n° ou SIRET).")
@click.option("--certifier", help="Certificateur (n° ou SIRET), si l'organisme en a plusieurs.")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def sync_import(
    ctx: click.Context, file: Path, partner: str, certifier: str | None, as_json: bool
) -> None:
    """Importe un export CSV ou XLSX des dossiers de formation d'un organisme partenaire.

    Seuls les dossiers acceptés (ou au-delà) des certifications partagées sont repris, et
    seulement leurs données administratives. Les lignes invalides sont rejetées avec leur
    numéro de ligne ; les autres sont importées. Code de sortie 1 si des lignes sont rejetées.
    """

    async def work(app: App) -> SyncReport:
        services = SyncServices.of(app)
        partnership_id, certifier_id = await app.db.run(
            lambda s: resolve_partnership(s, partner, certifier)
        )
        source = await FileSource.open(file)
        with _progress(f"Import de {file.name}") as progress:
            return await PartnerSyncRunner(services).run(
                partnership_id,
                source,
                actor="certifier:cli",
                certifier_id=certifier_id,
                progress=progress,
            )

    report = _app(ctx, work)
    _show_report(report, as_json, title=f"Import de {file.name}")
    if report.errors:
        sys.exit(1)


def _report_dict(report: SyncReport) -> dict[str, Any]:
    return {
        "partnership_id": report.partnership_id,
        "source": report.source,
        "outcome": report.outcome,
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "ignored": report.ignored,
        "rejected": report.rejected,
        "closed": report.closed,
        "notes": report.notes,
        "failure": report.failure,
        "next_attempt_at": report.next_attempt_at,
        "errors": [dataclasses.asdict(error) for error in report.errors],
    }


def _show_report(report: SyncReport, as_json: bool, *, title: str) -> None:
    if as_json:
        _json(_report_dict(report))
        return
    click.echo(f"{title} (partenariat n° {report.partnership_id}) : {OUTCOMES[report.outcome]}.")
    for note in report.notes:
        click.echo(f"  {note}")
    click.echo(f"  Dossiers : {report.summary()}.")
    if report.closed:
        click.echo(f"  Dossiers de certification clos (annulés ou refusés) : {report.closed}.")
    if report.failure:
        click.echo(f"  {report.failure}")
    if report.next_attempt_at:
        click.echo(f"  Nouvelle tentative automatique vers {_when(report.next_attempt_at)}.")
    if report.errors:
        click.echo(f"Lignes rejetées ({report.rejected}) :")
        for error in report.errors[:SHOWN_ERRORS]:
            click.echo(f"  {error.describe()}")
        if report.rejected > SHOWN_ERRORS:
            click.echo(
                f"  … et {report.rejected - SHOWN_ERRORS} autre(s) : relancez avec --json pour "
                "la liste complète."
            )
        click.echo("Corrigez ces lignes dans le fichier et importez-le de nouveau : les dossiers")
        click.echo("déjà importés ne seront pas dupliqués.")


@sync_group.command("configure")
@click.option("--partner", required=True, help="Organisme partenaire (n° ou SIRET).")
@click.option("--certifier", help="Certificateur (n° ou SIRET), si l'organisme en a plusieurs.")
@click.option("--url", "base_url", help="Adresse de l'API, par ex. https://www.wedof.fr/api.")
@click.option(
    "--api-key-stdin",
    is_flag=True,
    help="Lire la clé d'API sur l'entrée standard (sinon, elle est demandée à l'écran).",
)
@click.option(
    "--interval",
    type=int,
    help="Minutes entre deux synchronisations automatiques (par défaut 60).",
)
@click.option("--keep-key", is_flag=True, help="Garder la clé d'API déjà enregistrée.")
@click.pass_context
def sync_configure(
    ctx: click.Context,
    partner: str,
    certifier: str | None,
    base_url: str | None,
    api_key_stdin: bool,
    interval: int | None,
    keep_key: bool,
) -> None:
    """Configure la source API (type Wedof) d'un organisme : adresse, clé, fréquence.

    La clé d'API n'est jamais passée en argument (elle resterait dans l'historique du
    terminal) : elle est demandée sans écho, ou lue sur l'entrée standard.
    """
    api_key: str | None = None
    if api_key_stdin:
        api_key = sys.stdin.readline()
    elif not keep_key:
        api_key = click.prompt("Clé d'API de l'organisme", hide_input=True, err=True)

    async def work(app: App) -> SyncStatus:
        services = SyncServices.of(app)
        partnership_id, certifier_id = await app.db.run(
            lambda s: resolve_partnership(s, partner, certifier)
        )
        return await configure_api(
            services,
            partnership_id,
            certifier_id=certifier_id,
            base_url=base_url,
            api_key=api_key,
            interval_minutes=interval,
        )

    status = _app(ctx, work)
    click.echo(
        f"Source API enregistrée pour « {status.organisation_name} » (partenariat "
        f"n° {status.partnership_id}) : {status.base_url}, toutes les "
        f"{status.interval_minutes} minutes. La clé est conservée chiffrée."
    )


@sync_group.command("run")
@click.option("--partner", help="Seulement cet organisme (n° ou SIRET).")
@click.option("--certifier", help="Seulement ce certificateur (n° ou SIRET).")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def sync_run(ctx: click.Context, partner: str | None, certifier: str | None, as_json: bool) -> None:
    """Synchronise maintenant les organismes dont l'API est configurée."""

    async def work(app: App) -> list[SyncReport]:
        services = SyncServices.of(app)
        targets = await app.db.run(lambda s: _api_targets(s, partner, certifier))
        reports = []
        runner = PartnerSyncRunner(services)
        for partnership_id, certifier_id, name in targets:
            with _progress(f"Synchronisation de {name}") as progress:
                reports.append(
                    await runner.run_configured(
                        partnership_id,
                        actor="certifier:cli",
                        certifier_id=certifier_id,
                        progress=progress,
                    )
                )
        return reports

    reports = _app(ctx, work)
    if as_json:
        _json([_report_dict(report) for report in reports])
    else:
        for report in reports:
            _show_report(report, False, title="Synchronisation")
    if any(report.outcome != "ok" for report in reports):
        sys.exit(1)


def _api_targets(
    session: Session, partner: str | None, certifier: str | None
) -> list[tuple[int, int, str]]:
    from bot.errors import NotFound

    certifier_id = find_certifier(session, certifier).id if certifier else None
    if partner is not None:
        partnership_id, certifier_id = resolve_partnership(session, partner, certifier)
        statuses = list_status(session, certifier_id, partnership_id)
    else:
        statuses = list_status(session, certifier_id)
    targets = [
        (status.partnership_id, status.certifier_id, status.organisation_name)
        for status in statuses
        if status.source_kind == "api" and status.has_credentials
    ]
    if not targets:
        raise NotFound(
            "aucune API d'organisme n'est configurée"
            + (" pour ce partenaire" if partner else "")
            + " : `cordee sync configure` en enregistre une ; un export se charge avec "
            "`cordee sync import`."
        )
    return targets


@sync_group.command("status")
@click.option("--certifier", help="Seulement ce certificateur (n° ou SIRET).")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def sync_status(ctx: click.Context, certifier: str | None, as_json: bool) -> None:
    """État de la synchronisation, par partenariat : dernier passage, compteurs, erreurs."""

    def work(session: Session) -> list[SyncStatus]:
        certifier_id = find_certifier(session, certifier).id if certifier else None
        return list_status(session, certifier_id)

    statuses = _app(ctx, lambda app: app.db.run(work))
    if as_json:
        _json([_status_dict(status) for status in statuses])
        return
    _table(
        (
            "N°",
            "Organisme",
            "Source",
            "Dernier passage",
            "Résultat",
            "Créés",
            "MàJ",
            "Ignorés",
            "Rejetés",
            "Prochain essai",
            "Partage",
        ),
        [
            (
                s.partnership_id,
                s.organisation_name,
                {"api": "API", "file": "fichier"}.get(s.source_kind or "", "—"),
                _when(s.last_finished_at or s.last_started_at),
                OUTCOMES.get(s.last_outcome or "", "—"),
                s.created,
                s.updated,
                s.ignored,
                s.rejected,
                _when(s.next_attempt_at) if s.next_attempt_at else "—",
                " ".join(f"{c.code}:{c.label}" for c in s.sharing),
            )
            for s in statuses
        ],
    )
    for status in statuses:
        if status.last_error:
            click.echo(f"n° {status.partnership_id} : {status.last_error}")


def _status_dict(status: SyncStatus) -> dict[str, Any]:
    values = dataclasses.asdict(status)
    values["sharing"] = [_sharing_dict(item) for item in status.sharing]
    return values


def _sharing_dict(item: CertificationSharing) -> dict[str, Any]:
    return {
        "code": item.code,
        "title": item.title,
        "shared": item.shared,
        "state": item.label,
        "paused_at": item.paused_at,
        "paused_by": item.paused_by,
    }


def _sharing_command(pause: bool) -> Callable[..., None]:
    verb = "suspendu" if pause else "repris"

    @click.option("--partner", required=True, help="Organisme partenaire (n° ou SIRET).")
    @click.option("--certifier", required=True, help="Certificateur (n° ou SIRET).")
    @click.option("--certification", "code", required=True, help="Code RNCP… ou RS….")
    @click.pass_context
    def command(ctx: click.Context, partner: str, certifier: str, code: str) -> None:
        async def work(app: App) -> CertificationSharing:
            partnership_id, certifier_id = await app.db.run(
                lambda s: resolve_partnership(s, partner, certifier)
            )
            change = pause_sharing if pause else resume_sharing
            return await change(
                SyncServices.of(app),
                partnership_id=partnership_id,
                code=code,
                by=BY_CERTIFIER,
                actor="certifier:cli",
                certifier_id=certifier_id,
            )

        status = _app(ctx, work)
        click.echo(f"Partage de {status.code} {verb} ; l'organisme en est informé par courriel.")

    return command


sync_group.command(
    "pause",
    help="Suspend le partage d'une certification : la synchronisation s'arrête aussitôt.",
)(_sharing_command(pause=True))
sync_group.command("resume", help="Reprend le partage d'une certification suspendue.")(
    _sharing_command(pause=False)
)


# ---------------------------------------------------------------------- folders


@click.group("folders")
def folders_group() -> None:
    """Dossiers de certification (issus des dossiers de formation partagés)."""


@folders_group.command("list")
@click.option("--certifier", required=True, help="Certificateur (n° ou SIRET).")
@click.option("--partner", help="Seulement cet organisme (n° ou SIRET).")
@click.option("--state", type=click.Choice(STATES), help="Seulement cet état.")
@click.option("--certification", "code", help="Seulement cette certification (RNCP…/RS…).")
@click.option("--limit", type=click.IntRange(1, 100_000), help="Au plus N dossiers.")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def folders_list(
    ctx: click.Context,
    certifier: str,
    partner: str | None,
    state: str | None,
    code: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Liste les dossiers de certification d'un certificateur, les plus récents d'abord."""

    def work(session: Session) -> list[FolderRow]:
        from bot.directory import check_certification_code

        certifier_id = find_certifier(session, certifier).id
        organisation_id = find_organisation(session, partner).id if partner else None
        return list_folders(
            session,
            certifier_id,
            organisation_id=organisation_id,
            state=state,
            certification_code=check_certification_code(code)[1] if code else None,
            limit=limit,
        )

    rows = _app(ctx, lambda app: app.db.run(work))
    if as_json:
        _json([dataclasses.asdict(row) for row in rows])
        return
    _table(
        ("Référence", "N° dossier", "Titulaire", "Certification", "Organisme", "État", "Session"),
        [
            (
                r.reference,
                r.folder_number,
                f"{r.attendee_last_name.upper()} {r.attendee_first_name}",
                r.certification_code,
                r.organisation_name,
                r.state_label,
                _period(r.session_start, r.session_end),
            )
            for r in rows
        ],
    )


def _detail_dict(detail: FolderDetail) -> dict[str, Any]:
    return {
        **dataclasses.asdict(detail.row),
        "attendee_email": detail.attendee_email,
        "attendee_phone": detail.attendee_phone,
        "training_state_on": detail.training_state_on,
        "certification_title": detail.certification_title,
        "created_at": detail.created_at,
        "history": [dataclasses.asdict(entry) for entry in detail.history],
    }


def _show_detail(detail: FolderDetail) -> None:
    row = detail.row
    click.echo(f"Dossier de certification {row.reference} — {row.state_label}")
    click.echo(f"Dossier de formation : n° {row.folder_number} ({row.organisation_name})")
    click.echo(f"Titulaire : {row.attendee_first_name} {row.attendee_last_name.upper()}")
    contact = " · ".join(v for v in (detail.attendee_email, detail.attendee_phone) if v)
    click.echo(f"Contact : {contact or '—'}")
    click.echo(f"Certification : {row.certification_code} — {detail.certification_title}")
    click.echo(f"Session : {_period(row.session_start, row.session_end)}")
    click.echo(
        f"État du dossier de formation : {row.training_state}"
        + (f" (depuis le {_day(detail.training_state_on)})" if detail.training_state_on else "")
    )
    click.echo("Historique :")
    for entry in detail.history:
        click.echo(
            f"  {_when(entry.at)}  {entry.event:<10} {entry.from_state or '—'} → "
            f"{entry.to_state}  ({entry.actor})"
        )


@folders_group.command("show")
@click.argument("reference")
@click.option("--certifier", required=True, help="Certificateur (n° ou SIRET).")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def folders_show(ctx: click.Context, reference: str, certifier: str, as_json: bool) -> None:
    """Affiche un dossier (référence DC-… ou n° du dossier de formation) et son historique."""

    def work(session: Session) -> FolderDetail:
        return folder_detail(session, find_certifier(session, certifier).id, reference)

    detail = _app(ctx, lambda app: app.db.run(work))
    if as_json:
        _json(_detail_dict(detail))
    else:
        _show_detail(detail)


@folders_group.command("set-state")
@click.argument("reference")
@click.argument("state", type=click.Choice(STATES))
@click.option("--certifier", required=True, help="Certificateur (n° ou SIRET).")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def folders_set_state(
    ctx: click.Context, reference: str, state: str, certifier: str, as_json: bool
) -> None:
    """Fait avancer un dossier. « success » et « failed » sont annoncés à l'organisme."""

    async def work(app: App) -> FolderDetail:
        certifier_id = await app.db.run(lambda s: find_certifier(s, certifier).id)
        return await set_folder_state(
            SyncServices.of(app), certifier_id, reference, state, actor="certifier:cli"
        )

    detail = _app(ctx, work)
    if as_json:
        _json(_detail_dict(detail))
        return
    click.echo(
        f"Dossier {detail.row.reference} : {STATE_LABELS['fr'][detail.row.state]}"
        + (
            " ; l'organisme en est informé par courriel."
            if state in (State.SUCCESS, State.FAILED)
            else "."
        )
    )
