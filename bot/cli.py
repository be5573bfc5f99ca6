"""The `cordee` command line; the only place that calls asyncio.run.

Exit codes: 0 done; 1 refused by the data (unknown record, conflict, impossible transition);
2 invalid input or configuration.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, selectinload

from bot import __version__
from bot.access_requests import (
    EVENT_LABELS,
    STATE_LABELS,
    cancel_request,
    list_requests,
    send_request,
)
from bot.app import App, build_app
from bot.cdc.cli import xml_group
from bot.clock import SystemClock, paris
from bot.config import Settings, describe, load_settings
from bot.directory import (
    NewCertifier,
    add_certification,
    add_certifier,
    add_contact,
    add_organisation,
    add_partnership,
    find_certifier,
    find_organisation,
)
from bot.errors import ConfigError, CordeeError, InvalidInput
from bot.events import InstanceView
from bot.fsm import mermaid
from bot.reply_cli import reply_group
from bot.store.db import Database, upgrade
from bot.store.models import Certification, Certifier, Organisation, OutboxMessage, Partnership
from workflows import build_registry
from workflows.access_request import State

T = TypeVar("T")
INPUT_ERRORS = (ConfigError, InvalidInput)


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"Erreur : {message}", err=True)
    sys.exit(code)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn Cordée's errors into one French line on stderr and the documented exit code."""
    try:
        yield
    except INPUT_ERRORS as error:
        fail(str(error), 2)
    except CordeeError as error:
        fail(str(error), 1)
    except OperationalError as error:
        # The driver's message may carry the URL; name the setting instead.
        fail(
            f"base de données injoignable ou illisible ({type(error.orig).__name__}) : "
            "vérifiez CORDEE_DATABASE_URL et que le serveur répond.",
            2,
        )


def load(ctx: click.Context) -> Settings:
    config_file: Path | None = ctx.find_root().params.get("config_file")
    with reported_errors():
        return load_settings(config_file=config_file)


def run_with_app(ctx: click.Context, work: Callable[[App], Awaitable[T]]) -> T:
    settings = load(ctx)

    async def main() -> T:
        app = build_app(settings)
        try:
            app.check_database()
            return await work(app)
        finally:
            await app.close()

    with reported_errors():
        return asyncio.run(main())


def run_in_db(ctx: click.Context, work: Callable[[Session], T]) -> T:
    """A short unit of work in one transaction: rolled back whole on any error."""
    return run_with_app(ctx, lambda app: app.db.run(work))


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"not serialisable: {type(value).__name__}")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    if not rows:
        click.echo("(aucun)")
        return
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def when(instant: datetime | None) -> str:
    return paris(instant).strftime("%d/%m/%Y %H:%M") if instant else "—"


# --------------------------------------------------------------------------- root


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cordee")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Fichier de configuration TOML (par défaut ./cordee.toml s'il existe).",
)
def cli(config_file: Path | None) -> None:
    """Cordée : demandes d'accès aux dossiers, relances et suivi pour les certificateurs."""


def main() -> None:
    cli(prog_name="cordee")


# ------------------------------------------------------------------------- config


@cli.group("config")
def config_group() -> None:
    """Réglages."""


@config_group.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Affiche les réglages effectifs (secrets masqués)."""
    settings = load(ctx)
    table(("Réglage", "Valeur"), describe(settings))


# ----------------------------------------------------------------------------- db


@cli.group("db")
def db_group() -> None:
    """Base de données."""


@db_group.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Crée ou met à jour le schéma de la base (migrations Alembic)."""
    settings = load(ctx)
    with reported_errors():
        upgrade(settings.effective_database_url)
    click.echo("Base de données à jour.")


@db_group.command("status")
@click.pass_context
def db_status(ctx: click.Context) -> None:
    """Indique la version du schéma."""
    from bot.store.db import head_revision

    settings = load(ctx)
    database = Database(settings.effective_database_url)
    try:
        current, head = database.current_revision(), head_revision()
    finally:
        database.dispose()
    state = "à jour" if current == head else "à mettre à jour : cordee db upgrade"
    click.echo(f"Schéma {current or 'vide'} (dernier : {head}) — {state}.")


# ------------------------------------------------------------------------- serve


@cli.command("serve")
@click.option("--host", help="Adresse d'écoute (par défaut CORDEE_HOST).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (par défaut CORDEE_PORT).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Lance le serveur web et les rappels programmés."""
    settings = load(ctx)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # One line per scheduled run or schema check would drown what matters, and aioimaplib's
    # debug lines carry message content (personal data).
    for chatty in ("apscheduler", "alembic", "aioimaplib"):
        logging.getLogger(chatty).setLevel(logging.WARNING)

    async def main() -> None:
        app = build_app(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            app.check_database()
            try:
                base = await app.serve(host, port)
            except OSError as error:
                raise ConfigError(
                    f"impossible d'écouter sur {host or settings.host}:"
                    f"{settings.port if port is None else port} ({error.strerror}) : "
                    "choisissez un autre port avec CORDEE_PORT ou --port."
                ) from error
            click.echo(f"Cordée écoute sur {base} — Ctrl+C pour arrêter.", err=True)
            click.echo(f"Liens envoyés par courriel : {app.links.public_url}", err=True)
            await stop.wait()
        finally:
            await app.close()

    with reported_errors():
        asyncio.run(main())


@cli.command("tick")
@click.pass_context
def tick(ctx: click.Context) -> None:
    """Déclenche les rappels et expirations échus, puis envoie les messages en attente."""
    fired = run_with_app(ctx, lambda app: app.engine.tick())
    click.echo(f"{fired} échéance(s) traitée(s).")


# --------------------------------------------------------------------- certifier


@cli.group("certifier")
def certifier_group() -> None:
    """Certificateurs."""


@certifier_group.command("add")
@click.argument("name")
@click.option("--siret", required=True, help="SIRET (14 chiffres).")
@click.option("--matricule", required=True, help="Matricule CDC (8 caractères).")
@click.option("--contract", required=True, help="Numéro de contrat CDC (ex. MCFCER000123).")
@click.option(
    "--contact-email", default="", help="Adresse que les organismes peuvent écrire (facultatif)."
)
@click.option("--language", type=click.Choice(["fr", "en"]), default="fr", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def certifier_add(
    ctx: click.Context,
    name: str,
    siret: str,
    matricule: str,
    contract: str,
    contact_email: str,
    language: str,
    as_json: bool,
) -> None:
    """Enregistre un certificateur."""
    now = SystemClock().now()
    row = run_in_db(
        ctx,
        lambda s: _certifier_dict(
            add_certifier(
                s, NewCertifier(name, siret, matricule, contract, language, contact_email), now
            )
        ),
    )
    if as_json:
        emit_json(row)
    else:
        click.echo(
            f"Certificateur n° {row['id']} enregistré : {row['name']} (SIRET {row['siret']})."
        )


def _certifier_dict(certifier: Certifier) -> dict[str, Any]:
    return {
        "id": certifier.id,
        "name": certifier.name,
        "siret": certifier.siret,
        "cdc_matricule": certifier.cdc_matricule,
        "contract_number": certifier.contract_number,
        "contact_email": certifier.contact_email,
        "language": certifier.language,
        "certifications": [c.code for c in certifier.certifications],
    }


@certifier_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def certifier_list(ctx: click.Context, as_json: bool) -> None:
    """Liste les certificateurs."""
    rows = run_in_db(
        ctx,
        lambda s: [
            _certifier_dict(c)
            for c in s.scalars(
                select(Certifier)
                .options(selectinload(Certifier.certifications))
                .order_by(Certifier.id)
            )
        ],
    )
    if as_json:
        emit_json(rows)
        return
    table(
        ("N°", "Nom", "SIRET", "Matricule", "Contrat", "Certifications"),
        [
            (
                r["id"],
                r["name"],
                r["siret"],
                r["cdc_matricule"],
                r["contract_number"],
                " ".join(r["certifications"]),
            )
            for r in rows
        ],
    )


# ----------------------------------------------------------------- certification


@cli.group("certification")
def certification_group() -> None:
    """Certifications RNCP et RS."""


@certification_group.command("add")
@click.argument("code")
@click.option("--title", required=True, help="Intitulé de la certification.")
@click.option(
    "--certifier",
    "certifiers",
    multiple=True,
    required=True,
    help="Certificateur (n° ou SIRET) ; répétez l'option en cas de co-certification.",
)
@click.pass_context
def certification_add(
    ctx: click.Context, code: str, title: str, certifiers: tuple[str, ...]
) -> None:
    """Enregistre une certification (RNCP… ou RS…) et ses certificateurs."""
    saved = run_in_db(
        ctx,
        lambda s: _certification_dict(add_certification(s, code, title, certifiers)),
    )
    click.echo(f"Certification {saved['code']} enregistrée : {saved['title']}.")


def _certification_dict(certification: Certification) -> dict[str, Any]:
    return {
        "id": certification.id,
        "type": certification.type,
        "code": certification.code,
        "title": certification.title,
        "certifiers": [c.id for c in certification.certifiers],
    }


@certification_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def certification_list(ctx: click.Context, as_json: bool) -> None:
    """Liste les certifications."""
    rows = run_in_db(
        ctx,
        lambda s: [
            _certification_dict(c)
            for c in s.scalars(
                select(Certification)
                .options(selectinload(Certification.certifiers))
                .order_by(Certification.code)
            )
        ],
    )
    if as_json:
        emit_json(rows)
        return
    table(
        ("Code", "Type", "Intitulé", "Certificateurs"),
        [(r["code"], r["type"], r["title"], " ".join(map(str, r["certifiers"]))) for r in rows],
    )


# ------------------------------------------------------------------ organisation


@cli.group("organisation")
def organisation_group() -> None:
    """Organismes de formation partenaires."""


@organisation_group.command("add")
@click.argument("name")
@click.option("--siret", required=True, help="SIRET (14 chiffres).")
@click.option("--contact-email", help="Adresse du contact qui recevra les demandes.")
@click.option("--contact-name", default="", help="Nom du contact.")
@click.option(
    "--contact-language", type=click.Choice(["fr", "en"]), default="fr", show_default=True
)
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def organisation_add(
    ctx: click.Context,
    name: str,
    siret: str,
    contact_email: str | None,
    contact_name: str,
    contact_language: str,
    as_json: bool,
) -> None:
    """Enregistre un organisme de formation (et son contact)."""
    now = SystemClock().now()

    def work(session: Session) -> dict[str, Any]:
        organisation = add_organisation(session, name, siret, now)
        if contact_email:
            add_contact(session, organisation, contact_email, contact_name, contact_language, now)
        return _organisation_dict(organisation)

    row = run_in_db(ctx, work)
    if as_json:
        emit_json(row)
    else:
        click.echo(f"Organisme n° {row['id']} enregistré : {row['name']} (SIRET {row['siret']}).")
        if not row["contacts"]:
            click.echo(
                "Aucun contact : ajoutez-en un avant d'envoyer une demande "
                f"(cordee organisation contact-add {row['id']} --email …)."
            )


def _organisation_dict(organisation: Organisation) -> dict[str, Any]:
    return {
        "id": organisation.id,
        "name": organisation.name,
        "siret": organisation.siret,
        "contacts": [
            {
                "email": c.email,
                "name": c.name,
                "language": c.language,
                "undeliverable": c.undeliverable,
            }
            for c in organisation.contacts
        ],
    }


@organisation_group.command("contact-add")
@click.argument("organisation")
@click.option("--email", required=True)
@click.option("--name", default="")
@click.option("--language", type=click.Choice(["fr", "en"]), default="fr", show_default=True)
@click.pass_context
def organisation_contact_add(
    ctx: click.Context, organisation: str, email: str, name: str, language: str
) -> None:
    """Ajoute un contact à un organisme (n° ou SIRET)."""
    now = SystemClock().now()
    address = run_in_db(
        ctx,
        lambda s: (
            add_contact(s, find_organisation(s, organisation), email, name, language, now).email
        ),
    )
    click.echo(f"Contact {address} ajouté.")


@organisation_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def organisation_list(ctx: click.Context, as_json: bool) -> None:
    """Liste les organismes de formation."""
    rows = run_in_db(
        ctx,
        lambda s: [
            _organisation_dict(o)
            for o in s.scalars(
                select(Organisation)
                .options(selectinload(Organisation.contacts))
                .order_by(Organisation.id)
            )
        ],
    )
    if as_json:
        emit_json(rows)
        return
    table(
        ("N°", "Nom", "SIRET", "Contacts"),
        [
            (r["id"], r["name"], r["siret"], " ".join(c["email"] for c in r["contacts"]))
            for r in rows
        ],
    )


# ------------------------------------------------------------------- partnership


@cli.group("partnership")
def partnership_group() -> None:
    """Partenariats entre certificateurs et organismes."""


@partnership_group.command("add")
@click.option("--certifier", required=True, help="Certificateur (n° ou SIRET).")
@click.option(
    "--partner", "--organisation", "partner", required=True, help="Organisme (n° ou SIRET)."
)
@click.option(
    "--certification",
    "codes",
    multiple=True,
    required=True,
    help="Code couvert (RNCP…/RS…) ; répétez l'option.",
)
@click.pass_context
def partnership_add(
    ctx: click.Context, certifier: str, partner: str, codes: tuple[str, ...]
) -> None:
    """Crée un partenariat (ou y ajoute des certifications)."""
    now = SystemClock().now()

    def work(session: Session) -> int:
        found = find_certifier(session, certifier)
        return add_partnership(session, found, find_organisation(session, partner), codes, now).id

    partnership_id = run_in_db(ctx, work)
    click.echo(f"Partenariat n° {partnership_id} enregistré ({', '.join(codes)}).")


def _partnership_dict(partnership: Partnership) -> dict[str, Any]:
    return {
        "id": partnership.id,
        "certifier_id": partnership.certifier_id,
        "certifier_name": partnership.certifier.name,
        "organisation_id": partnership.organisation_id,
        "organisation_name": partnership.organisation.name,
        "certifications": [
            {"code": link.certification.code, "sharing_enabled": link.sharing_enabled}
            for link in sorted(partnership.certifications, key=lambda link: link.certification.code)
        ],
    }


@partnership_group.command("list")
@click.option("--certifier", help="Seulement ce certificateur (n° ou SIRET).")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def partnership_list(ctx: click.Context, certifier: str | None, as_json: bool) -> None:
    """Liste les partenariats et l'état du partage par certification."""

    def work(session: Session) -> list[dict[str, Any]]:
        query = select(Partnership).order_by(Partnership.id)
        if certifier is not None:
            query = query.where(Partnership.certifier_id == find_certifier(session, certifier).id)
        return [_partnership_dict(p) for p in session.scalars(query)]

    rows = run_in_db(ctx, work)
    if as_json:
        emit_json(rows)
        return
    table(
        ("N°", "Certificateur", "Organisme", "Certifications (partage)"),
        [
            (
                r["id"],
                r["certifier_name"],
                r["organisation_name"],
                " ".join(
                    f"{c['code']}:{'oui' if c['sharing_enabled'] else 'non'}"
                    for c in r["certifications"]
                ),
            )
            for r in rows
        ],
    )


# ---------------------------------------------------------------- access-request


@cli.group("access-request")
def access_request_group() -> None:
    """Demandes d'accès aux dossiers de formation."""


@access_request_group.command("send")
@click.option("--certifier", required=True, help="Certificateur (n° ou SIRET).")
@click.option("--partner", required=True, help="Organisme partenaire (n° ou SIRET).")
@click.option(
    "--certification",
    "codes",
    multiple=True,
    help="Limiter à ces certifications (par défaut : toutes celles du partenariat).",
)
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def access_request_send(
    ctx: click.Context, certifier: str, partner: str, codes: tuple[str, ...], as_json: bool
) -> None:
    """Envoie une demande d'accès à l'organisme partenaire."""
    view = run_with_app(
        ctx,
        lambda app: send_request(
            app.engine, certifier=certifier, partner=partner, certifications=codes
        ),
    )
    if as_json:
        emit_json(_view_dict(view))
        return
    click.echo(
        f"Demande {view.public_id} envoyée à « {view.data['organisation_name']} » "
        f"pour {', '.join(c['code'] for c in view.data['certifications'])}."
    )
    if view.due_at is not None:
        click.echo(f"Prochaine échéance : {_next_step(view)}.")


@access_request_group.command("cancel")
@click.argument("reference")
@click.pass_context
def access_request_cancel(ctx: click.Context, reference: str) -> None:
    """Annule une demande en attente (l'organisme en est informé)."""
    outcome = run_with_app(ctx, lambda app: cancel_request(app.engine, reference.upper()))
    click.echo(f"Demande {outcome.instance.public_id} annulée.")


@access_request_group.command("list")
@click.option("--certifier", help="Seulement ce certificateur (n° ou SIRET).")
@click.option("--state", type=click.Choice([s.value for s in State]), help="Seulement cet état.")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def access_request_list(
    ctx: click.Context, certifier: str | None, state: str | None, as_json: bool
) -> None:
    """Liste les demandes, les plus récentes d'abord."""
    rows = run_in_db(ctx, lambda s: list_requests(s, certifier_ref=certifier, state=state))
    if as_json:
        emit_json([dataclasses.asdict(r) for r in rows])
        return
    table(
        ("N°", "Référence", "Certificateur", "Organisme", "Certifications", "État", "Créée le"),
        [
            (
                r.id,
                r.reference,
                r.certifier_name,
                r.organisation_name,
                " ".join(r.certifications),
                STATE_LABELS["fr"][State(r.state)],
                when(datetime.fromisoformat(r.created_at)),
            )
            for r in rows
        ],
    )


def _next_step(view: InstanceView) -> str:
    label = EVENT_LABELS["fr"].get(str(view.due_event), str(view.due_event))
    return f"{label} le {when(view.due_at)}"


def _view_dict(view: InstanceView) -> dict[str, Any]:
    data = {key: value for key, value in view.data.items() if key not in {"contact_id"}}
    return {
        "id": view.id,
        "reference": view.public_id,
        "workflow": view.workflow,
        "certifier_id": view.certifier_id,
        "partnership_id": view.partnership_id,
        "state": view.state,
        "terminal": view.terminal,
        "created_at": view.created_at,
        "state_entered_at": view.state_entered_at,
        "due_at": view.due_at,
        "due_event": view.due_event,
        "organisation_name": data.get("organisation_name"),
        "organisation_siret": data.get("organisation_siret"),
        "certifications": data.get("certifications", []),
        "history": [dataclasses.asdict(entry) for entry in view.history],
    }


@access_request_group.command("show")
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def access_request_show(ctx: click.Context, reference: str, as_json: bool) -> None:
    """Affiche une demande et son historique."""
    view = run_with_app(ctx, lambda app: app.engine.view(reference.upper(), history=True))
    if as_json:
        emit_json(_view_dict(view))
        return
    click.echo(f"Demande {view.public_id} — {STATE_LABELS['fr'][State(view.state)]}")
    click.echo(f"Certificateur : {view.data['certifier_name']}")
    click.echo(
        f"Organisme : {view.data['organisation_name']} (SIRET {view.data['organisation_siret']})"
    )
    click.echo(
        "Certifications : "
        + ", ".join(f"{c['code']} — {c['title']}" for c in view.data["certifications"])
    )
    if view.due_at is not None:
        click.echo(f"Prochaine échéance : {_next_step(view)}")
    click.echo("Historique :")
    for entry in view.history:
        source = entry.from_state or "—"
        click.echo(
            f"  {when(entry.at)}  {entry.event:<10} {source} → {entry.to_state}  ({entry.actor})"
        )


# -------------------------------------------------------------------------- mail


@cli.group("mail")
def mail_group() -> None:
    """Courriels : lecture des réponses, vérification des réglages."""


@mail_group.command("fetch")
@click.pass_context
def mail_fetch(ctx: click.Context) -> None:
    """Traite maintenant les réponses arrivées dans la boîte de réception (Maildir ou IMAP)."""

    async def work(app: App) -> int:
        assert app.inbox is not None  # noqa: S101 - build_app always sets it
        return await app.inbox.poll(app.mail_handler)

    handled = run_with_app(ctx, work)
    click.echo(f"{handled} message(s) traité(s).")


CHECK_MARKS = {"ok": "✓", "failed": "✗", "skipped": "\N{EN DASH}"}


@mail_group.command("check")
@click.option(
    "--timeout",
    "step_seconds",
    type=click.FloatRange(min=0.1, max=300),
    default=10.0,
    show_default=True,
    help="Attente maximale de chaque étape, en secondes.",
)
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def mail_check(ctx: click.Context, step_seconds: float, as_json: bool) -> None:
    """Vérifie les réglages d'envoi (SMTP) et de réception (IMAP), sans envoyer de courriel.

    Les étapes sont testées dans l'ordre (DNS, connexion, chiffrement, identifiants, dossiers) ;
    la première en échec dit quoi corriger. Sans serveur configuré, vérifie le Maildir intégré.
    """
    from bot.mail_check import Status, check_mail

    settings = load(ctx)
    results = asyncio.run(check_mail(settings, step_seconds=step_seconds))
    failed = [result for result in results if result.status is Status.FAILED]
    if as_json:
        emit_json({"ok": not failed, "checks": [dataclasses.asdict(r) for r in results]})
    else:
        for result in results:
            click.echo(f"{CHECK_MARKS[result.status]} {result.label} : {result.detail}")
    if failed:
        count = "1 vérification" if len(failed) == 1 else f"{len(failed)} vérifications"
        fail(
            f"{count} en échec ({', '.join(result.label for result in failed)}) : corrigez le "
            "réglage indiqué, puis relancez « cordee mail check ».",
            1,
        )
    if not as_json:
        click.echo("Tout est en ordre : Cordée peut envoyer et recevoir des courriels.")


# ------------------------------------------------------------------ notifications


@cli.group("notifications")
def notifications_group() -> None:
    """Notifications adressées aux équipes des certificateurs."""


@notifications_group.command("list")
@click.option("--certifier", required=True, help="Certificateur (n° ou SIRET).")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.pass_context
def notifications_list(ctx: click.Context, certifier: str, limit: int) -> None:
    """Affiche les dernières notifications d'un certificateur."""

    def work(session: Session) -> list[tuple[datetime, str, str]]:
        found = find_certifier(session, certifier)
        rows = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.certifier_id == found.id, OutboxMessage.channel == "staff")
            .order_by(OutboxMessage.id.desc())
            .limit(limit)
        )
        return [(r.created_at, r.subject, r.status) for r in rows]

    rows = run_in_db(ctx, work)
    table(
        ("Date", "Objet", "Statut"), [(when(at), subject, status) for at, subject, status in rows]
    )


# --------------------------------------------------------------------- workflows


@cli.group("workflows")
def workflows_group() -> None:
    """Déclarations des processus."""


@workflows_group.command("list")
@click.option("--names", is_flag=True, help="Seulement les noms (pour les scripts).")
@click.pass_context
def workflows_list(ctx: click.Context, names: bool) -> None:
    """Liste les processus déclarés."""
    registry = build_registry(load(ctx))
    for name, workflow in sorted(registry.items()):
        click.echo(name if names else f"{name}  {workflow.title}  ({len(workflow.states)} états)")


@workflows_group.command("show")
@click.argument("name")
@click.option("--mermaid", "as_mermaid", is_flag=True, help="Diagramme Mermaid.")
@click.pass_context
def workflows_show(ctx: click.Context, name: str, as_mermaid: bool) -> None:
    """Affiche un processus : états, transitions, minuteries."""
    registry = build_registry(load(ctx))
    if name not in registry:
        fail(f"processus inconnu « {name} » (connus : {', '.join(sorted(registry))})", 2)
    workflow = registry[name]
    if as_mermaid:
        click.echo(mermaid(workflow), nl=False)
        return
    click.echo(f"{workflow.name} — {workflow.title}")
    click.echo(
        f"États : {', '.join(workflow.states)} (finaux : {', '.join(sorted(workflow.terminal))})"
    )
    for transition in workflow.transitions:
        effects = ", ".join(
            type(e).__name__ + ":" + getattr(e, "template", str(e)) for e in transition.effects
        )
        click.echo(
            f"  {transition.source} --{transition.event}--> {transition.target}  [{effects}]"
        )
    for timer in workflow.timers:
        click.echo(f"  minuterie : {timer.event} après {timer.after} en « {timer.state} »")


cli.add_command(xml_group)
cli.add_command(reply_group)

# Imported last: these groups use the helpers defined above.
from bot.sync.cli import folders_group, sync_group  # noqa: E402

cli.add_command(sync_group)
cli.add_command(folders_group)

# CDC deposit (issue 5): `cordee xml build`, `cordee deposit …`, `cordee folders set-result`.
from bot.cdc.deposit_cli import build_command, deposit_group, set_result_command  # noqa: E402

xml_group.add_command(build_command)
folders_group.add_command(set_result_command)
cli.add_command(deposit_group)

# Slack (issue 4): `cordee slack link|list`.
from bot.slack.cli import slack_group  # noqa: E402

cli.add_command(slack_group)

# Trainers (issue 7): `cordee trainer invite|list|resend|revoke|login-link|template|import-slots`.
from bot.trainer_cli import trainer_group  # noqa: E402

cli.add_command(trainer_group)
