"""Authentication-Results: only our receiving host's DKIM verdict counts."""

from __future__ import annotations

import pytest

from bot.auth_results import dkim_failed, results

TRUSTED = "mx.cordee.example"


def test_methods_and_results_are_read_through_comments_and_quotes() -> None:
    header = (
        "mx.cordee.example 1; dkim=pass (good signature; 2048-bit key) header.d=a.example "
        'header.s="sel;1"; spf=softfail (sender (nested) not listed) smtp.mailfrom=a.example;'
        " dmarc=fail"
    )
    assert results(header) == (
        "mx.cordee.example",
        [("dkim", "pass"), ("spf", "softfail"), ("dmarc", "fail")],
    )


def test_a_header_without_results_names_only_its_host() -> None:
    assert results("mx.cordee.example; none") == ("mx.cordee.example", [])


@pytest.mark.parametrize(
    ("headers", "failed"),
    [
        ([f"{TRUSTED}; dkim=fail header.d=a.example"], True),
        ([f"{TRUSTED.upper()}; DKIM=Fail"], True),
        ([f"{TRUSTED}; dkim=permerror (bad key)"], True),
        ([f"{TRUSTED}; dkim=pass; dkim=fail"], True),  # two signatures, one broken: doubt
        ([f"{TRUSTED}; dkim=pass header.d=a.example"], False),
        ([f"{TRUSTED}; dkim=none"], False),  # unsigned mail is common, not a forgery sign
        ([f"{TRUSTED}; spf=fail"], False),
        (["relais.example.org; dkim=fail"], False),  # anyone on the way may write this
        ([f"{TRUSTED} (dkim=fail in a comment); dkim=pass"], False),
        ([f"(note) {TRUSTED}; dkim=fail"], True),
        ([], False),
    ],
)
def test_only_the_trusted_host_verdict_counts(headers: list[str], failed: bool) -> None:
    assert dkim_failed(headers, TRUSTED) is failed


def test_without_a_trusted_host_no_header_is_believed() -> None:
    assert dkim_failed([f"{TRUSTED}; dkim=fail"], "") is False
