"""Locates templates and schemas in a checkout or inside an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Return the directory holding `templates` or `xsd`.

    A checkout (editable install) keeps them beside `bot/`; a wheel carries them in `bot/_data/`.
    """
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"le dossier « {name} » de Cordée est introuvable (installation incomplète)"
    )


def templates_dir() -> Path:
    return resource_dir("templates")


def xsd_dir() -> Path:
    return resource_dir("xsd")
