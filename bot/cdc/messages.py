"""Turns libxml2's English schema errors into stable codes and plain French messages."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from lxml import etree

from bot.cdc.outcome import Code

_E = etree.ErrorTypes

_BY_LIBXML_CODE: dict[int, Code] = {
    _E.SCHEMAV_CVC_ENUMERATION_VALID: Code.XSD_ENUM,
    _E.SCHEMAV_CVC_LENGTH_VALID: Code.XSD_LENGTH,
    _E.SCHEMAV_CVC_MINLENGTH_VALID: Code.XSD_LENGTH,
    _E.SCHEMAV_CVC_MAXLENGTH_VALID: Code.XSD_LENGTH,
    _E.SCHEMAV_CVC_PATTERN_VALID: Code.XSD_PATTERN,
    _E.SCHEMAV_CVC_MININCLUSIVE_VALID: Code.XSD_RANGE,
    _E.SCHEMAV_CVC_MAXINCLUSIVE_VALID: Code.XSD_RANGE,
    _E.SCHEMAV_CVC_MINEXCLUSIVE_VALID: Code.XSD_RANGE,
    _E.SCHEMAV_CVC_MAXEXCLUSIVE_VALID: Code.XSD_RANGE,
    _E.SCHEMAV_CVC_TOTALDIGITS_VALID: Code.XSD_RANGE,
    _E.SCHEMAV_CVC_FRACTIONDIGITS_VALID: Code.XSD_RANGE,
    _E.SCHEMAV_CVC_DATATYPE_VALID_1_2_1: Code.XSD_TYPE,
    _E.SCHEMAV_CVC_DATATYPE_VALID_1_2_2: Code.XSD_TYPE,
    _E.SCHEMAV_CVC_DATATYPE_VALID_1_2_3: Code.XSD_TYPE,
    _E.SCHEMAV_CVC_ELT_1: Code.XSD_ROOT,
    _E.SCHEMAV_CVC_ELT_3_1: Code.XSD_NIL,
    _E.SCHEMAV_CVC_ELT_3_2_1: Code.XSD_NIL,
    _E.SCHEMAV_CVC_ELT_3_2_2: Code.XSD_NIL,
    _E.SCHEMAV_CVC_COMPLEX_TYPE_2_1: Code.XSD_TEXT,
    _E.SCHEMAV_CVC_COMPLEX_TYPE_2_3: Code.XSD_TEXT,
    _E.SCHEMAV_CVC_COMPLEX_TYPE_3_2_1: Code.XSD_UNEXPECTED,
    _E.SCHEMAV_CVC_COMPLEX_TYPE_3_2_2: Code.XSD_UNEXPECTED,
    _E.SCHEMAV_CVC_COMPLEX_TYPE_4: Code.XSD_MISSING,
}

_ELEMENT = re.compile(r"^Element '(?P<qname>[^']+)'(?:, attribute '(?P<attr>[^']+)')?: ")
_QNAME = re.compile(r"\{[^}]*\}")
_EXPECTED = re.compile(r"Expected is(?: one of)? \( (?P<names>[^)]*) \)")
_NUMBERS = re.compile(r"'(-?\d+)'")
_SET = re.compile(r"the set \{(?P<values>.*)\}")
_ATOMIC_TYPE = re.compile(r"atomic type '(?:xs:)?(?P<type>[^']+)'")

_TYPE_HINTS = {
    "boolean": "true ou false",
    "int": "un nombre entier",
    "integer": "un nombre entier",
    "date": "une date réelle au format AAAA-MM-JJ",
    "dateTime": "une date et heure réelles au format AAAA-MM-JJThh:mm:ss+01:00",
}

_FORMAT_HINTS = {
    "horodatage": "AAAA-MM-JJThh:mm:ss suivi du décalage horaire, par exemple "
    "2024-07-01T10:30:00+02:00 (pas de « Z », pas de millisecondes)",
    "nir": "13 caractères sans la clé : sexe (1 ou 2), année, mois, département "
    "(2A/2B pour la Corse), commune et rang",
}


@dataclass(frozen=True, slots=True)
class XsdProblem:
    """A schema error understood: what the person reads, and what helps locate it."""

    code: Code
    message: str
    qname: str | None
    """The element the error is about, in Clark notation (`{ns}name`)."""
    value: str | None
    """The offending value when libxml2 quotes it (used to find the element)."""
    expected: tuple[str, ...]
    """For missing-child errors: the child names libxml2 expected."""


def local(qname: str) -> str:
    return qname.rsplit("}", 1)[-1]


def _names(raw: str) -> tuple[str, ...]:
    return tuple(local(n.strip()) for n in raw.split(",") if n.strip())


def _type_hint(name: str, base: str) -> str:
    if name in _FORMAT_HINTS:
        return _FORMAT_HINTS[name]
    base = local(base)
    if base in _TYPE_HINTS:
        return _TYPE_HINTS[base]
    lowered = name.lower()
    if lowered.startswith("date"):
        return _TYPE_HINTS["date"]
    if lowered.startswith(("presence", "donnee")):
        return _TYPE_HINTS["boolean"]
    if lowered.endswith(("naissance", "niveau", "scoregeneral")) and "nom" not in lowered:
        return _TYPE_HINTS["int"]
    return "une valeur du type attendu"


def _quote_list(names: tuple[str, ...]) -> str:
    return ", ".join(f"« {n} »" for n in names)


def explain(
    code_number: int,
    raw_message: str,
    value: str | None,
    required: Mapping[str, frozenset[str]] | None = None,
) -> XsdProblem:
    """Classify one libxml2 schema error and write it in French.

    `required` maps an element name to its mandatory children: libxml2 lists every child it
    could still accept, so this tells which ones are actually missing.
    """
    text = raw_message.strip()
    head = _ELEMENT.match(text)
    qname = head.group("qname") if head else None
    attr = head.group("attr") if head else None
    detail = text[head.end() :] if head else text
    name = local(qname) if qname else "?"
    code = _BY_LIBXML_CODE.get(code_number, Code.XSD_INVALID)
    expected_match = _EXPECTED.search(detail)
    expected = _names(expected_match.group("names")) if expected_match else ()

    if code_number == _E.SCHEMAV_ELEMENT_CONTENT:
        if detail.startswith("Missing child"):
            code = Code.XSD_MISSING
        elif "not expected" in detail:
            code = Code.XSD_UNEXPECTED
    if code is Code.XSD_MISSING and required is not None and name in required:
        mandatory = tuple(n for n in expected if n in required[name])
        if mandatory:
            expected = mandatory
            detail = "Missing mandatory"
    message = _french(code, name, attr, detail, value, expected)
    return XsdProblem(code, message, qname, value, expected if code is Code.XSD_MISSING else ())


def _french(
    code: Code,
    name: str,
    attr: str | None,
    detail: str,
    value: str | None,
    expected: tuple[str, ...],
) -> str:
    shown = f"« {value} »" if value is not None else "la valeur"
    numbers = _NUMBERS.findall(detail)
    if code is Code.XSD_ENUM:
        values = _SET.search(detail)
        allowed = values.group("values").replace("'", "") if values else "voir le dictionnaire"
        return (
            f"« {name} » vaut {shown}, qui n'est pas une valeur admise. Valeurs possibles "
            f"(en majuscules, sans espace) : {allowed}."
        )
    if code is Code.XSD_LENGTH:
        limit = numbers[-1] if numbers else "?"
        if "minLength" in detail or (value == "" and "length" in detail):
            return (
                f"« {name} » est vide ou trop court (au moins {limit} caractère(s)). "
                "Remplissez-le, ou retirez l'élément s'il est facultatif "
                '(xsi:nil="true" s\'il est nillable).'
            )
        if "maxLength" in detail:
            return (
                f"« {name} » est trop long : {numbers[0] if numbers else '?'} caractères pour "
                f"{limit} au maximum. Raccourcissez la valeur."
            )
        return (
            f"« {name} » doit faire exactement {limit} caractère(s) "
            f"(ici {numbers[0] if numbers else '?'}). Corrigez la valeur."
        )
    if code is Code.XSD_PATTERN:
        hint = _FORMAT_HINTS.get(name, "le format du dictionnaire des données CDC")
        if "date" in name.lower() or name == "dateInscription":
            hint = "une date AAAA-MM-JJ entre 1900 et 2099"
        return f"« {name} » vaut {shown}, qui n'a pas le format attendu : {hint}."
    if code is Code.XSD_TYPE:
        type_match = _ATOMIC_TYPE.search(detail)
        return (
            f"« {name} » vaut {shown}, ce qui n'est pas "
            f"{_type_hint(name, type_match.group('type') if type_match else '')}. "
            "Corrigez la valeur."
        )
    if code is Code.XSD_RANGE:
        limit = numbers[-1] if numbers else "?"
        side = "au moins" if "less than" in detail else "au plus"
        return f"« {name} » vaut {shown} : la valeur doit être {side} {limit}."
    if code is Code.XSD_MISSING:
        if not expected:
            return f"Il manque un élément obligatoire dans « {name} »."
        if len(expected) == 1:
            return f"Il manque l'élément obligatoire « {expected[0]} » dans « {name} ». Ajoutez-le."
        if detail == "Missing mandatory":
            return (
                f"Il manque des éléments obligatoires dans « {name} » : "
                f"{_quote_list(expected)}. Ajoutez-les."
            )
        return f"Il manque un élément dans « {name} » : ajoutez l'un de {_quote_list(expected)}."
    if code is Code.XSD_UNEXPECTED:
        if attr is not None:
            return f"L'attribut « {local(attr)} » n'est pas autorisé sur « {name} ». Retirez-le."
        where = f" Attendu à cet endroit : {_quote_list(expected)}." if expected else ""
        return (
            f"L'élément « {name} » n'est pas attendu ici : il est en double, mal placé, mal "
            f"orthographié ou absent de ce schéma.{where}"
        )
    if code is Code.XSD_NIL:
        if "not nillable" in detail:
            return f"« {name} » ne peut pas être vide (xsi:nil interdit) : donnez une valeur."
        return f"« {name} » est déclaré vide (xsi:nil) mais contient une valeur : choisissez."
    if code is Code.XSD_TEXT:
        return f"« {name} » ne doit contenir que des éléments, pas de texte. Retirez le texte."
    if code is Code.XSD_ROOT:
        return (
            f"L'élément racine « {name} » n'est pas celui attendu : le fichier doit commencer "
            "par « flux » dans l'espace de noms urn:cdc:cpf:pc5:schema:1.0.0."
        )
    english = _QNAME.sub("", detail)
    return f"« {name} » est refusé par le schéma ({english})."
