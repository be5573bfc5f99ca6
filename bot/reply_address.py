"""Per-request reply addresses `reply+<reference>-<HMAC>@<reply domain>`, and their check."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

LOCAL_PREFIX = "reply"
MAC_LENGTH = 16  # base32 characters: 80 bits, far beyond guessing by mail
REFERENCE = re.compile(r"\b([A-Z]{2,4}-[23456789ABCDEFGHJKMNPQRSTVWXYZ]{10})\b")


@dataclass(frozen=True)
class ReplyToken:
    """A reply address as read from an incoming mail: which request, and the claimed MAC."""

    reference: str
    mac: str


class ReplyAddresses:
    """Makes and checks reply addresses; the MAC binds the request to the invited address.

    Local parts are lower-case only because some mail servers fold their case on the way.
    """

    def __init__(self, secret_key: str, domain: str) -> None:
        # A key of its own, so a reply MAC can never be replayed as any other signature.
        self._key = hmac.new(secret_key.encode(), b"cordee.reply-address.v1", "sha256").digest()
        self.domain = domain.lower()
        self._pattern = re.compile(
            rf"{LOCAL_PREFIX}\+([a-z]{{2,4}}-[a-z0-9]{{10}})-([a-z2-7]{{{MAC_LENGTH}}})@"
            + re.escape(self.domain),
            re.IGNORECASE,
        )

    def _mac(self, reference: str, invited: str) -> str:
        message = f"{reference.upper()}\n{invited.strip().lower()}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.b32encode(digest).decode("ascii").lower()[:MAC_LENGTH]

    def address_for(self, reference: str, invited: str) -> str:
        return f"{LOCAL_PREFIX}+{reference.lower()}-{self._mac(reference, invited)}@{self.domain}"

    def find(self, addresses: Iterable[str]) -> ReplyToken | None:
        """The first of our reply addresses among `addresses` (To, Cc, Delivered-To…)."""
        for address in addresses:
            match = self._pattern.fullmatch(address.strip())
            if match:
                return ReplyToken(match.group(1).upper(), match.group(2).lower())
        return None

    def verify(self, token: ReplyToken, invited: str) -> bool:
        return hmac.compare_digest(token.mac, self._mac(token.reference, invited))


def reference_in_subject(subject: str) -> str | None:
    """A request reference such as DA-7KQ2M9XP4R quoted in a subject line."""
    match = REFERENCE.search(subject.upper())
    return match.group(1) if match else None
