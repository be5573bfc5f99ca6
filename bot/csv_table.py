"""Reading a spreadsheet's CSV export: encoding, separator and header names as people save them."""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from bot.errors import InvalidInput


@dataclass(frozen=True)
class Row:
    """One non-empty data row: its line in the file (1-based) and its cells by column key."""

    line: int
    cells: dict[str, str]


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252: what French spreadsheets save."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        raise InvalidInput(
            "encodage du fichier non reconnu : enregistrez-le en CSV UTF-8 depuis le tableur."
        ) from None


def header_key(name: str) -> str:
    """`Prénom`, ` PRENOM `, `prénom` all become `prenom`; spaces and hyphens become `_`."""
    stripped = "".join(
        char
        for char in unicodedata.normalize("NFKD", name.strip().lower())
        if not unicodedata.combining(char)
    )
    return "_".join(stripped.replace("-", " ").split())


def read_rows(
    data: bytes, columns: Mapping[str, tuple[str, ...]], required: frozenset[str]
) -> list[Row]:
    """The rows of a CSV file whose first line names its columns.

    `columns` maps each wanted key to the header spellings accepted for it (as `header_key`
    gives them, the first one named in messages); a missing required column refuses the whole
    file, unknown ones are ignored.
    """
    text = decode(data)
    first_line = text.split("\n", 1)[0]
    # A French export uses `;` (the comma is the decimal separator); take whichever is used.
    delimiter = ";" if first_line.count(";") >= first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        raise InvalidInput("le fichier est vide : la première ligne doit nommer les colonnes.")
    positions: dict[str, int] = {}
    for index, name in enumerate(header):
        key = header_key(name)
        for wanted, spellings in columns.items():
            if key in spellings and wanted not in positions:
                positions[wanted] = index
    missing = sorted(required - positions.keys())
    if missing:
        expected = ", ".join(columns[key][0] for key in missing)
        raise InvalidInput(
            f"colonne(s) manquante(s) : {expected}. La première ligne doit nommer les colonnes "
            f"(trouvées : {', '.join(header) or 'aucune'})."
        )
    rows: list[Row] = []
    last_line = reader.line_num
    for record in reader:
        # A quoted cell may span lines: the row starts right after the previous one ended.
        line, last_line = last_line + 1, reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        rows.append(
            Row(
                line,
                {
                    key: record[index].strip() if index < len(record) else ""
                    for key, index in positions.items()
                },
            )
        )
    return rows
