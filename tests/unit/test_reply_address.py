"""Reply addresses: bound to a request and the invited address, readable back from a reply."""

from __future__ import annotations

import pytest

from bot.reply_address import ReplyAddresses, reference_in_subject

KEY = "k" * 48


@pytest.fixture
def addresses() -> ReplyAddresses:
    return ReplyAddresses(KEY, "Reply.Cordee.example")


def test_an_address_is_found_back_and_verifies(addresses: ReplyAddresses) -> None:
    address = addresses.address_for("DA-7KQ2M9XP4R", "Claire@Formations.example")
    assert address.startswith("reply+da-7kq2m9xp4r-")
    assert address.endswith("@reply.cordee.example")
    token = addresses.find(["autre@example.org", address.upper()])
    assert token is not None
    assert token.reference == "DA-7KQ2M9XP4R"
    assert addresses.verify(token, "claire@formations.example")


def test_the_mac_binds_the_reference_and_the_address(addresses: ReplyAddresses) -> None:
    address = addresses.address_for("DA-7KQ2M9XP4R", "claire@formations.example")
    token = addresses.find([address])
    assert token is not None
    assert not addresses.verify(token, "paul@formations.example")
    swapped = address.replace("da-7kq2m9xp4r", "da-7kq2m9xp4s")
    other = addresses.find([swapped])
    assert other is not None
    assert not addresses.verify(other, "claire@formations.example")


def test_another_key_or_domain_does_not_match(addresses: ReplyAddresses) -> None:
    address = addresses.address_for("DA-7KQ2M9XP4R", "claire@formations.example")
    elsewhere = ReplyAddresses(KEY, "autre.example")
    assert elsewhere.find([address]) is None
    rotated = ReplyAddresses("z" * 48, "reply.cordee.example")
    token = rotated.find([address])
    assert token is not None
    assert not rotated.verify(token, "claire@formations.example")


@pytest.mark.parametrize(
    "address",
    [
        "reply@reply.cordee.example",
        "reply+da-7kq2m9xp4r@reply.cordee.example",
        "reply+da-7kq2m9xp4r-short@reply.cordee.example",
        "xreply+da-7kq2m9xp4r-abcdefghijklmnop@reply.cordee.example",
    ],
)
def test_addresses_that_are_not_ours_are_ignored(addresses: ReplyAddresses, address: str) -> None:
    assert addresses.find([address]) is None


@pytest.mark.parametrize(
    ("subject", "reference"),
    [
        ("RE: Demande d'accès (réf. DA-7KQ2M9XP4R)", "DA-7KQ2M9XP4R"),
        ("TR: demande (réf. da-7kq2m9xp4r)", "DA-7KQ2M9XP4R"),
        ("RE: Demande d'accès", None),
        ("RE: DA-7KQ2M9XP4", None),  # one character short
        ("RE: DA-7KQ2M9XP4RX", None),
    ],
)
def test_a_reference_is_read_from_a_subject(subject: str, reference: str | None) -> None:
    assert reference_in_subject(subject) == reference
