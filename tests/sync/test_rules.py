"""The sharing rules, pure: allow-list, row checks, shared states and what a folder becomes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from bot.sync.files import RejectedFile, layout_of
from bot.sync.rules import (
    ALLOWED_FIELDS,
    CANCELLED_STATES,
    EARLY_STATES,
    REFUSED_STATES,
    SHARED_STATES,
    Field,
    Known,
    RawFolder,
    RowError,
    TrainingFolder,
    Verdict,
    decide,
    exit_event,
    parse,
    parse_date,
    restrict,
)

VALID = {
    Field.FOLDER_NUMBER: "4021-0001",
    Field.LAST_NAME: "Martin",
    Field.FIRST_NAME: "Claire",
    Field.EMAIL: "claire@example.org",
    Field.PHONE: "06 12 34 56 78",
    Field.CERTIFICATION_CODE: "rncp 34567",
    Field.SESSION_START: "01/09/2026",
    Field.SESSION_END: "2026-11-30",
    Field.STATE: "Accepté",
    Field.STATE_DATE: "15/08/2026",
}


def folder(**changes: object) -> TrainingFolder:
    result = parse(RawFolder(2, {**VALID, **changes}))  # type: ignore[dict-item]
    assert isinstance(result, TrainingFolder), result
    return result


def error(**changes: object) -> RowError:
    result = parse(RawFolder(7, {**VALID, **changes}))  # type: ignore[dict-item]
    assert isinstance(result, RowError), result
    return result


def test_a_valid_row_is_normalised() -> None:
    parsed = folder()
    assert parsed.folder_number == "4021-0001"
    assert parsed.certification_code == "RNCP34567"
    assert parsed.phone == "0612345678"
    assert parsed.session_start == date(2026, 9, 1)
    assert parsed.session_end == date(2026, 11, 30)
    assert parsed.state == "accepted"
    assert parsed.state_on == date(2026, 8, 15)


def test_only_the_allow_list_passes() -> None:
    raw = {
        **VALID,
        "price": "1 490,00",
        "funding_amount": "1200",
        "billing_state": "paid",
        "notes": "ne pas relancer",
    }
    assert set(restrict(raw)) == set(VALID)
    assert set(ALLOWED_FIELDS) == {
        "folder_number",
        "last_name",
        "first_name",
        "email",
        "phone",
        "certification_code",
        "session_start",
        "session_end",
        "state",
        "state_date",
        "updated_at",
    }
    assert not {"price", "notes", "billing_state"} & set(TrainingFolder.__slots__)


@pytest.mark.parametrize(
    ("label", "state"),
    [
        ("Accepté", "accepted"),
        ("ACCEPTE", "accepted"),
        ("accepted", "accepted"),
        ("En formation", "inTraining"),
        ("IN_TRAINING", "inTraining"),
        ("Sortie de formation", "terminated"),
        ("Service fait déclaré", "serviceDoneDeclared"),
        ("serviceDoneValidated", "serviceDoneValidated"),
        ("Annulé par le titulaire", "canceledByAttendee"),
        ("Refusé par l'organisme", "refusedByOrganism"),
        ("Non traité", "notProcessed"),
    ],
)
def test_states_are_read_from_french_labels_and_wedof_codes(label: str, state: str) -> None:
    assert folder(**{Field.STATE: label}).state == state


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("23/11/2026", date(2026, 11, 23)),
        ("3/1/2026", date(2026, 1, 3)),
        ("2026-11-23", date(2026, 11, 23)),
        ("2026-11-23T10:00:00+01:00", date(2026, 11, 23)),
        ("23/11/2026 08:30", date(2026, 11, 23)),
        ("31/02/2026", None),
        ("23/11/26", None),
        ("demain", None),
        ("2026-13-01", None),
    ],
)
def test_dates(text: str, expected: date | None) -> None:
    assert parse_date(text) == expected


def test_every_problem_of_a_row_is_named_without_personal_data() -> None:
    problem = error(
        **{
            Field.FIRST_NAME: "",
            Field.SESSION_START: "31/02/2026",
            Field.STATE: "Presque fini",
            Field.EMAIL: "claire-at-example",
        }
    )
    assert problem.line == 7
    assert problem.folder_number == "4021-0001"
    assert "prénom manquant" in problem.message
    assert "date de début « 31/02/2026 » invalide" in problem.message
    assert "état « Presque fini » inconnu" in problem.message
    assert "adresse électronique invalide" in problem.message
    assert "claire-at-example" not in problem.message
    assert problem.describe().startswith("ligne 7 (dossier 4021-0001) : ")


def test_dates_must_be_in_order_and_codes_well_formed() -> None:
    assert "antérieure" in error(**{Field.SESSION_END: "01/08/2026"}).message
    assert "RNCP34567 ou RS5875" in error(**{Field.CERTIFICATION_CODE: "BTS-42"}).message
    assert "numéro de dossier manquant" in error(**{Field.FOLDER_NUMBER: " "}).message


def test_spreadsheet_values_are_read_typed() -> None:
    parsed = folder(
        **{
            Field.FOLDER_NUMBER: 4021.0,
            Field.SESSION_START: datetime(2026, 9, 1),  # noqa: DTZ001 - as openpyxl gives it
            Field.SESSION_END: date(2026, 11, 30),
            Field.UPDATED_AT: "2026-11-20T08:00:00Z",
        }
    )
    assert parsed.folder_number == "4021"
    assert parsed.session_start == date(2026, 9, 1)
    assert parsed.updated_at == datetime(2026, 11, 20, 8, tzinfo=UTC)


SHARED = {"RNCP34567"}


@pytest.mark.parametrize("state", SHARED_STATES)
def test_accepted_or_later_folders_are_shared(state: str) -> None:
    assert decide(folder(**{Field.STATE: state}), None, SHARED).verdict is Verdict.CREATE


@pytest.mark.parametrize("state", EARLY_STATES + REFUSED_STATES + CANCELLED_STATES)
def test_other_folders_are_not_shared(state: str) -> None:
    assert decide(folder(**{Field.STATE: state}), None, SHARED).verdict is Verdict.IGNORE


def test_only_covered_certifications_are_shared() -> None:
    assert decide(folder(), None, {"RS5875"}).verdict is Verdict.IGNORE


def test_a_known_folder_is_updated_only_when_it_changed() -> None:
    parsed = folder()
    same = Known(parsed.fingerprint, "toRegister")
    assert decide(parsed, same, SHARED).verdict is Verdict.UNCHANGED
    moved = folder(**{Field.STATE: "En formation"})
    assert decide(moved, same, SHARED) == decide(moved, same, SHARED)
    assert decide(moved, same, SHARED).verdict is Verdict.UPDATE
    assert decide(moved, same, SHARED).event is None


def test_a_shared_folder_later_cancelled_or_refused_closes_its_certification_folder() -> None:
    known = Known("old", "toRegister")
    cancelled = decide(folder(**{Field.STATE: "canceledByAttendee"}), known, SHARED)
    assert (cancelled.verdict, cancelled.event) == (Verdict.UPDATE, "abort")
    refused = decide(folder(**{Field.STATE: "refusedByFinancer"}), known, SHARED)
    assert refused.event == "refuse"
    # Past registration, a refusal reads as an abandonment; a result stays.
    assert exit_event("toTake", "refusedByOrganism") == "abort"
    assert exit_event("success", "canceledByOrganism") is None
    assert exit_event("aborted", "canceledByOrganism") is None


def test_headers_are_matched_whatever_the_accents_and_case() -> None:
    layout = layout_of(
        [
            "N° DU DOSSIER",
            "nom",
            "Prenom",
            "Code de la certification",
            "Etat du dossier",
            "Prix TTC",
            "Notes internes",
            "Couleur préférée",
            "",
        ]
    )
    assert set(layout.columns.values()) == {
        Field.FOLDER_NUMBER,
        Field.LAST_NAME,
        Field.FIRST_NAME,
        Field.CERTIFICATION_CODE,
        Field.STATE,
    }
    assert layout.not_shared == ("Prix TTC", "Notes internes")
    assert layout.unknown == ("Couleur préférée",)


def test_missing_required_columns_are_named() -> None:
    with pytest.raises(RejectedFile) as raised:
        layout_of(["N° du dossier", "Nom", "Certification"])
    assert "« Prénom », « État »" in str(raised.value)
