"""Finds the XSD to validate against: by name (`1.1.2`, `1.1.5`) or by path to any XSD file."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from bot.cdc.native import CompiledSchema
from bot.errors import ConfigError
from bot.resources import xsd_dir

DEFAULT_SCHEMA = "1.1.2"

_BUILTIN = {
    "1.1.2": ("cdc-1.1.2.xsd", "1.1.2"),
    "1.1.5": ("cdc-1.1.5-provisoire.xsd", "1.1.5-provisoire"),
}


@dataclass(frozen=True, slots=True)
class SchemaRef:
    """A schema chosen by name or path; `label` is what reports show."""

    label: str
    path: Path
    builtin: bool


def builtin_names() -> tuple[str, ...]:
    return tuple(_BUILTIN)


def resolve_schema(name_or_path: str | Path = DEFAULT_SCHEMA) -> SchemaRef:
    """`1.1.2`, `1.1.5` (also `cdc-1.1.2`), or the path of an XSD file.

    Raises ConfigError with a French message when nothing matches.
    """
    key = str(name_or_path).strip()
    short = key.removeprefix("cdc-").removeprefix("CDC-")
    if short in _BUILTIN and not isinstance(name_or_path, Path):
        filename, label = _BUILTIN[short]
        return SchemaRef(label, xsd_dir() / filename, builtin=True)
    path = Path(key).expanduser()
    if path.is_file():
        return SchemaRef(str(path), path.resolve(), builtin=False)
    known = ", ".join(_BUILTIN)
    raise ConfigError(
        f"schéma « {key} » inconnu : donnez un nom ({known}) ou le chemin d'un fichier .xsd"
    )


_XS = "{http://www.w3.org/2001/XMLSchema}"


@dataclass(frozen=True, slots=True)
class LoadedSchema:
    """A schema ready to validate with, plus what error messages need from it."""

    ref: SchemaRef
    native: CompiledSchema
    required: Mapping[str, frozenset[str]]
    """Element name → names of its mandatory children."""


def _mandatory(node: etree._Element, mandatory: bool, acc: set[str]) -> None:
    for child in node:
        if child.get("minOccurs", "1") == "0":
            continue
        if child.tag == f"{_XS}element":
            name = child.get("name") or (child.get("ref") or "").rsplit(":", 1)[-1]
            if mandatory and name:
                acc.add(name)
        elif child.tag in (f"{_XS}all", f"{_XS}sequence"):
            _mandatory(child, mandatory, acc)
        elif child.tag == f"{_XS}choice":
            options = [c for c in child if isinstance(c.tag, str) and c.tag != f"{_XS}annotation"]
            _mandatory(child, mandatory and len(options) == 1, acc)


def required_children(xsd: etree._ElementTree) -> dict[str, frozenset[str]]:
    """For each element declared with a complex type, the children it cannot do without."""
    root = xsd.getroot()
    named = {t.get("name"): t for t in root.iterfind(f"{_XS}complexType")}
    found: dict[str, frozenset[str]] = {}
    for element in root.iter(f"{_XS}element"):
        name = element.get("name")
        if not name:
            continue
        complex_type = element.find(f"{_XS}complexType")
        if complex_type is None and element.get("type"):
            complex_type = named.get((element.get("type") or "").rsplit(":", 1)[-1])
        if complex_type is None:
            continue
        acc: set[str] = set()
        _mandatory(complex_type, True, acc)
        found[name] = found[name] & frozenset(acc) if name in found else frozenset(acc)
    return found


_lock = threading.Lock()
_compiled: dict[tuple[Path, int, int], LoadedSchema] = {}


def load_schema(ref: SchemaRef) -> LoadedSchema:
    """Compile once per file version (path, size, mtime); thread-safe.

    The XSD is first read with a locked-down lxml parser so that a broken or hostile file gets a
    clear message (no network, no DTD, no entities).
    """
    try:
        stat = ref.path.stat()
    except OSError as exc:
        raise ConfigError(f"schéma illisible {ref.path} : {exc.strerror}") from exc
    key = (ref.path, stat.st_size, stat.st_mtime_ns)
    with _lock:
        found = _compiled.get(key)
        if found is not None:
            return found
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        try:
            doc = etree.parse(str(ref.path), parser)
            if doc.docinfo.internalDTD is not None or doc.docinfo.externalDTD is not None:
                raise ConfigError(f"schéma {ref.path} refusé : il contient une DTD")
            etree.XMLSchema(doc)
            loaded = LoadedSchema(ref, CompiledSchema(ref.path), required_children(doc))
        except (etree.XMLSyntaxError, etree.XMLSchemaParseError, ValueError) as exc:
            raise ConfigError(f"schéma {ref.label} inutilisable : {exc}") from exc
        _compiled[key] = loaded
        return loaded
