"""Partner exports read row by row: CSV (UTF-8 or Windows-1252, « ; » or « , ») and XLSX.

Headers are matched on their French (or Wedof) names, accents and case ignored. Only the
columns of the allow-list are read; any other column (prices, funding, notes…) is dropped on
the spot and only its header is named in the summary.
"""

from __future__ import annotations

import csv
import io
import itertools
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

from bot.errors import CordeeError
from bot.sync.rules import FIELD_LABELS, REQUIRED_FIELDS, Field, RawFolder, RowError, Value
from bot.sync.rules import normalise_label as _normalise

_HEADERS: dict[Field, tuple[str, ...]] = {
    Field.FOLDER_NUMBER: (
        "N° du dossier",
        "N° dossier",
        "Numéro de dossier",
        "Numéro du dossier",
        "No dossier",
        "Dossier",
        "Référence du dossier",
        "externalId",
    ),
    Field.LAST_NAME: (
        "Nom",
        "Nom du stagiaire",
        "Nom du titulaire",
        "Nom du candidat",
        "Nom de famille",
        "lastName",
    ),
    Field.FIRST_NAME: (
        "Prénom",
        "Prénom du stagiaire",
        "Prénom du titulaire",
        "Prénom du candidat",
        "firstName",
    ),
    Field.EMAIL: (
        "Courriel",
        "E-mail",
        "Email",
        "Mail",
        "Adresse électronique",
        "Adresse e-mail",
        "Adresse email",
        "Courriel du stagiaire",
        "Email du stagiaire",
    ),
    Field.PHONE: (
        "Téléphone",
        "Tél",
        "Tel",
        "Portable",
        "Téléphone portable",
        "Téléphone du stagiaire",
        "phoneNumber",
    ),
    Field.CERTIFICATION_CODE: (
        "Certification",
        "Code de la certification",
        "Code certification",
        "Code RNCP/RS",
        "Code RNCP",
        "Code RS",
        "Code France compétences",
        "certificationCode",
    ),
    Field.SESSION_START: (
        "Date de début",
        "Date de début de session",
        "Début de session",
        "Date de début de formation",
        "Date début",
        "sessionStartDate",
    ),
    Field.SESSION_END: (
        "Date de fin",
        "Date de fin de session",
        "Fin de session",
        "Date de fin de formation",
        "Date fin",
        "sessionEndDate",
    ),
    Field.STATE: ("État", "État du dossier", "Statut", "Statut du dossier", "state"),
    Field.STATE_DATE: (
        "Date de l'état",
        "Date du statut",
        "Date de changement d'état",
        "Date du changement d'état",
        "stateDate",
    ),
    Field.UPDATED_AT: (
        "Date de mise à jour",
        "Dernière mise à jour",
        "Mis à jour le",
        "Modifié le",
        "lastUpdate",
        "updatedOn",
    ),
}
HEADER_ALIASES = {
    _normalise(label): field for field, labels in _HEADERS.items() for label in labels
}
# Headers recognised as data that is never shared, to say so rather than « unknown ».
_NOT_SHARED_WORDS = (
    "prix",
    "tarif",
    "montant",
    "cout",
    "financement",
    "financeur",
    "factur",
    "paiement",
    "reste a charge",
    "tva",
    "ttc",
    "ht",
    "note",
    "commentaire",
    "remarque",
    "observation",
    "iban",
    "rib",
    "price",
    "amount",
    "billing",
    "funding",
)
SAMPLE_BYTES = 1 << 20
CHUNK_BYTES = 1 << 20
CSV_SUFFIXES = (".csv", ".txt")
XLSX_SUFFIXES = (".xlsx", ".xlsm")


class RejectedFile(CordeeError):
    """The file as a whole cannot be imported (format, encoding, missing columns)."""


@dataclass(frozen=True)
class Layout:
    """Which column holds which allow-listed field, and which headers were dropped."""

    columns: dict[int, Field]
    not_shared: tuple[str, ...]
    unknown: tuple[str, ...]
    repeated: tuple[str, ...]


def layout_of(headers: Sequence[object]) -> Layout:
    """Map a header row; raise RejectedFile naming the required columns that are missing."""
    columns: dict[int, Field] = {}
    not_shared: list[str] = []
    unknown: list[str] = []
    repeated: list[str] = []
    for index, header in enumerate(headers):
        text = " ".join(str(header).split()) if header is not None else ""
        if not text:
            continue
        key = _normalise(text)
        field = HEADER_ALIASES.get(key)
        if field is None:
            words = f" {key} "
            if any(f" {word}" in words for word in _NOT_SHARED_WORDS):
                not_shared.append(text)
            else:
                unknown.append(text)
        elif field in columns.values():
            repeated.append(text)
        else:
            columns[index] = field
    missing = [field for field in REQUIRED_FIELDS if field not in columns.values()]
    if missing:
        names = ", ".join(f"« {FIELD_LABELS[field]} »" for field in missing)
        raise RejectedFile(
            f"colonne(s) obligatoire(s) absente(s) : {names}. La première ligne du fichier doit "
            "nommer les colonnes, par exemple : N° du dossier ; Nom ; Prénom ; Certification ; "
            "État. Aucun dossier n'a été importé."
        )
    return Layout(columns, tuple(not_shared), tuple(unknown), tuple(repeated))


class TableFile:
    """An opened export; `rows()` yields RawFolder or RowError, in file order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        suffix = path.suffix.lower()
        if not path.is_file():
            raise RejectedFile(f"fichier introuvable ou illisible « {path} ».")
        self._finished = False
        self.encoding: str | None = None
        self.delimiter: str | None = None
        if suffix in XLSX_SUFFIXES:
            self._reader: _Reader = _XlsxReader(path)
        elif suffix in CSV_SUFFIXES:
            self._reader = _CsvReader(path)
            self.encoding, self.delimiter = self._reader.encoding, self._reader.delimiter
        else:
            raise RejectedFile(
                f"format de fichier non pris en charge « {path.suffix or path.name} » : "
                "fournissez un export CSV (.csv) ou Excel (.xlsx)."
            )
        # Progress unit: bytes of a CSV, rows of a workbook.
        self.total = self._reader.total
        try:
            self.layout = layout_of(self._reader.header)
        except RejectedFile:
            self._reader.close()
            raise

    def rows(self) -> Iterator[RawFolder | RowError]:
        columns = self.layout.columns
        width = len(self._reader.header)
        fields = list(columns.values())
        # One C call picks the allow-listed cells of a full row (layout_of guarantees five
        # columns or more, so it returns a tuple): this runs for every row.
        pick = itemgetter(*columns)
        last = max(columns)
        for line, cells, problem in self._reader.records():
            if problem is not None:
                yield RowError(line, None, problem)
                continue
            if not any(cells) and all(cell is None or cell == "" for cell in cells):
                continue  # blank lines at the end of exports (any() first: it is cheap)
            if len(cells) > width and any(c not in (None, "") for c in cells[width:]):
                yield RowError(
                    line,
                    None,
                    f"{len(cells)} valeurs pour {width} colonnes : une valeur contient sans "
                    "doute le séparateur sans être entre guillemets",
                )
                continue
            if len(cells) > last:
                values: dict[str, Value] = dict(zip(fields, pick(cells), strict=True))
            else:  # a short row: its missing trailing cells are absent values
                values = {field: cells[i] for i, field in columns.items() if i < len(cells)}
            yield RawFolder(line, values)
        self._finished = True

    @property
    def done(self) -> int:
        """How far the reading is, in the unit of `total` (for a progress bar)."""
        return self.total if self._finished else self._reader.position()

    def close(self) -> None:
        self._reader.close()


class _Reader:
    header: list[Any]
    total: int

    def records(self) -> Iterator[tuple[int, Sequence[Value], str | None]]:
        raise NotImplementedError

    def position(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _CsvReader(_Reader):
    """One badly encoded line is one rejected row, not a lost file (see _chunks)."""

    def __init__(self, path: Path) -> None:
        self._handle: IO[bytes] = path.open("rb")
        self.total = path.stat().st_size
        sample = self._handle.read(SAMPLE_BYTES)
        self._handle.seek(0)
        try:
            self.encoding = _sniff_encoding(sample, path.name)
        except RejectedFile:
            self._handle.close()
            raise
        if sample.startswith(b"\xef\xbb\xbf"):
            self._handle.read(3)  # the BOM Excel writes: not part of the first header
        self._position = 3 if sample.startswith(b"\xef\xbb\xbf") else 0
        self._bad_lines: set[int] = set()
        self._line = 0
        first = self._handle.readline()
        self._position += len(first)
        text = self._decode(first)
        self.delimiter = max((";", ",", "\t"), key=text.count)
        self.header = next(csv.reader([text], delimiter=self.delimiter), [])

    def _decode(self, raw: bytes) -> str:
        self._line += 1
        try:
            return raw.decode(self.encoding)
        except UnicodeDecodeError:
            self._bad_lines.add(self._line)
            return raw.decode(self.encoding, errors="replace")

    def _chunks(self) -> Iterator[io.StringIO]:
        """The rest of the file, a megabyte at a time, decoded whole (in C) when it can be.

        A chunk that does not decode is decoded line by line instead, and its faulty lines
        are remembered by number: they become rejected rows, the others are read.
        """
        pending = b""
        while True:
            block = self._handle.read(CHUNK_BYTES)
            data = pending + block
            if not block:
                cut = len(data)
            else:
                cut = data.rfind(b"\n") + 1
                if cut == 0:  # one very long line: keep reading
                    pending = data
                    continue
            chunk, pending = data[:cut], data[cut:]
            if chunk:
                self._position += len(chunk)
                try:
                    text = chunk.decode(self.encoding)
                    self._line += chunk.count(b"\n")
                except UnicodeDecodeError:
                    pieces = chunk.split(b"\n")
                    ends = [piece + b"\n" for piece in pieces[:-1]] + [pieces[-1]] * bool(
                        pieces[-1]
                    )
                    text = "".join(self._decode(line) for line in ends)
                yield io.StringIO(text, newline="")
            if not block:
                return

    def records(self) -> Iterator[tuple[int, Sequence[Value], str | None]]:
        lines = itertools.chain.from_iterable(self._chunks())
        reader = csv.reader(lines, delimiter=self.delimiter)
        last = 1  # physical line where the previous record ended; the header is line 1
        try:
            for cells in reader:
                first, last = last + 1, reader.line_num + 1
                if self._bad_lines and any(n in self._bad_lines for n in range(first, last + 1)):
                    yield (
                        first,
                        [],
                        f"caractères illisibles ({self.encoding}) : enregistrez le fichier en "
                        "UTF-8 ou en Windows-1252, sans mélanger les deux",
                    )
                    continue
                yield first, cells, None
        except csv.Error as error:
            yield last + 1, [], f"ligne CSV mal formée ({error}) ; la suite est ignorée"

    def position(self) -> int:
        return self._position

    def close(self) -> None:
        self._handle.close()


def _sniff_encoding(sample: bytes, name: str) -> str:
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in sample[:4096]:
        raise RejectedFile(
            f"« {name} » n'est pas un CSV en UTF-8 ou Windows-1252 (UTF-16 ou fichier binaire ?) : "
            "enregistrez-le au format « CSV UTF-8 » ou « CSV (séparateur : point-virgule) »."
        )
    cut = sample.rfind(b"\n") + 1 if len(sample) == SAMPLE_BYTES else len(sample)
    utf8_text = False
    for line in sample[:cut].splitlines():
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            continue
        utf8_text = True
        break
    try:
        sample[:cut].decode("utf-8")
    except UnicodeDecodeError:
        # Accented text that is valid UTF-8 elsewhere: a UTF-8 file with a few foreign lines,
        # which are rejected one by one. Otherwise Windows-1252 (Excel's « CSV (séparateur :
        # point-virgule) »), which reads any byte but five.
        return "utf-8" if utf8_text else "cp1252"
    return "utf-8"


class _XlsxReader(_Reader):
    def __init__(self, path: Path) -> None:
        from openpyxl import load_workbook

        try:
            self._book = load_workbook(path, read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, OSError, ValueError) as error:
            raise RejectedFile(
                f"classeur Excel illisible « {path.name} » ({type(error).__name__}) : "
                "enregistrez-le de nouveau au format .xlsx, ou exportez-le en CSV."
            ) from None
        sheet = self._book.worksheets[0]
        self._rows = sheet.iter_rows(values_only=True)
        self._line = 0
        self.total = sheet.max_row or 0
        self.header = []
        for row in self._rows:
            self._line += 1
            if any(cell not in (None, "") for cell in row):
                self.header = list(row)
                break

    def records(self) -> Iterator[tuple[int, Sequence[Value], str | None]]:
        for row in self._rows:
            self._line += 1
            yield self._line, [_cell(value) for value in row], None

    def position(self) -> int:
        return self._line

    def close(self) -> None:
        self._book.close()


def _cell(value: object) -> Value:
    """Dates and numbers stay typed (the rules read them); anything else becomes text."""
    if isinstance(value, bool):
        return str(value)
    if value is None or isinstance(value, str | int | float | date):
        return value
    return str(value)
