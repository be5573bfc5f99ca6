"""One Jinja environment for mails, notifications and pages (StrictUndefined, HTML autoescaped)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape

from bot import invitation_text
from bot.clock import paris
from bot.resources import templates_dir

LANGUAGES = ("fr", "en")
MESSAGE_PARTS = ("subject", "txt", "html")

_MONTHS = {
    "fr": (
        "janvier", "février", "mars", "avril", "mai", "juin",
        "juillet", "août", "septembre", "octobre", "novembre", "décembre",
    ),
    "en": (
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str
    # Block Kit JSON, from `<message>.slack.j2` when the message has one (staff notices).
    blocks: str | None = None


def format_date(instant: datetime, language: str = "fr") -> str:
    """A date as people write it, in Europe/Paris: « 23 novembre 2026 »."""
    local = paris(instant)
    month = _MONTHS.get(language, _MONTHS["fr"])[local.month - 1]
    day = "1er" if local.day == 1 and language == "fr" else str(local.day)
    return f"{day} {month} {local.year}"


def format_datetime(instant: datetime, language: str = "fr") -> str:
    local = paris(instant)
    joiner = " à " if language == "fr" else " at "
    return format_date(instant, language) + joiner + local.strftime("%H:%M")


def escape_mrkdwn(text: str) -> str:
    """Text shown as is in Slack: &, < and > are control characters of its mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Renderer:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or templates_dir()
        self.env = Environment(
            loader=FileSystemLoader(self.directory),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            # Templates ship with the code: compiled once, never checked on disk again (with
            # auto_reload, every get_template stats its file; mails are rendered by thousands).
            auto_reload=False,
            cache_size=-1,
        )
        self.env.filters["date"] = format_date
        self.env.filters["datetime"] = format_datetime
        self.env.filters["mrkdwn"] = escape_mrkdwn
        # An inviter's own invitation text: its allowed tags filled in, nothing else read.
        self.env.filters["invitation_tags"] = invitation_text.fill
        self._messages: dict[
            tuple[str, str], tuple[Template, Template, Template, Template | None]
        ] = {}

    def message(self, template: str, language: str, context: Mapping[str, Any]) -> RenderedMessage:
        """Render `<workflow>/<message>` in `language` as a subject/text/HTML triple."""
        subject, text, html, blocks = self._message_templates(template, language)
        return RenderedMessage(
            subject=" ".join(subject.render(context).split()),
            text=text.render(context),
            html=html.render(context),
            blocks=blocks.render(context) if blocks is not None else None,
        )

    def _message_templates(
        self, template: str, language: str
    ) -> tuple[Template, Template, Template, Template | None]:
        key = (template, language)
        found = self._messages.get(key)
        if found is None:
            base = f"{language}/{template}"
            subject, text, html = (
                self.env.get_template(f"{base}.{part}.j2") for part in MESSAGE_PARTS
            )
            slack = f"{base}.slack.j2"
            blocks = self.env.get_template(slack) if (self.directory / slack).is_file() else None
            found = self._messages[key] = (subject, text, html, blocks)
        return found

    def slack(self, name: str, language: str, context: Mapping[str, Any]) -> str:
        """A Slack message, `<language>/slack/<name>.j2`: mrkdwn text, or Block Kit JSON."""
        return self.env.get_template(f"{language}/slack/{name}.j2").render(context)

    def page(self, name: str, language: str, context: Mapping[str, Any]) -> str:
        return self.env.get_template(f"pages/{language}/{name}.html.j2").render(context)

    def has_message(self, template: str) -> bool:
        return all(
            (self.directory / language / f"{template}.{part}.j2").is_file()
            for language in LANGUAGES
            for part in MESSAGE_PARTS
        )


@cache
def default_renderer() -> Renderer:
    return Renderer()


def template_exists(template: str) -> bool:
    return default_renderer().has_message(template)
