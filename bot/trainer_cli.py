"""`cordee trainer …`: invite trainers, follow their invitations, the invitation text, slots."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.clock import SystemClock
from bot.csv_table import decode, read_rows
from bot.directory import check_email
from bot.errors import Conflict, CordeeError, InvalidInput
from bot.invitation_text import check
from bot.store.models import InvitationText, TrainerAccount, WorkflowInstance
from bot.trainer_slots import ImportSummary, import_slots, parse_slots
from bot.trainers import (
    INVITATION_PATH,
    Inviter,
    InviteResult,
    TrainerRow,
    active_key,
    find_inviter,
    find_trainer,
    invite,
    list_trainers,
    resend,
    revoke,
)
from workflows.trainer_invitation import NAME, STATE_LABELS, State

if TYPE_CHECKING:
    from bot.app import App

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
ACTOR = "staff:cli"
LANGUAGES = click.Choice(["fr", "en"])
NAME_LIMIT = 100
INVITATION_TEMPLATE = f"{NAME}/trainer/invitation"
# The seed's three icons (not invited, invited, accepted), and two more for the ends.
ICONS = {
    "not_invited": "○",
    State.INVITED: "✉",
    State.ACCEPTED: "✔",
    State.EXPIRED: "⌛",
    State.REVOKED: "✖",
}
INVITE_COLUMNS = {
    "email": ("email", "e_mail", "courriel", "adresse", "mail", "adresse_electronique"),
    "first_name": ("prenom", "first_name", "firstname"),
    "last_name": ("nom", "last_name", "lastname", "nom_de_famille"),
}


def state_label(state: str) -> str:
    return f"{ICONS.get(state, '?')} {STATE_LABELS['fr'].get(state, state)}"


def inviter_options(command: F) -> F:
    """`--org` or `--certifier`: whose trainers these are."""
    command = click.option(
        "--certifier",
        "certifier",
        help="Certificateur qui invite ses propres formateurs (n° ou SIRET), au lieu de --org.",
    )(command)
    return click.option("--org", "org", help="Organisme de formation (n° ou SIRET).")(command)


def _who(org: str | None, certifier: str | None) -> str:
    """The option to repeat in the next command we suggest."""
    return f"--org {org}" if org is not None else f"--certifier {certifier}"


def _run(ctx: click.Context, work: Callable[[App], Awaitable[T]]) -> T:
    # bot.cli registers this group and owns the shared helpers: imported when running.
    from bot.cli import run_with_app

    return run_with_app(ctx, work)


def _fail(message: str, code: int) -> NoReturn:
    from bot.cli import fail

    fail(message, code)


@click.group("trainer")
def trainer_group() -> None:
    """Formateurs : invitations, texte d'invitation, créneaux."""


# ------------------------------------------------------------------------ invite


@dataclass(frozen=True)
class Invitee:
    line: int
    email: str
    first_name: str
    last_name: str


def parse_invitees(data: bytes) -> tuple[list[Invitee], list[tuple[int, str]]]:
    """The rows to invite and the rejected ones (line, reason); the file is checked whole first."""
    invitees: list[Invitee] = []
    rejected: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for row in read_rows(data, INVITE_COLUMNS, frozenset({"email"})):
        cells = row.cells
        first, last = cells.get("first_name", ""), cells.get("last_name", "")
        try:
            if not cells["email"]:
                raise InvalidInput("adresse électronique manquante")
            address = check_email(cells["email"]).lower()
        except InvalidInput as error:
            rejected.append((row.line, str(error)))
            continue
        if len(first) > NAME_LIMIT or len(last) > NAME_LIMIT:
            rejected.append((row.line, f"prénom ou nom de plus de {NAME_LIMIT} caractères"))
        elif address in seen:
            rejected.append((row.line, f"{address} figure déjà ligne {seen[address]}"))
        else:
            seen[address] = row.line
            invitees.append(Invitee(row.line, address, first, last))
    return invitees, rejected


@trainer_group.command("invite")
@click.argument("email", required=False)
@inviter_options
@click.option("--first-name", default="", help="Prénom du formateur.")
@click.option("--last-name", default="", help="Nom du formateur.")
@click.option(
    "--language", type=LANGUAGES, help="Langue du courriel (par défaut celle de l'invitant)."
)
@click.option(
    "--via",
    type=click.Choice(["email", "slack"]),
    default="email",
    show_default=True,
    help="Canal de l'invitation.",
)
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Invite en nombre : fichier CSV aux colonnes email;prenom;nom.",
)
@click.pass_context
def trainer_invite(
    ctx: click.Context,
    email: str | None,
    org: str | None,
    certifier: str | None,
    first_name: str,
    last_name: str,
    language: str | None,
    via: str,
    csv_file: Path | None,
) -> None:
    """Invite un formateur (EMAIL) ou tous ceux d'un fichier CSV (--csv) dans l'espace formateur."""
    if via == "slack" and csv_file is not None:
        _fail("--via slack invite un formateur à la fois : retirez --csv.", 2)
    if csv_file is not None:
        if email is not None or first_name or last_name:
            _fail(
                "avec --csv, les adresses, prénoms et noms viennent du fichier : retirez "
                "l'adresse, --first-name et --last-name de la commande.",
                2,
            )
        _invite_many(ctx, csv_file, org, certifier, language)
        return
    if email is None:
        _fail(
            "adresse électronique manquante, rien n'a été envoyé : indiquez-la "
            "(cordee trainer invite EMAIL --org ID) ou donnez un fichier avec --csv.",
            2,
        )

    async def work(app: App) -> tuple[InviteResult, datetime | None]:
        inviter = await app.db.run(lambda s: find_inviter(s, org=org, certifier=certifier))
        slack_user = await _slack_member(app, email) if via == "slack" else None
        result = await invite(
            app.engine,
            inviter,
            email=email,
            first_name=first_name,
            last_name=last_name,
            language=language,
            actor=ACTOR,
            slack_user=slack_user,
        )
        deadline = None
        if result.outcome == "invited" and result.reference is not None:
            deadline = (await app.engine.view(result.reference)).deadline
        return result, deadline

    from bot.cli import when

    result, deadline = _run(ctx, work)
    address = email.strip().lower()
    who = _who(org, certifier)
    if result.outcome == "invited":
        until = f" ; le lien est valable jusqu'au {when(deadline)}" if deadline else ""
        click.echo(
            f"Invitation {result.reference} envoyée à {address} "
            f"(formateur n° {result.trainer_id}){until}."
        )
    elif result.outcome == "already_invited":
        click.echo(
            f"{address} a déjà une invitation en cours ({result.reference}) : rien n'a été "
            f"renvoyé. Pour un nouveau lien : cordee trainer resend {address} {who}"
        )
    else:
        click.echo(
            f"{address} a déjà accepté l'invitation : pas de second compte. Pour qu'il se "
            f"connecte, envoyez-lui un lien : cordee trainer login-link {address} {who}"
        )


async def _slack_member(app: App, email: str) -> str:
    """The trainer's Slack member id, looked up by their address in the workspace."""
    from bot.errors import ConfigError
    from bot.slack.tenancy import member_by_email

    if app.slack is None:
        raise ConfigError(
            "Slack n'est pas configuré (CORDEE_SLACK_BOT_TOKEN, CORDEE_SLACK_SIGNING_SECRET) : "
            "invitez par courriel, ou configurez Slack (voir le README)."
        )
    return await member_by_email(app.slack.client, email.strip())


def _invite_many(
    ctx: click.Context,
    csv_file: Path,
    org: str | None,
    certifier: str | None,
    language: str | None,
) -> None:
    from bot.cli import reported_errors

    with reported_errors():
        invitees, rejected = parse_invitees(csv_file.read_bytes())

    async def work(app: App) -> list[tuple[Invitee, str]]:
        inviter = await app.db.run(lambda s: find_inviter(s, org=org, certifier=certifier))
        done: list[tuple[Invitee, str]] = []
        for invitee in invitees:
            try:
                result = await invite(
                    app.engine,
                    inviter,
                    email=invitee.email,
                    first_name=invitee.first_name,
                    last_name=invitee.last_name,
                    language=language,
                    actor=ACTOR,
                )
            except CordeeError as error:
                # One row refused by the data must not stop the others.
                rejected.append((invitee.line, str(error)))
            else:
                done.append((invitee, result.outcome))
        return done

    done = _run(ctx, work)
    who = _who(org, certifier)
    notes = {
        "invited": "invitation envoyée",
        "already_invited": "invitation déjà en cours, pas renvoyée "
        "(nouveau lien : cordee trainer resend)",
        "already_accepted": "a déjà accepté, pas de second compte "
        "(lien de connexion : cordee trainer login-link)",
    }
    for invitee, outcome in done:
        click.echo(f"ligne {invitee.line} : {invitee.email} — {notes[outcome]}")
    for line, reason in sorted(rejected):
        click.echo(f"ligne {line} : refusée — {reason}", err=True)
    counts = {key: sum(1 for _, outcome in done if outcome == key) for key in notes}
    click.echo(
        f"{counts['invited']} invitation(s) envoyée(s), {counts['already_invited']} déjà en "
        f"cours, {counts['already_accepted']} déjà acceptée(s), {len(rejected)} ligne(s) "
        "refusée(s)."
    )
    if rejected:
        _fail(
            f"{len(rejected)} ligne(s) refusée(s) : corrigez-les et relancez "
            f"cordee trainer invite --csv {csv_file} {who} ; les formateurs déjà invités "
            "ne recevront pas de second courriel.",
            1,
        )


# --------------------------------------------------------------- follow-up


@trainer_group.command("list")
@inviter_options
@click.option("--json", "as_json", is_flag=True, help="Sortie JSON.")
@click.pass_context
def trainer_list(ctx: click.Context, org: str | None, certifier: str | None, as_json: bool) -> None:
    """Liste les formateurs de l'invitant et l'état de leur invitation."""
    from bot.cli import emit_json, run_in_db, table, when

    def work(session: Session) -> tuple[Inviter, list[TrainerRow]]:
        inviter = find_inviter(session, org=org, certifier=certifier)
        return inviter, list_trainers(session, inviter)

    inviter, rows = run_in_db(ctx, work)
    if as_json:
        emit_json(
            [
                dataclasses.asdict(row) | {"inviter": inviter.key, "inviter_name": inviter.name}
                for row in rows
            ]
        )
        return
    click.echo(f"Formateurs de {inviter.name} :")
    table(
        ("N°", "Adresse", "Prénom", "Nom", "État", "Depuis"),
        [
            (r.id, r.email, r.first_name, r.last_name, state_label(r.state), when(r.since))
            for r in rows
        ],
    )


@trainer_group.command("resend")
@click.argument("trainer")
@inviter_options
@click.pass_context
def trainer_resend(
    ctx: click.Context, trainer: str, org: str | None, certifier: str | None
) -> None:
    """Renvoie l'invitation (TRAINER : adresse ou n°) avec un nouveau lien ; l'ancien cesse."""

    async def work(app: App) -> str:
        inviter = await app.db.run(lambda s: find_inviter(s, org=org, certifier=certifier))
        view = await resend(app.engine, inviter, trainer, actor=ACTOR)
        return str(view.data.get("email", trainer))

    address = _run(ctx, work)
    click.echo(f"Nouveau lien envoyé à {address} ; le précédent ne fonctionne plus.")


@trainer_group.command("revoke")
@click.argument("trainer")
@inviter_options
@click.pass_context
def trainer_revoke(
    ctx: click.Context, trainer: str, org: str | None, certifier: str | None
) -> None:
    """Retire l'invitation ou l'accès d'un formateur (TRAINER : adresse ou n°)."""

    async def work(app: App) -> tuple[str, str]:
        inviter = await app.db.run(lambda s: find_inviter(s, org=org, certifier=certifier))
        view = await revoke(app.engine, inviter, trainer, actor=ACTOR)
        return str(view.data.get("email", trainer)), inviter.name

    address, name = _run(ctx, work)
    click.echo(
        f"{address} n'a plus accès à l'espace formateur de {name} ; ses liens ne fonctionnent "
        f"plus. Pour l'inviter de nouveau : cordee trainer invite {address} {_who(org, certifier)}"
    )


@trainer_group.command("login-link")
@click.argument("trainer")
@inviter_options
@click.pass_context
def trainer_login_link(
    ctx: click.Context, trainer: str, org: str | None, certifier: str | None
) -> None:
    """Envoie un lien de connexion à un formateur qui a accepté (TRAINER : adresse ou n°)."""
    # Written alongside by the trainer space's work: imported when the command runs.
    from bot.trainer_accounts import LOGIN_LIFETIME, request_login_link

    who = _who(org, certifier)

    def account_of(session: Session) -> tuple[str, str]:
        inviter = find_inviter(session, org=org, certifier=certifier)
        found = find_trainer(session, inviter, trainer)
        live = session.scalar(
            select(WorkflowInstance).where(WorkflowInstance.active_key == active_key(found.id))
        )
        account = session.get(TrainerAccount, found.account_id) if found.account_id else None
        if live is None or live.state != State.ACCEPTED or account is None:
            raise Conflict(
                f"{found.email} n'a pas accepté d'invitation de {inviter.name} : pas de compte "
                f"où se connecter. Invitez-le (cordee trainer invite {found.email} {who}) "
                f"ou renvoyez son invitation (cordee trainer resend {found.email} {who})."
            )
        # The account's own login: the trainer may have changed it since being invited.
        return account.email, account.language

    async def work(app: App) -> str:
        address, language = await app.db.run(account_of)
        await request_login_link(app.engine, address, language)
        return address

    address = _run(ctx, work)
    minutes = int(LOGIN_LIFETIME.total_seconds() // 60)
    click.echo(f"Lien de connexion envoyé à {address} : valable {minutes} minutes, une seule fois.")


# ---------------------------------------------------------------- invitation text


@trainer_group.group("template")
def template_group() -> None:
    """Texte de l'invitation propre à l'invitant (objet et corps, balises permises)."""


def _text_of(session: Session, inviter: Inviter, language: str) -> InvitationText | None:
    return session.scalar(
        select(InvitationText).where(
            InvitationText.inviter_key == inviter.key, InvitationText.language == language
        )
    )


@template_group.command("set")
@inviter_options
@click.option(
    "--subject", required=True, help="Objet du courriel, ex. « Invitation de {organisme} »."
)
@click.option(
    "--body-file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Fichier texte du corps (balises : {prenom} {nom} {organisme} {lien} {date_expiration}).",
)
@click.option(
    "--language", type=LANGUAGES, help="Langue du texte (par défaut celle de l'invitant)."
)
@click.pass_context
def template_set(
    ctx: click.Context,
    org: str | None,
    certifier: str | None,
    subject: str,
    body_file: Path,
    language: str | None,
) -> None:
    """Enregistre le texte d'invitation ; une balise inconnue est refusée avec sa position."""
    from bot.cli import reported_errors, run_in_db

    with reported_errors():
        body = decode(body_file.read_bytes()).replace("\r\n", "\n").strip("\n")
        # Checked before touching the database: a refused text writes nothing.
        check(subject.strip(), body)

    def work(session: Session) -> tuple[str, str]:
        inviter = find_inviter(session, org=org, certifier=certifier)
        chosen = language or inviter.language
        text = _text_of(session, inviter, chosen)
        if text is None:
            text = InvitationText(inviter_key=inviter.key, language=chosen)
            session.add(text)
        text.subject, text.body, text.updated_at = subject.strip(), body, SystemClock().now()
        return inviter.name, chosen

    name, chosen = run_in_db(ctx, work)
    click.echo(
        f"Texte d'invitation ({chosen}) enregistré pour {name} : les prochaines invitations "
        "l'utiliseront. Aperçu : cordee trainer template preview "
        f"{_who(org, certifier)} --language {chosen}"
    )


@template_group.command("show")
@inviter_options
@click.option(
    "--language", type=LANGUAGES, help="Langue du texte (par défaut celle de l'invitant)."
)
@click.pass_context
def template_show(
    ctx: click.Context, org: str | None, certifier: str | None, language: str | None
) -> None:
    """Affiche le texte d'invitation enregistré (objet et corps, balises non remplies)."""
    from bot.cli import run_in_db

    def work(session: Session) -> tuple[str, tuple[str, str] | None]:
        inviter = find_inviter(session, org=org, certifier=certifier)
        text = _text_of(session, inviter, language or inviter.language)
        return inviter.name, (text.subject, text.body) if text else None

    name, saved = run_in_db(ctx, work)
    if saved is None:
        click.echo(
            f"{name} n'a pas de texte propre : le texte de Cordée est utilisé. Pour en écrire "
            f"un : cordee trainer template set {_who(org, certifier)} --subject … --body-file …"
        )
        return
    click.echo(f"Objet : {saved[0]}\n\n{saved[1]}")


@template_group.command("reset")
@inviter_options
@click.option(
    "--language", type=LANGUAGES, help="Langue du texte (par défaut celle de l'invitant)."
)
@click.pass_context
def template_reset(
    ctx: click.Context, org: str | None, certifier: str | None, language: str | None
) -> None:
    """Revient au texte d'invitation de Cordée."""
    from bot.cli import run_in_db

    def work(session: Session) -> tuple[str, int]:
        inviter = find_inviter(session, org=org, certifier=certifier)
        removed = session.execute(
            delete(InvitationText).where(
                InvitationText.inviter_key == inviter.key,
                InvitationText.language == (language or inviter.language),
            )
        )
        return inviter.name, int(getattr(removed, "rowcount", 0) or 0)

    name, removed = run_in_db(ctx, work)
    if removed:
        click.echo(f"{name} utilise de nouveau le texte d'invitation de Cordée.")
    else:
        click.echo(f"{name} n'avait pas de texte propre : rien à rétablir.")


@template_group.command("preview")
@inviter_options
@click.option(
    "--language", type=LANGUAGES, help="Langue du texte (par défaut celle de l'invitant)."
)
@click.pass_context
def template_preview(
    ctx: click.Context, org: str | None, certifier: str | None, language: str | None
) -> None:
    """Montre l'invitation telle qu'un formateur la recevrait, avec des valeurs d'exemple."""

    async def work(app: App) -> tuple[str, str]:
        engine = app.engine

        def load(session: Session) -> tuple[Inviter, InvitationText | None]:
            inviter = find_inviter(session, org=org, certifier=certifier)
            return inviter, _text_of(session, inviter, language or inviter.language)

        inviter, text = await app.db.run(load)
        chosen = language or inviter.language
        now = engine.clock.now()
        # Never saved: an instance as invite() would start it, so the engine's own context
        # (deadline from the configured expiry, footer names) fills the real mail template.
        example = WorkflowInstance(
            public_id="EXEMPLE",
            workflow=NAME,
            state=State.INVITED,
            data={
                "trainer_id": 0,
                "inviter_key": inviter.key,
                "inviter_name": inviter.name,
                "certifier_name": inviter.name,
                "email": "camille.martin@example.org",
                "first_name": "Camille",
                "last_name": "Martin",
                "language": chosen,
                "nonce": "",
                "custom": {"subject": text.subject, "body": text.body} if text else None,
            },
            created_at=now,
            state_entered_at=now,
            updated_at=now,
        )
        context = engine.message_context(
            engine.workflow(NAME), example, "Camille Martin", now, links={}
        )
        # Shown where the real link goes, but not a signed token: a preview opens nothing.
        context["invitation_url"] = engine.links.public_url + INVITATION_PATH + "exemple"
        message = engine.renderer.message(INVITATION_TEMPLATE, chosen, context)
        return message.subject, message.text

    subject, text = _run(ctx, work)
    click.echo(
        "Aperçu avec des valeurs d'exemple (Camille Martin) ; le lien n'ouvre aucune invitation.",
        err=True,
    )
    click.echo(f"Objet : {subject}\n\n{text}")


# ------------------------------------------------------------------------- slots


@trainer_group.command("import-slots")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@inviter_options
@click.pass_context
def trainer_import_slots(
    ctx: click.Context, file: Path, org: str | None, certifier: str | None
) -> None:
    """Importe les créneaux des formateurs (CSV : email;action;début;fin;salle;participants).

    Dates JJ/MM/AAAA HH:MM, heure de Paris (ISO 8601 accepté). Réimporter le même fichier
    met à jour les créneaux au lieu de les dupliquer.
    """
    from bot.cli import reported_errors, run_in_db

    with reported_errors():
        slots, errors = parse_slots(file.read_bytes())

    def work(session: Session) -> ImportSummary:
        inviter = find_inviter(session, org=org, certifier=certifier)
        return import_slots(session, inviter, slots, SystemClock().now())

    summary = run_in_db(ctx, work)
    problems = sorted([*errors, *summary.errors], key=lambda e: e.line)
    for problem in problems:
        click.echo(f"ligne {problem.line} : refusée — {problem.message}", err=True)
    click.echo(
        f"Créneaux : {summary.created} ajouté(s), {summary.updated} mis à jour, "
        f"{summary.unchanged} inchangé(s), {len(problems)} ligne(s) refusée(s)."
    )
    if problems:
        _fail(
            f"{len(problems)} ligne(s) refusée(s) : corrigez-les et relancez "
            f"cordee trainer import-slots {file} {_who(org, certifier)} ; les créneaux déjà "
            "importés ne seront pas dupliqués.",
            1,
        )
