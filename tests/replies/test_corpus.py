"""The reply corpus: every message gets exactly its expected verdict, never the wrong direction."""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bot.replies import ParsedReply, parse_message

CORPUS = Path(__file__).resolve().parents[1] / "data" / "replies"
EXPECTED: dict[str, dict[str, Any]] = tomllib.loads(
    (CORPUS / "expected.toml").read_text(encoding="utf-8")
)
KNOWN_KEYS = {"decision", "auto_reply", "bounce", "contains", "bounce_permanent"}
KNOWN_KEYS |= {"bounced_recipient"}


def parse(name: str) -> ParsedReply:
    return parse_message((CORPUS / f"{name}.eml").read_bytes())


def verdict(reply: ParsedReply) -> str:
    return reply.decision or "none"


def test_the_corpus_is_big_enough_and_fully_described() -> None:
    files = {path.stem for path in CORPUS.glob("*.eml")}
    assert len(files) >= 40
    assert sorted(files - EXPECTED.keys()) == [], "messages missing from expected.toml"
    assert sorted(EXPECTED.keys() - files) == [], "expected.toml names messages that do not exist"
    for name, expected in EXPECTED.items():
        assert set(expected) <= KNOWN_KEYS, name
        assert expected["decision"] in {"authorise", "refuse", "none"}, name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_message_gets_its_expected_verdict(name: str) -> None:
    expected = EXPECTED[name]
    reply = parse(name)
    assert verdict(reply) == expected["decision"], reply.reason.label
    assert reply.auto_reply is expected.get("auto_reply", False)
    assert reply.bounce is expected.get("bounce", False)
    if "contains" in expected:
        assert expected["contains"] in reply.text
    if "bounce_permanent" in expected:
        assert reply.bounce_permanent is expected["bounce_permanent"]
    if "bounced_recipient" in expected:
        assert reply.bounced_recipient == expected["bounced_recipient"]
    if reply.auto_reply or reply.bounce:
        assert reply.decision is None


def test_zero_wrong_direction_decisions_on_the_whole_corpus() -> None:
    """The worst outcome is acting the opposite way: listed here one by one if it ever happens."""
    wrong = []
    tally: Counter[str] = Counter()
    for name, expected in sorted(EXPECTED.items()):
        got = verdict(parse(name))
        tally[got] += 1
        if {got, expected["decision"]} == {"authorise", "refuse"}:
            wrong.append(f"{name}: expected {expected['decision']}, got {got}")
    assert wrong == [], f"{len(wrong)} wrong-direction decision(s): " + "; ".join(wrong)
    assert tally["authorise"] > 0
    assert tally["refuse"] > 0


def test_the_corpus_covers_the_encodings_and_shapes_asked_for() -> None:
    raw = b"\n".join(path.read_bytes().lower() for path in CORPUS.glob("*.eml"))
    for needle in (
        b'charset="iso-8859-1"',
        b'charset="windows-1252"',
        b"content-transfer-encoding: quoted-printable",
        b"content-transfer-encoding: base64",
        b"multipart/alternative",
        b"report-type=delivery-status",
        b"auto-submitted: auto-replied",
        b"x-auto-response-suppress",
        b"in-reply-to:",
    ):
        assert needle in raw, needle
    html_only = [
        name
        for name in EXPECTED
        if b"content-type: text/html" in (CORPUS / f"{name}.eml").read_bytes().lower()
        and b"text/plain" not in (CORPUS / f"{name}.eml").read_bytes().lower()
    ]
    assert len(html_only) >= 3


def test_personal_data_stays_out_of_the_repr() -> None:
    reply = parse("disclaimer-fr-autorise-non")
    shown = repr(reply)
    assert "authorise" in shown
    assert "@" not in shown
    assert "Karim" not in shown
    assert "Oui" not in shown
