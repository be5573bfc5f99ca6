"""Every message referenced by every workflow renders in French and English, safely escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.engine import FAILURE_TEMPLATE
from bot.render import LANGUAGES, default_renderer, format_date, format_datetime
from workflows import DEFAULT_WORKFLOWS

NOW = datetime(2026, 7, 1, 8, 30, tzinfo=UTC)

# The access request's messages share one context; the sync's have theirs in tests/sync.
MESSAGES = sorted(DEFAULT_WORKFLOWS["access_request"].templates)
ENGINE_MESSAGES = [FAILURE_TEMPLATE]


def context(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "reference": "DA-7KQ2M9XP4R",
        "state": "pending",
        "recipient_name": "Claire Martin",
        "public_url": "https://cordee.example.fr",
        "links": {
            "authorise": "https://cordee.example.fr/lien/AUTHORISE-TOKEN",
            "refuse": "https://cordee.example.fr/lien/REFUSE-TOKEN",
            "manage": "https://cordee.example.fr/lien/MANAGE-TOKEN",
        },
        "created_at": NOW,
        "now": NOW,
        "deadline": NOW + timedelta(days=30),
        "data": {
            "certifier_name": "Certif <script>alert(1)</script>",
            "certifier_contact_email": "partenariats@certif.example",
            "organisation_name": "Formations & Co",
            "organisation_siret": "44306184100047",
            "contact_id": 1,
            "certification_ids": [1],
            "certifications": [{"type": "RNCP", "code": "RNCP34567", "title": "Développeur web"}],
        },
    }
    values.update(overrides)
    return values


def test_workflows_reference_messages() -> None:
    assert len(MESSAGES) == 18


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", MESSAGES + ENGINE_MESSAGES)
def test_every_message_renders(template: str, language: str) -> None:
    failure = {
        "failed_address": "x@example.org",
        "failed_subject": "S",
        "failure": "550 <nope>",
        "reply_sender": "paul.durand@formations.example",
    }
    for overrides in ({**failure}, {**failure, "deadline": None, "recipient_name": ""}):
        message = default_renderer().message(template, language, context(**overrides))
        assert message.subject
        assert "\n" not in message.subject
        for part in (message.subject, message.text, message.html):
            assert "{{" not in part
            assert "{%" not in part
        assert "<script>" not in message.html
        assert "DA-7KQ2M9XP4R" in message.text
        assert f'lang="{language}"' in message.html


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_request_offers_both_decisions_and_states_the_conditions(language: str) -> None:
    message = default_renderer().message("access_request/partner/request", language, context())
    for part in (message.text, message.html):
        assert "https://cordee.example.fr/lien/AUTHORISE-TOKEN" in part
        assert "https://cordee.example.fr/lien/REFUSE-TOKEN" in part
        assert "RNCP34567" in part
    text = message.text.lower()
    if language == "fr":
        assert "accepté" in text
        assert "administrati" in text
        assert "rgpd" in text
    else:
        assert "accepted" in text
        assert "administrative" in text
        assert "gdpr" in text
    assert "31 July 2026" in message.text or "31 juillet 2026" in message.text


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_confirmation_of_an_authorisation_offers_the_manage_link(language: str) -> None:
    message = default_renderer().message("access_request/partner/authorised", language, context())
    assert "https://cordee.example.fr/lien/MANAGE-TOKEN" in message.text
    assert "https://cordee.example.fr/lien/MANAGE-TOKEN" in message.html


@pytest.mark.parametrize("language", LANGUAGES)
def test_refusal_confirmation_warns_kindly_and_says_whom_to_contact(language: str) -> None:
    message = default_renderer().message("access_request/partner/refused", language, context())
    assert "condition" in message.text
    assert "partenariats@certif.example" in message.text
    assert 'href="mailto:partenariats@certif.example"' in message.html


def test_dates_are_shown_in_paris_time() -> None:
    summer = datetime(2026, 7, 1, 22, 30, tzinfo=UTC)  # already 2 July in Paris (UTC+2)
    assert format_date(summer, "fr") == "2 juillet 2026"
    assert format_datetime(summer, "fr") == "2 juillet 2026 à 00:30"
    winter = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert format_datetime(winter, "en") == "1 January 2026 at 13:00"
    assert format_date(winter, "fr") == "1er janvier 2026"
