"""Signed, expiring links carrying only an opaque instance id and an action."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from bot.clock import Clock
from bot.errors import TokenExpired, TokenInvalid

LINK_PATH = "/lien/"


@dataclass(frozen=True)
class LinkClaim:
    workflow: str
    public_id: str
    action: str
    issued_at: datetime


def _signer_on(clock: Clock) -> type[TimestampSigner]:
    """A timestamp signer reading the application's clock, so issuing and checking agree."""

    class ClockedSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock.now().timestamp())

    return ClockedSigner


class LinkSigner:
    def __init__(self, secret_key: str, public_url: str, clock: Clock) -> None:
        self._serializer = URLSafeTimedSerializer(
            secret_key, salt="cordee.link.v1", signer=_signer_on(clock)
        )
        self.public_url = public_url.rstrip("/")

    def token(self, workflow: str, public_id: str, action: str) -> str:
        return self._serializer.dumps({"w": workflow, "i": public_id, "a": action})

    def url(self, workflow: str, public_id: str, action: str) -> str:
        return f"{self.public_url}{LINK_PATH}{self.token(workflow, public_id, action)}"

    def verify(self, token: str, max_age: timedelta) -> LinkClaim:
        """Return the claim, or raise TokenInvalid (tampered) / TokenExpired (too old)."""
        try:
            payload, issued = self._serializer.loads(
                token, max_age=int(max_age.total_seconds()), return_timestamp=True
            )
        except SignatureExpired as error:
            raise TokenExpired("lien expiré") from error
        except BadSignature as error:
            raise TokenInvalid("lien invalide") from error
        if not isinstance(payload, dict) or not all(
            isinstance(payload.get(key), str) for key in ("w", "i", "a")
        ):
            raise TokenInvalid("lien invalide")
        return LinkClaim(payload["w"], payload["i"], payload["a"], issued.astimezone(UTC))
