"""Partners' API keys, encrypted at rest with a key derived from CORDEE_SECRET_KEY."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.errors import CordeeError, InvalidInput

# A distinct purpose string: the link-signing secret never encrypts anything directly.
PURPOSE = b"cordee/partner-sync/credentials/v1"
MAX_API_KEY = 4096


class CredentialsUnreadable(CordeeError):
    """Stored credentials no longer decrypt (CORDEE_SECRET_KEY changed): enter them again."""


class CredentialCipher:
    def __init__(self, secret_key: str) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=PURPOSE).derive(
            secret_key.encode("utf-8")
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, api_key: str) -> str:
        return self._fernet.encrypt(check_api_key(api_key).encode("utf-8")).decode("ascii")

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            raise CredentialsUnreadable(
                "la clé d'API enregistrée ne peut plus être déchiffrée (CORDEE_SECRET_KEY a "
                "changé ?) : enregistrez-la de nouveau avec `cordee sync configure`."
            ) from None


def check_api_key(value: str) -> str:
    key = value.strip()
    if not key or len(key) > MAX_API_KEY or any(ord(c) < 33 or ord(c) == 127 for c in key):
        raise InvalidInput(
            "clé d'API invalide : collez-la telle que votre outil la donne, sans espace ni "
            f"retour à la ligne ({MAX_API_KEY} caractères au plus)."
        )
    return key
