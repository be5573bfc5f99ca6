"""`cordee slack …`: link a Slack channel to a certifier, list the links."""

from __future__ import annotations

from importlib import resources

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clock import SystemClock
from bot.slack.tenancy import link_channel
from bot.store.models import Certifier, SlackChannelLink


@click.group("slack")
def slack_group() -> None:
    """Slack : canaux reliés aux certificateurs."""


@slack_group.command("link")
@click.option("--certifier", "certifier_ref", required=True, help="N° ou SIRET du certificateur.")
@click.option("--channel", required=True, help="Identifiant du canal Slack (C… ou G…).")
@click.pass_context
def slack_link(ctx: click.Context, certifier_ref: str, channel: str) -> None:
    """Relie un canal : ses membres pourront agir pour ce certificateur depuis Slack."""
    from bot.cli import run_in_db

    now = SystemClock().now()
    name = run_in_db(ctx, lambda s: link_channel(s, certifier_ref, channel, now).name)
    click.echo(
        f"Canal {channel.strip().upper()} relié à {name}. Invitez-y Cordée (/invite @Cordée) : "
        "ses membres pourront utiliser /cordee et y recevront les notifications."
    )


@slack_group.command("list")
@click.pass_context
def slack_list(ctx: click.Context) -> None:
    """Liste les canaux reliés."""
    from bot.cli import run_in_db, table

    def rows(session: Session) -> list[tuple[object, ...]]:
        query = (
            select(SlackChannelLink.channel_id, Certifier.id, Certifier.name)
            .join(Certifier, Certifier.id == SlackChannelLink.certifier_id)
            .order_by(Certifier.name, SlackChannelLink.channel_id)
        )
        return [tuple(row) for row in session.execute(query)]

    table(("canal", "n°", "certificateur"), run_in_db(ctx, rows))


PLACEHOLDER_URL = "https://cordee.example.fr"


def manifest_text(public_url: str) -> str:
    """The app manifest shipped with Cordée, pointing at `public_url`."""
    text = resources.files("bot.slack").joinpath("manifest.yaml").read_text(encoding="utf-8")
    body = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))
    return body.replace(PLACEHOLDER_URL, public_url.rstrip("/"))


@slack_group.command("manifest")
@click.option(
    "--url",
    default="",
    help="Adresse publique de Cordée (par défaut : CORDEE_PUBLIC_URL).",
)
@click.pass_context
def slack_manifest(ctx: click.Context, url: str) -> None:
    """Affiche le manifeste de l'application Slack, prêt à coller sur api.slack.com."""
    from bot.cli import load

    public_url = url or load(ctx).effective_public_url
    if not public_url.startswith("https://"):
        click.echo(
            "Attention : Slack n'appelle que des adresses https ; indiquez --url https://… "
            "(ou activez le mode Socket avec CORDEE_SLACK_APP_TOKEN).",
            err=True,
        )
    click.echo(manifest_text(public_url), nl=False)
