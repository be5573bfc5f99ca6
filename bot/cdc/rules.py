"""The CDC rules an XSD cannot express, checked on one element at a time (pure functions)."""

from __future__ import annotations

import re
from calendar import monthrange
from datetime import datetime, timedelta
from typing import NamedTuple, cast

from lxml import etree

from bot.cdc.outcome import Code

NS = "urn:cdc:cpf:pc5:schema:1.0.0"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSI_NIL = f"{{{XSI}}}nil"

MAX_PASSAGES = 200_000
"""Passages per file accepted by the CDC (official FAQ)."""
MAX_FILE_BYTES = 200_000_000
"""200 Mo per file; the decimal reading is the stricter one, so the safe one."""
HORODATAGE_TOLERANCE = timedelta(minutes=5)
"""Clock skew allowed between the machine that wrote the file and ours."""

NIR = re.compile(r"[12][0-9]{4}(?:2[AB]|[0-9]{2})[0-9]{6}")
_ISO_DATE = re.compile(r"(19|20)[0-9]{2}-[0-9]{2}-[0-9]{2}")
_HORODATAGE = re.compile(
    r"(?P<stamp>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.[0-9]+)?"
    r"(?P<offset>Z|[+-][0-9]{2}:[0-9]{2})?"
)
_INT = re.compile(r"[0-9]{1,4}")
_TRUE = frozenset({"true", "1"})


def q(name: str) -> str:
    """Clark notation of a CDC element name."""
    return f"{{{NS}}}{name}"


class Hit(NamedTuple):
    """A broken rule: the element to point at, the code, the French message."""

    element: etree._Element
    code: Code
    message: str


# Children of passageCertification the rules read, by qualified tag.
_ID = q("idTechnique")
_OBTENTION = q("obtentionCertification")
_SCORING = q("scoring")
_DEBUT_VALIDITE = q("dateDebutValidite")
_FIN_VALIDITE = q("dateFinValidite")
_DEBUT_EXAMEN = q("dateDebutExamen")
_FIN_EXAMEN = q("dateFinExamen")
_PRESENCE_LANGUE = q("presenceNiveauLangueEuro")
_NIVEAU_LANGUE = q("niveauLangueEuropeen")
_PRESENCE_NUMERIQUE = q("presenceNiveauNumeriqueEuro")
_NIVEAU_NUMERIQUE = q("niveauNumeriqueEuropeen")
_IDENTIFICATION = q("identificationTitulaire")
_TITULAIRE = q("titulaire")
_IDENTIFIANT_NATIONAL = q("identifiantNational")
_NIR = q("nir")
_ANNEE = q("anneeNaissance")
_MOIS = q("moisNaissance")
_JOUR = q("jourNaissance")

PASSAGE_FIELDS = (
    _ID,
    _OBTENTION,
    _SCORING,
    _DEBUT_VALIDITE,
    _FIN_VALIDITE,
    _DEBUT_EXAMEN,
    _FIN_EXAMEN,
    _PRESENCE_LANGUE,
    _NIVEAU_LANGUE,
    _PRESENCE_NUMERIQUE,
    _NIVEAU_NUMERIQUE,
    _IDENTIFICATION,
)


# Batch pre-selection, evaluated in C on the first $n children of a passageCertifications
# element: a cheap superset of the passages that break a rule (about 5 µs a passage, against
# 15 µs for check_passage in Python). check_passage() decides on the few selected.
_NAMESPACES = {"c": NS, "xsi": XSI}


def _maybe_true(name: str) -> str:
    return f"(contains(c:{name},'t') or contains(c:{name},'1'))"


def _before(end: str, start: str) -> str:
    # Dates as numbers (AAAAMMJJ); an absent or nil date gives NaN and compares false.
    return f"translate(c:{end},'-','') < translate(c:{start},'-','')"


_PASSAGE_STEP = "*[position() <= $n][self::c:passageCertification]"
_ALWAYS = (
    f"{_before('dateFinValidite', 'dateDebutValidite')}"
    f" or (c:dateFinExamen and {_before('dateFinExamen', 'dateDebutExamen')})"
    f" or (not(c:niveauLangueEuropeen) and {_maybe_true('presenceNiveauLangueEuro')})"
    f" or (not(c:niveauNumeriqueEuropeen) and {_maybe_true('presenceNiveauNumeriqueEuro')})"
    " or c:identificationTitulaire/c:titulaire/c:jourNaissance > 28"
)

SUSPECT_PASSAGES = etree.XPath(
    f"{_PASSAGE_STEP}["
    "(contains(c:obtentionCertification,'SCORING') and "
    " (c:scoring/@xsi:nil or normalize-space(c:scoring)=''))"
    f" or {_ALWAYS}"
    " or c:identificationTitulaire/c:identifiantNational"
    "]",
    namespaces=_NAMESPACES,
)
"""Passages among the first $n children that may break a rule (never misses one)."""

ID_TEXTS = etree.XPath(
    "*[position() <= $n]/c:idTechnique/text()", namespaces=_NAMESPACES, smart_strings=False
)
"""The idTechnique texts of the first $n children (aligned with them when one each)."""


def _texts(field: str) -> etree.XPath:
    return etree.XPath(
        f"c:passageCertification/{field}/text()", namespaces=_NAMESPACES, smart_strings=False
    )


# Quick look at the values of a whole batch (≈ 0.2 µs a passage each, in C). When every value
# is unremarkable, no passage of the batch can break a rule and SUSPECT_PASSAGES is skipped.
_ALL_DEBUT_VALIDITE = _texts("c:dateDebutValidite")
_ALL_FIN_VALIDITE = _texts("c:dateFinValidite")
_ALL_DEBUT_EXAMEN = _texts("c:dateDebutExamen")
_ALL_FIN_EXAMEN = _texts("c:dateFinExamen")
_PRESENCES = (_texts("c:presenceNiveauLangueEuro"), _texts("c:presenceNiveauNumeriqueEuro"))
_JOURS = _texts("c:identificationTitulaire/c:titulaire/c:jourNaissance")
_OBTENTIONS = _texts("c:obtentionCertification")
_EMPTY_SCORINGS = etree.XPath(
    "c:passageCertification/c:scoring[@xsi:nil or normalize-space(.)='']",
    namespaces=_NAMESPACES,
)
_NIR_ROUTES = etree.XPath(
    "c:passageCertification/c:identificationTitulaire/c:identifiantNational",
    namespaces=_NAMESPACES,
)
_FALSE = frozenset({"false", "0"})
_PLAIN_DAYS = frozenset({str(d) for d in range(1, 29)} | {f"{d:02d}" for d in range(1, 29)})


def _strings(select: etree.XPath, container: etree._Element) -> list[str]:
    return cast(list[str], select(container))


def _in_order(container: etree._Element, start: etree.XPath, end: etree.XPath) -> bool:
    """True when no end date of the batch is before any start date (plain AAAA-MM-JJ)."""
    ends = _strings(end, container)
    if not ends:
        return True
    starts = _strings(start, container)
    if not starts:
        return True
    plain = all(len(v) == 10 for v in ends) and all(len(v) == 10 for v in starts)
    return plain and min(ends) >= max(starts)


def _batch_is_plain(container: etree._Element) -> bool:
    if not _in_order(container, _ALL_DEBUT_VALIDITE, _ALL_FIN_VALIDITE):
        return False
    if not _in_order(container, _ALL_DEBUT_EXAMEN, _ALL_FIN_EXAMEN):
        return False
    for presence in _PRESENCES:
        if not _FALSE.issuperset(_strings(presence, container)):
            return False
    if not _PLAIN_DAYS.issuperset(_strings(_JOURS, container)):
        return False
    obtentions = set(_strings(_OBTENTIONS, container))
    if any("SCORING" in v for v in obtentions) and _EMPTY_SCORINGS(container):
        return False
    return not _NIR_ROUTES(container)


def suspects(container: etree._Element, count: int) -> list[etree._Element]:
    """Passages among the first `count` children of `container` that may break a rule.

    Values are looked at for the whole container first (the unfinished last passage included,
    which can only add false alarms); the passage-by-passage selection runs only when one of
    them is out of the ordinary.
    """
    if _batch_is_plain(container):
        return []
    return cast(list[etree._Element], SUSPECT_PASSAGES(container, n=count))


def id_texts(container: etree._Element, count: int) -> list[str]:
    """The idTechnique texts of the first `count` children of `container`."""
    return cast(list[str], ID_TEXTS(container, n=count))


def line_of(element: etree._Element) -> int:
    """The element's start line (0 when unknown)."""
    return cast(int | None, element.sourceline) or 0


def _nil(element: etree._Element) -> bool:
    return element.get(XSI_NIL) in _TRUE


def _date(element: etree._Element | None) -> str | None:
    """The ISO date text of a non-nil date element, or None when absent or malformed."""
    if element is None:
        return None
    text = element.text
    if text is None or _nil(element):
        return None
    text = text.strip()
    return text if len(text) == 10 and _ISO_DATE.fullmatch(text) else None


def check_passage(passage: etree._Element) -> tuple[str | None, list[Hit]]:
    """The passage's idTechnique (stripped, None if absent) and the rules it breaks."""
    found: dict[object, etree._Element] = {}
    for child in passage.iterchildren(*PASSAGE_FIELDS):
        found.setdefault(child.tag, child)
    hits: list[Hit] = []
    id_element = found.get(_ID)
    id_technique = (id_element.text or "").strip() or None if id_element is not None else None

    obtention = found.get(_OBTENTION)
    if obtention is not None and (obtention.text or "").strip() == "PAR_SCORING":
        scoring = found.get(_SCORING)
        if scoring is not None and (_nil(scoring) or not (scoring.text or "").strip()):
            hits.append(
                Hit(
                    scoring,
                    Code.SCORING_MISSING,
                    "obtentionCertification vaut PAR_SCORING : « scoring » doit donner le score "
                    "obtenu (pas de xsi:nil). Indiquez le score ou passez à PAR_ADMISSION.",
                )
            )

    debut, fin = _date(found.get(_DEBUT_VALIDITE)), _date(found.get(_FIN_VALIDITE))
    if debut and fin and fin < debut:
        hits.append(
            Hit(
                found[_FIN_VALIDITE],
                Code.DATE_VALIDITE_ORDER,
                f"dateFinValidite ({fin}) est antérieure à dateDebutValidite ({debut}) : "
                "corrigez l'une des deux dates (xsi:nil si la certification n'expire pas).",
            )
        )
    debut, fin = _date(found.get(_DEBUT_EXAMEN)), _date(found.get(_FIN_EXAMEN))
    if debut and fin and fin < debut:
        hits.append(
            Hit(
                found[_FIN_EXAMEN],
                Code.DATE_EXAMEN_ORDER,
                f"dateFinExamen ({fin}) est antérieure à dateDebutExamen ({debut}) : "
                "corrigez l'une des deux dates.",
            )
        )

    presence = found.get(_PRESENCE_LANGUE)
    if (
        presence is not None
        and (presence.text or "").strip() in _TRUE
        and _NIVEAU_LANGUE not in found
    ):
        hits.append(
            Hit(
                presence,
                Code.LANGUE_NIVEAU_MISSING,
                "presenceNiveauLangueEuro vaut true mais « niveauLangueEuropeen » est absent : "
                "ajoutez le niveau (A1 à C2 ou INSUFFISANT) ou mettez false.",
            )
        )
    presence = found.get(_PRESENCE_NUMERIQUE)
    if (
        presence is not None
        and (presence.text or "").strip() in _TRUE
        and _NIVEAU_NUMERIQUE not in found
    ):
        hits.append(
            Hit(
                presence,
                Code.NUMERIQUE_NIVEAU_MISSING,
                "presenceNiveauNumeriqueEuro vaut true mais « niveauNumeriqueEuropeen » est "
                "absent : ajoutez le niveau numérique ou mettez false.",
            )
        )

    identification = found.get(_IDENTIFICATION)
    if identification is not None:
        for route in identification.iterchildren(_TITULAIRE, _IDENTIFIANT_NATIONAL):
            hit = _check_birth_date(route) if route.tag == _TITULAIRE else _check_nir(route)
            if hit is not None:
                hits.append(hit)
    return id_technique, hits


def _int_child(parent: etree._Element, tag: str) -> tuple[etree._Element | None, int | None]:
    element = parent.find(tag)
    if element is None or _nil(element):
        return element, None
    text = (element.text or "").strip()
    return element, int(text) if _INT.fullmatch(text) else None


def _check_birth_date(titulaire: etree._Element) -> Hit | None:
    _, year = _int_child(titulaire, _ANNEE)
    _, month = _int_child(titulaire, _MOIS)
    day_element, day = _int_child(titulaire, _JOUR)
    if year is None or month is None or day is None or day_element is None:
        return None
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None  # out of range: the XSD already says so
    last = monthrange(year, month)[1]
    if day <= last:
        return None
    return Hit(
        day_element,
        Code.BIRTH_DATE_INVALID,
        f"La date de naissance {day:02d}/{month:02d}/{year} n'existe pas ({month:02d}/{year} "
        f"compte {last} jours) : corrigez jourNaissance ou moisNaissance.",
    )


def _check_nir(route: etree._Element) -> Hit | None:
    nir = route.find(_NIR)
    if nir is None:
        return None  # the XSD reports the missing element
    value = (nir.text or "").strip()
    if len(value) == 13 and NIR.fullmatch(value):
        return None
    return Hit(
        nir,
        Code.NIR_INVALID,
        "Le NIR doit compter 13 caractères, sans la clé : sexe (1 ou 2), année (2 chiffres), "
        "mois (2 chiffres), département (2 chiffres, ou 2A/2B), commune (3) et rang (3). "
        f"Valeur reçue : {len(value)} caractère(s).",
    )


def check_horodatage(element: etree._Element, now: datetime) -> Hit | None:
    """A numeric UTC offset is required, and the stamp may not be in the future."""
    text = (element.text or "").strip()
    match = _HORODATAGE.fullmatch(text)
    if match is None:
        return None  # not a date-time at all: the XSD explains
    offset = match.group("offset")
    if offset is None or offset == "Z":
        return Hit(
            element,
            Code.HORODATAGE_OFFSET,
            f"horodatage « {text} » doit finir par un décalage horaire numérique, par exemple "
            "+01:00 en hiver ou +02:00 en été (pas de « Z », pas de millisecondes).",
        )
    try:
        stamp = datetime.fromisoformat(match.group("stamp") + offset)
    except ValueError:
        return None  # impossible date: the XSD explains
    if stamp > now + HORODATAGE_TOLERANCE:
        return Hit(
            element,
            Code.HORODATAGE_FUTURE,
            f"horodatage « {text} » est dans le futur : indiquez la date et l'heure de création "
            "du fichier.",
        )
    return None
