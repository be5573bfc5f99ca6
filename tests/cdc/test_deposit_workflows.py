"""The CDC batch and deposit-deadline workflows: diagrams, states, and every message rendered."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.fsm import mermaid, step
from bot.render import LANGUAGES, default_renderer
from workflows import DEFAULT_WORKFLOWS, cdc_batch, cdc_deposit

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("workflow", [cdc_batch.WORKFLOW, cdc_deposit.WORKFLOW])
def test_the_committed_diagram_matches_the_declaration(workflow: Any) -> None:
    committed = (ROOT / "workflows" / f"{workflow.name}.mmd").read_text(encoding="utf-8")
    assert committed == mermaid(workflow), "regenerate with `cordee workflows show NAME --mermaid`"
    assert DEFAULT_WORKFLOWS[workflow.name] is workflow


def test_batches_follow_the_deposit_states() -> None:
    workflow = cdc_batch.WORKFLOW
    state = workflow.initial
    for event in ("deposit", "acknowledge", "remind", "process_ko"):
        state = step(workflow, state, event, {}).target
    assert state == "processed_ko"
    assert step(workflow, "deposited", "process_ok", {}).target == "processed_ok"
    assert workflow.terminal == {"processed_ok", "processed_ko", "rejected", "cancelled"}
    assert {(t.state, t.after.days) for t in workflow.timers} == {
        ("deposited", 7),
        ("deposited", 14),
        ("acknowledged", 7),
        ("acknowledged", 14),
    }


def context(**data: Any) -> dict[str, Any]:
    holders = [
        {
            "reference": "DC-7KQ2M9XP4R",
            "folder_number": "F-1",
            "holder": "Zoé <b>PETIT</b>",
            "certification": "RNCP34567",
            "deadline": {"fr": "10 juin 2026", "en": "10 June 2026"},
            "message": "Aucun titulaire ne correspond aux critères obligatoires",
        }
    ]
    return {
        "reference": "LD-7KQ2M9XP4R",
        "state": "deposited",
        "recipient_name": "Certif",
        "links": {},
        "created_at": NOW,
        "now": NOW,
        "deadline": None,
        "public_url": "https://cordee.example.fr",
        "data": {
            "certifier_name": "Certif <script>",
            "file_name": "cordee-12ABC345-20261123-100000-01.xml",
            "id_flux": "6e3c7378-bda4-497a-9bd6-dc203f903ed9",
            "passages": 3,
            "deposited_on": {"fr": "23 novembre 2026", "en": "23 November 2026"},
            "id_traitement": "51354",
            "ok": 2,
            "ko": 1,
            "unknown": 1,
            "ko_list": holders,
            "count": 1,
            "holders": holders,
            "more": 0,
            **data,
        },
    }


MESSAGES = sorted(cdc_batch.WORKFLOW.templates | cdc_deposit.WORKFLOW.templates)


def test_every_message_is_declared() -> None:
    assert len(MESSAGES) == 3 + 3


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", MESSAGES)
def test_every_message_renders_safely(template: str, language: str) -> None:
    for data in ({}, {"more": 12, "unknown": 0}):
        message = default_renderer().message(template, language, context(**data))
        assert message.subject
        assert "\n" not in message.subject
        for part in (message.subject, message.text, message.html):
            assert "{{" not in part
            assert "{%" not in part
        assert "<script>" not in message.html
        assert "<b>PETIT</b>" not in message.html
        assert f'lang="{language}"' in message.html
        if template.startswith("cdc_deposit") or template.endswith("processed_ko"):
            assert "F-1" in message.text
        if data.get("more"):
            assert "12" in message.text or "processed_ok" in template or "no_report" in template
