"""Data builders: a certifier with a partner organisation, ready for an access request."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from bot.directory import (
    NewCertifier,
    add_certification,
    add_certifier,
    add_contact,
    add_organisation,
    add_partnership,
)
from bot.store.db import Database

# Real-format SIRETs with valid Luhn keys (fictitious organisations).
CERTIFIER_SIRET = "73282932000074"
ORGANISATION_SIRET = "44306184100047"
OTHER_SIRET = "55208131766522"
SECOND_ORGANISATION_SIRET = "44306184100005"


@dataclass(frozen=True)
class Seed:
    certifier_id: int
    organisation_id: int
    partnership_id: int
    contact_email: str
    codes: tuple[str, ...]


def seed_partnership(
    db: Database,
    *,
    now: object,
    contact_email: str = "claire.martin@formations-sud.example",
    contact_language: str = "fr",
    with_contact: bool = True,
    certifier_siret: str = CERTIFIER_SIRET,
    organisation_siret: str = ORGANISATION_SIRET,
    codes: tuple[str, ...] = ("RNCP34567", "RS5875"),
) -> Seed:
    from datetime import datetime

    assert isinstance(now, datetime)

    def work(session: Session) -> Seed:
        certifier = add_certifier(
            session,
            NewCertifier(
                "Certif & Co",
                certifier_siret,
                "12ABC345",
                "MCFCER000123",
                contact_email="partenariats@certif.example",
            ),
            now,
        )
        titles = {"RNCP34567": "Développeur web et web mobile", "RS5875": "Gestion de projet agile"}
        for code in codes:
            add_certification(
                session, code, titles.get(code, f"Certification {code}"), [str(certifier.id)]
            )
        organisation = add_organisation(session, "Formations <Sud>", organisation_siret, now)
        if with_contact:
            add_contact(
                session, organisation, contact_email, "Claire Martin", contact_language, now
            )
        session.refresh(certifier)
        partnership = add_partnership(session, certifier, organisation, list(codes), now)
        return Seed(certifier.id, organisation.id, partnership.id, contact_email, codes)

    return db.run_sync(work)
