"""The certification-folder and partner-sync workflows: declarations, diagrams and messages."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.fsm import mermaid, step
from bot.render import LANGUAGES, default_renderer
from workflows import DEFAULT_WORKFLOWS, certification_folder, partner_sync

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("workflow", [certification_folder.WORKFLOW, partner_sync.WORKFLOW])
def test_the_committed_diagram_matches_the_declaration(workflow: Any) -> None:
    committed = (ROOT / "workflows" / f"{workflow.name}.mmd").read_text(encoding="utf-8")
    assert committed == mermaid(workflow)
    assert DEFAULT_WORKFLOWS[workflow.name] is workflow


def test_certification_folders_follow_wedof_states() -> None:
    workflow = certification_folder.WORKFLOW
    state = workflow.initial
    assert state == "toRegister"
    for event in ("register", "take", "control", "retake", "take", "control", "success"):
        state = step(workflow, state, event, {}).target
    assert state == "success"
    assert workflow.terminal == {"success", "failed", "refused", "aborted"}
    assert certification_folder.event_towards("toControl", "failed") == "fail"
    assert certification_folder.event_towards("toRegister", "success") is None


def test_only_results_send_messages_and_failures_are_told_once() -> None:
    sending = {t.event for t in certification_folder.WORKFLOW.transitions if t.effects}
    assert sending == {"success", "fail"}
    again = step(partner_sync.WORKFLOW, "failing", "fail", {})
    assert (again.target, again.effects) == ("failing", ())
    first = step(partner_sync.WORKFLOW, "healthy", "fail", {})
    assert {effect.to for effect in first.effects} == {"partner_contact", "certifier_staff"}


def context(**data: Any) -> dict[str, Any]:
    return {
        "reference": "DC-7KQ2M9XP4R",
        "state": "success",
        "recipient_name": "Claire Martin",
        "links": {},
        "created_at": NOW,
        "now": NOW,
        "deadline": None,
        "public_url": "https://cordee.example.fr",
        "data": {
            "certifier_name": "Certif <script>",
            "certifier_contact_email": "partenariats@certif.example",
            "organisation_name": "Formations & Co",
            "contact_id": 1,
            "folder_number": "4021-0001",
            "attendee_name": "Zoé Petit",
            "certification": {"code": "RNCP34567", "title": "Développeur web"},
            "tally": {"success": 3, "failed": 1},
            "failure": {"kind": "credentials", "detail": "HTTP 401"},
            "manage_url": "https://cordee.example.fr/lien/MANAGE-TOKEN",
            "sharing_change": {"code": "RS5875", "title": "Agile", "by": "organisation"},
            **data,
        },
    }


MESSAGES = sorted(certification_folder.WORKFLOW.templates | partner_sync.WORKFLOW.templates)


def test_every_message_is_declared() -> None:
    assert len(MESSAGES) == 4 + 9


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", MESSAGES)
def test_every_message_renders_safely(template: str, language: str) -> None:
    for data in ({}, {"certifier_contact_email": ""}, {"failure": {"kind": "x", "detail": "d"}}):
        message = default_renderer().message(template, language, context(**data))
        assert message.subject
        assert "\n" not in message.subject
        for part in (message.subject, message.text, message.html):
            assert "{{" not in part
            assert "{%" not in part
        assert "<script>" not in message.html
        assert "DC-7KQ2M9XP4R" in message.text
        assert f'lang="{language}"' in message.html
        if (
            "/partner/" in template
            and template.startswith("partner_sync")
            and "recovered" not in template
        ):
            assert "https://cordee.example.fr/lien/MANAGE-TOKEN" in message.text
            assert 'href="https://cordee.example.fr/lien/MANAGE-TOKEN"' in message.html


def test_the_credentials_mail_says_what_failed_and_what_to_do() -> None:
    render = default_renderer().message
    refused = render("partner_sync/partner/failing", "fr", context())
    assert "votre service a refusé la clé d'API enregistrée" in refused.text
    assert "saisissez-y votre clé d'API actuelle" in refused.text
    assert "Vous ne recevrez pas d'autre message à ce sujet" in refused.text
    down = render(
        "partner_sync/partner/failing",
        "en",
        context(failure={"kind": "unavailable", "detail": "no answer in 30 s"}),
    )
    assert "your service does not answer (no answer in 30 s)" in down.text


def test_the_staff_count_results() -> None:
    message = default_renderer().message("certification_folder/staff/failed", "fr", context())
    assert "Bilan RNCP34567 à ce jour : 3 réussite(s), 1 échec(s)." in message.text
