"""`cordee slack link|list|manifest`: linking channels from the command line."""

from __future__ import annotations

import pytest

from tests.integration.test_cli import Cordee, cordee, env, setup_partner
from tests.support.builders import CERTIFIER_SIRET

__all__ = ["cordee", "env"]  # the CLI fixtures, shared with the CLI tests


def test_a_channel_is_linked_once_to_one_certifier(cordee: Cordee) -> None:
    setup_partner(cordee)

    linked = cordee("slack", "link", "--certifier", CERTIFIER_SIRET, "--channel", "c0certifco")
    assert linked.exit_code == 0, linked.output
    assert "Canal C0CERTIFCO relié à Certif & Co" in linked.output
    again = cordee("slack", "link", "--certifier", CERTIFIER_SIRET, "--channel", "C0CERTIFCO")
    assert again.exit_code == 0
    listed = cordee("slack", "list")
    assert listed.output.count("C0CERTIFCO") == 1
    assert "Certif & Co" in listed.output


@pytest.mark.parametrize("channel", ["general", "#cordee", "U0CLAIRE01", "C12"])
def test_a_malformed_channel_id_is_refused_with_where_to_find_it(
    cordee: Cordee, channel: str
) -> None:
    setup_partner(cordee)
    result = cordee("slack", "link", "--certifier", CERTIFIER_SIRET, "--channel", channel)
    assert result.exit_code == 2
    assert "détails du canal" in result.output
    assert cordee("slack", "list").output.strip() == "(aucun)"


def test_an_unknown_certifier_is_refused(cordee: Cordee) -> None:
    setup_partner(cordee)
    result = cordee("slack", "link", "--certifier", "99", "--channel", "C0CERTIFCO")
    assert result.exit_code == 1
    assert "Erreur" in result.output


def test_the_manifest_points_every_url_at_the_public_address(cordee: Cordee) -> None:
    result = cordee("slack", "manifest", extra={"CORDEE_PUBLIC_URL": "https://bot.certif.example/"})
    assert result.exit_code == 0
    urls = [line.split("url: ")[1] for line in result.output.splitlines() if "url: " in line]
    assert urls == ["https://bot.certif.example/slack/events"] * 3
    assert "command: /cordee" in result.output
    assert "files:write" in result.output
