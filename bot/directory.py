"""Reference data: certifiers, certifications, training organisations, contacts and partnerships."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.fr import siret as siret_number

from bot.errors import Conflict, InvalidInput, NotFound
from bot.store.models import (
    Certification,
    Certifier,
    Contact,
    Organisation,
    Partnership,
    PartnershipCertification,
)

MATRICULE = re.compile(r"[A-Z0-9]{8}")
CONTRACT = re.compile(r"[A-Z0-9]{1,20}")
CERTIFICATION_CODE = re.compile(r"(RNCP|RS)(\d{1,6})")
LANGUAGES = ("fr", "en")


# ------------------------------------------------------------------ checks


def check_siret(value: str) -> str:
    """Normalise and check a SIRET (14 digits, Luhn key, La Poste exception handled)."""
    compact = siret_number.compact(value)
    try:
        return str(siret_number.validate(compact))
    except StdnumError:
        if not compact.isdigit() or len(compact) != 14:
            raise InvalidInput(
                f"SIRET invalide « {value} » : il faut 14 chiffres (9 du SIREN + 5 du NIC)."
            ) from None
        raise InvalidInput(
            f"SIRET invalide « {value} » : la clé de contrôle ne correspond pas. "
            "Vérifiez les chiffres sur l'avis de situation Sirene."
        ) from None


def check_matricule(value: str) -> str:
    normalised = value.strip().upper()
    if not MATRICULE.fullmatch(normalised):
        raise InvalidInput(
            f"Matricule CDC invalide « {value} » : il compte exactement 8 lettres ou chiffres "
            "(par ex. 12ABC345), tel qu'attribué par la Caisse des Dépôts."
        )
    return normalised


def check_contract(value: str) -> str:
    normalised = value.strip().upper()
    if not CONTRACT.fullmatch(normalised):
        raise InvalidInput(
            f"Numéro de contrat invalide « {value} » : 1 à 20 lettres ou chiffres "
            "(par ex. MCFCER000123)."
        )
    return normalised


def check_certification_code(value: str) -> tuple[str, str]:
    """Return (type, code) for an RNCP or RS code such as « RNCP34567 » or « rs 5875 »."""
    normalised = re.sub(r"\s+", "", value).upper()
    match = CERTIFICATION_CODE.fullmatch(normalised)
    if match is None:
        raise InvalidInput(
            f"Code de certification invalide « {value} » : attendu RNCP suivi de chiffres "
            "(par ex. RNCP34567) ou RS suivi de chiffres (par ex. RS5875)."
        )
    return match.group(1), normalised


def check_email(value: str) -> str:
    try:
        return str(validate_email(value.strip(), check_deliverability=False).normalized)
    except EmailNotValidError as error:
        raise InvalidInput(f"Adresse électronique invalide « {value} » : {error}") from None


def check_language(value: str) -> str:
    if value not in LANGUAGES:
        raise InvalidInput(f"Langue invalide « {value} » : choisissez fr ou en.")
    return value


def check_name(value: str, what: str) -> str:
    cleaned = " ".join(value.split())
    if not cleaned or len(cleaned) > 200:
        raise InvalidInput(f"{what} : indiquez un nom de 1 à 200 caractères.")
    return cleaned


# ---------------------------------------------------------------- lookups


def _by_id_or_siret(reference: str) -> tuple[int | None, str | None]:
    compact = reference.replace(" ", "")
    if compact.isdigit() and len(compact) == 14:
        return None, compact
    if compact.isdigit():
        return int(compact), None
    raise InvalidInput(f"« {reference} » n'est ni un identifiant numérique ni un SIRET.")


def find_certifier(session: Session, reference: str) -> Certifier:
    ident, siret = _by_id_or_siret(reference)
    query = select(Certifier).options(selectinload(Certifier.certifications))
    query = query.where(Certifier.id == ident) if ident else query.where(Certifier.siret == siret)
    certifier = session.scalars(query).one_or_none()
    if certifier is None:
        raise NotFound(
            f"Certificateur « {reference} » introuvable. "
            "`cordee certifier list` affiche les certificateurs enregistrés."
        )
    return certifier


def find_organisation(session: Session, reference: str) -> Organisation:
    ident, siret = _by_id_or_siret(reference)
    query = select(Organisation).options(selectinload(Organisation.contacts))
    query = (
        query.where(Organisation.id == ident) if ident else query.where(Organisation.siret == siret)
    )
    organisation = session.scalars(query).one_or_none()
    if organisation is None:
        raise NotFound(
            f"Organisme de formation « {reference} » introuvable. "
            "`cordee organisation list` affiche les organismes enregistrés."
        )
    return organisation


def find_partnership(
    session: Session, certifier: Certifier, organisation: Organisation
) -> Partnership:
    partnership = session.scalars(
        select(Partnership)
        .where(
            Partnership.certifier_id == certifier.id,
            Partnership.organisation_id == organisation.id,
        )
        .options(
            selectinload(Partnership.certifications).selectinload(
                PartnershipCertification.certification
            )
        )
    ).one_or_none()
    if partnership is None:
        raise NotFound(
            f"Aucun partenariat entre « {certifier.name} » et « {organisation.name} ». "
            "Créez-le avec `cordee partnership add`."
        )
    return partnership


# ---------------------------------------------------------------- creation


@dataclass(frozen=True)
class NewCertifier:
    name: str
    siret: str
    matricule: str
    contract: str
    language: str = "fr"
    contact_email: str = ""


def add_certifier(session: Session, new: NewCertifier, now: datetime) -> Certifier:
    siret = check_siret(new.siret)
    if session.scalar(select(Certifier.id).where(Certifier.siret == siret)) is not None:
        raise Conflict(f"Un certificateur avec le SIRET {siret} existe déjà.")
    certifier = Certifier(
        name=check_name(new.name, "Nom du certificateur"),
        siret=siret,
        cdc_matricule=check_matricule(new.matricule),
        contract_number=check_contract(new.contract),
        contact_email=check_email(new.contact_email) if new.contact_email else "",
        language=check_language(new.language),
        created_at=now,
    )
    session.add(certifier)
    session.flush()
    return certifier


def add_certification(
    session: Session, code: str, title: str, certifier_refs: Sequence[str]
) -> Certification:
    """Create a certification (or add co-certifiers to an existing one)."""
    kind, normalised = check_certification_code(code)
    certifiers = [find_certifier(session, ref) for ref in certifier_refs]
    certification = session.scalars(
        select(Certification).where(Certification.code == normalised)
    ).one_or_none()
    if certification is None:
        certification = Certification(
            type=kind, code=normalised, title=check_name(title, "Intitulé de la certification")
        )
        session.add(certification)
    for certifier in certifiers:
        if certification not in certifier.certifications:
            certifier.certifications.append(certification)
    session.flush()
    return certification


def add_organisation(session: Session, name: str, siret: str, now: datetime) -> Organisation:
    checked = check_siret(siret)
    if session.scalar(select(Organisation.id).where(Organisation.siret == checked)) is not None:
        raise Conflict(f"Un organisme avec le SIRET {checked} existe déjà.")
    organisation = Organisation(
        name=check_name(name, "Nom de l'organisme"), siret=checked, created_at=now
    )
    session.add(organisation)
    session.flush()
    return organisation


def add_contact(
    session: Session,
    organisation: Organisation,
    email: str,
    name: str,
    language: str,
    now: datetime,
) -> Contact:
    address = check_email(email)
    if any(contact.email == address for contact in organisation.contacts):
        raise Conflict(f"Le contact {address} existe déjà pour « {organisation.name} ».")
    contact = Contact(
        email=address,
        name=" ".join(name.split())[:200],
        language=check_language(language),
        undeliverable=False,
        created_at=now,
    )
    organisation.contacts.append(contact)
    session.flush()
    return contact


def add_partnership(
    session: Session,
    certifier: Certifier,
    organisation: Organisation,
    codes: Sequence[str],
    now: datetime,
) -> Partnership:
    if not codes:
        raise InvalidInput("Indiquez au moins une certification (--certification CODE).")
    owned = {certification.code: certification for certification in certifier.certifications}
    chosen = []
    for code in codes:
        _, normalised = check_certification_code(code)
        if normalised not in owned:
            raise InvalidInput(
                f"« {certifier.name} » ne délivre pas la certification {normalised} "
                f"(certifications enregistrées : {', '.join(sorted(owned)) or 'aucune'})."
            )
        chosen.append(owned[normalised])
    existing = session.scalars(
        select(Partnership).where(
            Partnership.certifier_id == certifier.id,
            Partnership.organisation_id == organisation.id,
        )
    ).one_or_none()
    partnership = existing or Partnership(
        certifier_id=certifier.id, organisation_id=organisation.id, created_at=now
    )
    if existing is None:
        session.add(partnership)
    covered = {link.certification_id for link in partnership.certifications}
    for certification in chosen:
        if certification.id not in covered:
            partnership.certifications.append(
                PartnershipCertification(certification_id=certification.id, sharing_enabled=False)
            )
    session.flush()
    return partnership
