"""One Jinja environment for mails, notifications and pages (StrictUndefined, HTML autoescaped)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

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


class Renderer:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or templates_dir()
        self.env = Environment(
            loader=FileSystemLoader(self.directory),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
        self.env.filters["date"] = format_date
        self.env.filters["datetime"] = format_datetime

    def message(self, template: str, language: str, context: Mapping[str, Any]) -> RenderedMessage:
        """Render `<workflow>/<message>` in `language` as a subject/text/HTML triple."""
        base = f"{language}/{template}"
        subject = self.env.get_template(f"{base}.subject.j2").render(context)
        return RenderedMessage(
            subject=" ".join(subject.split()),
            text=self.env.get_template(f"{base}.txt.j2").render(context),
            html=self.env.get_template(f"{base}.html.j2").render(context),
        )

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
