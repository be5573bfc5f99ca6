"""Checks on what people type: SIRET, CDC matricule, contract, certification codes, emails."""

from __future__ import annotations

import pytest

from bot.directory import (
    check_certification_code,
    check_contract,
    check_email,
    check_matricule,
    check_siret,
)
from bot.errors import InvalidInput


def test_a_valid_siret_is_normalised() -> None:
    assert check_siret("732 829 320 00074") == "73282932000074"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("73282932000075", "clé de contrôle"),
        ("7328293200007", "14 chiffres"),
        ("7328293200007A", "14 chiffres"),
    ],
)
def test_an_invalid_siret_says_why(value: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        check_siret(value)


def test_la_poste_sirets_follow_their_own_rule() -> None:
    # La Poste establishments (SIREN 356000000) use a digit-sum rule instead of Luhn.
    assert check_siret("35600000000048") == "35600000000048"


def test_matricule_is_exactly_eight_letters_or_digits() -> None:
    assert check_matricule("12abc345") == "12ABC345"
    for wrong in ("12ABC34", "12ABC3456", "12-BC345"):
        with pytest.raises(InvalidInput, match="exactement 8"):
            check_matricule(wrong)


def test_contract_number() -> None:
    assert check_contract("mcfcer000123") == "MCFCER000123"
    with pytest.raises(InvalidInput, match="1 à 20"):
        check_contract("X" * 21)


def test_certification_codes() -> None:
    assert check_certification_code("rncp 34567") == ("RNCP", "RNCP34567")
    assert check_certification_code("RS5875") == ("RS", "RS5875")
    with pytest.raises(InvalidInput, match="RNCP suivi de chiffres"):
        check_certification_code("CQP123")


def test_email_addresses() -> None:
    assert check_email(" claire@Example.ORG ") == "claire@example.org"
    with pytest.raises(InvalidInput, match="Adresse électronique invalide"):
        check_email("claire.example.org")
