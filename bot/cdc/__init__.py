"""CDC deposit files ("accrochage"): schemas, streaming validation, business rules."""

from bot.cdc.outcome import Code, Finding, Outcome, Report
from bot.cdc.schemas import DEFAULT_SCHEMA, builtin_names, resolve_schema
from bot.cdc.validate import validate_file

__all__ = [
    "DEFAULT_SCHEMA",
    "Code",
    "Finding",
    "Outcome",
    "Report",
    "builtin_names",
    "resolve_schema",
    "validate_file",
]
