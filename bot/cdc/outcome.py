"""What a validation produces: an outcome, a list of findings, error codes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    """How the check of a file ended."""

    VALID = "valid"
    INVALID = "invalid"
    NOT_XML = "not_xml"
    """Empty, not XML or not well-formed: the CDC could not even read it."""
    UNSAFE = "unsafe"
    """A DTD, entities or another construct we refuse to process."""
    UNREADABLE = "unreadable"
    """Missing file, no permission, a directory…"""


class Code(StrEnum):
    """Stable error codes (shown to people, kept in reports, matched in tests)."""

    XSD_ENUM = "XSD_ENUM"
    XSD_LENGTH = "XSD_LENGTH"
    XSD_PATTERN = "XSD_PATTERN"
    XSD_RANGE = "XSD_RANGE"
    XSD_TYPE = "XSD_TYPE"
    XSD_MISSING = "XSD_MISSING"
    XSD_UNEXPECTED = "XSD_UNEXPECTED"
    XSD_NIL = "XSD_NIL"
    XSD_TEXT = "XSD_TEXT"
    XSD_ROOT = "XSD_ROOT"
    XSD_INVALID = "XSD_INVALID"
    DUPLICATE_ID_TECHNIQUE = "DUPLICATE_ID_TECHNIQUE"
    DATE_VALIDITE_ORDER = "DATE_VALIDITE_ORDER"
    DATE_EXAMEN_ORDER = "DATE_EXAMEN_ORDER"
    HORODATAGE_FUTURE = "HORODATAGE_FUTURE"
    HORODATAGE_OFFSET = "HORODATAGE_OFFSET"
    LANGUE_NIVEAU_MISSING = "LANGUE_NIVEAU_MISSING"
    NUMERIQUE_NIVEAU_MISSING = "NUMERIQUE_NIVEAU_MISSING"
    SCORING_MISSING = "SCORING_MISSING"
    BIRTH_DATE_INVALID = "BIRTH_DATE_INVALID"
    NIR_INVALID = "NIR_INVALID"
    TOO_MANY_PASSAGES = "TOO_MANY_PASSAGES"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    MULTIPLE_CERTIFICATEURS = "MULTIPLE_CERTIFICATEURS"
    TOO_MANY_ERRORS = "TOO_MANY_ERRORS"
    NOT_XML = "NOT_XML"
    EMPTY_FILE = "EMPTY_FILE"
    UNSAFE_XML = "UNSAFE_XML"
    UNREADABLE = "UNREADABLE"

    @property
    def from_schema(self) -> bool:
        """True for errors reported by the XSD, False for Cordée's own rules."""
        return self.value.startswith("XSD_")


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in the file, located and explained in French."""

    code: Code
    message: str
    line: int | None = None
    path: str = ""
    id_technique: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "line": self.line,
            "path": self.path,
            "code": self.code.value,
            "message": self.message,
            "id_technique": self.id_technique,
        }


@dataclass(frozen=True, slots=True)
class Report:
    """The result of `validate_file`."""

    outcome: Outcome
    schema: str
    passages: int = 0
    errors: tuple[Finding, ...] = field(default_factory=tuple)
    truncated: bool = False
    """True when the error limit was reached: more errors may exist."""

    @property
    def valid(self) -> bool:
        return self.outcome is Outcome.VALID

    @property
    def exit_code(self) -> int:
        """0 valid, 1 invalid, 2 when the file could not be checked at all."""
        if self.outcome is Outcome.VALID:
            return 0
        if self.outcome is Outcome.INVALID:
            return 1
        return 2

    def as_dict(self) -> dict[str, object]:
        return {
            "valid": self.valid,
            "outcome": self.outcome.value,
            "schema": self.schema,
            "passages": self.passages,
            "truncated": self.truncated,
            "errors": [f.as_dict() for f in self.errors],
        }
