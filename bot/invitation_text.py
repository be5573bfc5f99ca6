"""An inviter's own invitation text: only the allowed tags, checked when saved, filled in safely.

The text is never a template: `{prenom}` and its four siblings are replaced by plain values
and nothing else is interpreted, so a text can neither run code nor reach other data. The
link and the legal footer are outside of it, in the mail template, and cannot be removed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from bot.errors import InvalidInput

TAGS = ("prenom", "nom", "organisme", "lien", "date_expiration")
SUBJECT_LIMIT = 200
BODY_LIMIT = 5000
_BRACED = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class TagProblem:
    """An unknown or malformed tag, where it is (1-based line and column)."""

    tag: str
    line: int
    column: int


def problems(text: str) -> list[TagProblem]:
    """Every `{…}` that is not an allowed tag, and every stray brace."""
    found: list[TagProblem] = []
    for match in _BRACED.finditer(text):
        if match.group(1) not in TAGS:
            found.append(_at(text, match.start(), match.group(0)))
    leftover = _BRACED.sub("", text)
    if "{" in leftover or "}" in leftover:
        # Report the first stray brace at its place in the original text.
        for index, char in enumerate(text):
            if char in "{}" and not _inside_a_tag(text, index):
                found.append(_at(text, index, char))
                break
    return sorted(found, key=lambda p: (p.line, p.column))


def check(subject: str, body: str) -> None:
    """Raise InvalidInput naming the first problem and its position; nothing is saved."""
    if not subject.strip():
        raise InvalidInput(
            "l'objet est vide : écrivez-en un, par ex. « Invitation de {organisme} »."
        )
    if len(subject) > SUBJECT_LIMIT or "\n" in subject.strip():
        raise InvalidInput(f"l'objet tient sur une ligne de {SUBJECT_LIMIT} caractères au plus.")
    if not body.strip():
        raise InvalidInput("le texte est vide : écrivez quelques lignes pour le formateur.")
    if len(body) > BODY_LIMIT:
        raise InvalidInput(f"le texte dépasse {BODY_LIMIT} caractères : raccourcissez-le.")
    for where, text in (("l'objet", subject), ("le texte", body)):
        for problem in problems(text):
            raise InvalidInput(
                f"balise inconnue « {problem.tag} » dans {where}, ligne {problem.line}, "
                f"colonne {problem.column} : seules "
                + ", ".join(f"{{{tag}}}" for tag in TAGS)
                + " sont permises."
            )


def fill(text: str, values: Mapping[str, str]) -> str:
    """The text with each allowed tag replaced by its value; anything else is left as written."""
    return _BRACED.sub(
        lambda m: values.get(m.group(1), m.group(0)) if m.group(1) in TAGS else m.group(0), text
    )


def _at(text: str, index: int, tag: str) -> TagProblem:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return TagProblem(tag, line, column)


def _inside_a_tag(text: str, index: int) -> bool:
    return any(m.start() <= index < m.end() for m in _BRACED.finditer(text))
