"""`cordee reply parse`: JSON shape, French summary and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.reply_cli import reply_group

CORPUS = Path(__file__).resolve().parents[1] / "data" / "replies"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(reply_group, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_the_group_is_named_reply() -> None:
    assert reply_group.name == "reply"


def test_json_of_an_authorising_reply() -> None:
    code, out, _ = run("parse", str(CORPUS / "gmail-fr-oui.eml"), "--json")
    assert code == 0
    data = json.loads(out)
    assert {"decision", "auto_reply", "bounce", "text"} <= data.keys()
    assert data["decision"] == "authorise"
    assert data["auto_reply"] is False
    assert data["bounce"] is False
    assert data["text"] == "Oui"
    assert data["reason"] == "clear"
    assert data["in_reply_to"] == ["<DA-7KQ2M9XP4R.request@cordee.example.org>"]


@pytest.mark.parametrize(
    ("name", "decision", "auto_reply", "bounce"),
    [
        ("gmail-fr-non-merci", "refuse", False, False),
        ("question-obligatoire", None, False, False),
        ("auto-reply-rfc3834-fr", None, True, False),
        ("bounce-dsn-permanent", None, False, True),
    ],
)
def test_json_verdicts(name: str, decision: str | None, auto_reply: bool, bounce: bool) -> None:
    code, out, _ = run("parse", str(CORPUS / f"{name}.eml"), "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["decision"], data["auto_reply"], data["bounce"]) == (decision, auto_reply, bounce)


def test_bounce_details_in_json() -> None:
    code, out, _ = run("parse", str(CORPUS / "bounce-dsn-permanent.eml"), "--json")
    data = json.loads(out)
    assert code == 0
    assert data["bounce_permanent"] is True
    assert data["bounced_recipient"] == "claire.martin@formations-sud.example.fr"


def test_human_summary_is_french() -> None:
    code, out, _ = run("parse", str(CORPUS / "iphone-fr-oui.eml"))
    assert code == 0
    assert out.startswith("Décision : autoriser")
    assert "Texte retenu :" in out
    code, out, _ = run("parse", str(CORPUS / "condition-oui-si.eml"))
    assert code == 0
    assert out.startswith("Décision : aucune (condition, réserve ou hésitation)")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "n'existe pas"),
        ("directory", "est un dossier"),
        (b"", "vide"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "pas un message"),
        (b"juste une ligne de texte\net une autre\n", "pas un message"),
    ],
)
def test_unreadable_files_exit_2_with_one_french_line(
    tmp_path: Path, content: bytes | str | None, fragment: str
) -> None:
    target = tmp_path / "reponse.eml"
    if content == "directory":
        target.mkdir()
    elif isinstance(content, bytes):
        target.write_bytes(content)
    code, out, err = run("parse", str(target), "--json")
    assert code == 2
    assert out == ""
    assert err.startswith("Erreur : ")
    assert fragment in err
    assert len(err.strip().splitlines()) == 1


def test_a_minimal_message_is_parseable(tmp_path: Path) -> None:
    target = tmp_path / "minimal.eml"
    target.write_bytes(b"From: a@example.org\r\nSubject: Re: demande\r\n\r\nOK\r\n")
    code, out, _ = run("parse", str(target), "--json")
    assert code == 0
    assert json.loads(out)["decision"] == "authorise"
