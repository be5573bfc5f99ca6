"""One frozen settings object, from CORDEE_* environment variables and an optional cordee.toml."""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from bot.errors import ConfigError

ENV_PREFIX = "CORDEE_"
HOST_NAME = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)
SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret


class Settings(BaseModel):
    """Effective settings. Each field is set by `CORDEE_<NAME>` or by `<name>` in cordee.toml."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Field(Path("var"), description="un chemin de dossier")
    database_url: str = Field(
        "",
        description="une URL SQLAlchemy, par ex. sqlite:///var/cordee.db "
        "ou postgresql+psycopg://utilisateur@hôte/base",
    )
    public_url: str = Field(
        "",
        description="l'adresse publique du serveur web, par ex. https://cordee.example.fr",
    )
    host: str = Field("127.0.0.1", description="une adresse IP d'écoute")
    port: int = Field(8080, ge=0, le=65535, description="un numéro de port entre 0 et 65535")
    secret_key: SecretStr | None = Field(
        None, description="une clé d'au moins 32 caractères (générée dans var/ si absente)"
    )
    outbox_dir: Path | None = Field(None, description="un chemin de dossier Maildir")
    inbox_dir: Path | None = Field(None, description="un chemin de dossier Maildir")
    mail_from: str = Field(
        "Cordée <ne-pas-repondre@cordee.localhost>",
        description="une adresse d'expéditeur, par ex. Cordée <noreply@example.fr>",
    )
    reply_domain: str = Field(
        "",
        description="un nom de domaine pour les adresses de réponse reply+…@domaine "
        "(vide : le domaine de CORDEE_MAIL_FROM)",
    )
    trusted_authserv_id: str = Field(
        "",
        description="le nom du serveur de réception dont les en-têtes Authentication-Results "
        "font foi, par ex. mx.example.fr (vide : aucun)",
    )
    smtp_host: str = Field(
        "", description="le nom du serveur SMTP (vide : courriels écrits dans le Maildir)"
    )
    smtp_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="un port entre 1 et 65535 (0 : 25, 587 ou 465 selon la sécurité)",
    )
    smtp_security: Literal["none", "starttls", "tls"] = Field(
        "starttls", description="none, starttls ou tls"
    )
    smtp_username: str = Field("", description="l'identifiant SMTP (vide : sans authentification)")
    smtp_password: SecretStr | None = Field(None, description="le mot de passe SMTP")
    imap_host: str = Field(
        "", description="le nom du serveur IMAP (vide : courriels lus dans le Maildir)"
    )
    imap_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="un port entre 1 et 65535 (0 : 143 ou 993 selon la sécurité)",
    )
    imap_security: Literal["none", "starttls", "tls"] = Field(
        "tls", description="none, starttls ou tls"
    )
    imap_username: str = Field("", description="l'identifiant IMAP")
    imap_password: SecretStr | None = Field(None, description="le mot de passe IMAP")
    imap_folder: str = Field(
        "INBOX", min_length=1, description="un nom de dossier IMAP, par ex. INBOX"
    )
    imap_processed_folder: str = Field(
        "",
        description="un dossier IMAP où ranger les courriels traités "
        "(vide : ils restent en place, marqués comme lus)",
    )
    imap_poll_seconds: float = Field(
        30.0, gt=0, le=3600, description="un nombre de secondes entre 0 et 3600"
    )
    slack_bot_token: SecretStr | None = Field(
        None, description="le jeton du bot Slack, xoxb-… (absent : notifications sur la console)"
    )
    slack_signing_secret: SecretStr | None = Field(
        None, description="le secret de signature de l'application Slack"
    )
    slack_app_token: SecretStr | None = Field(
        None, description="le jeton d'application Slack, xapp-… (pour le mode Socket)"
    )
    slack_api_url: str = Field(
        "https://slack.com/api/",
        description="l'adresse de l'API Web de Slack, terminée par /",
    )
    language: Literal["fr", "en"] = Field("fr", description="fr ou en")
    access_request_reminder_days: tuple[int, ...] = Field(
        (3, 7), description="des nombres de jours séparés par des virgules, par ex. 3,7"
    )
    access_request_expiry_days: int = Field(
        30, ge=1, le=365, description="un nombre de jours entre 1 et 365"
    )
    tick_seconds: float = Field(
        30.0, gt=0, le=3600, description="un nombre de secondes entre 0 et 3600"
    )

    @field_validator("access_request_reminder_days", mode="before")
    @classmethod
    def _split_days(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("access_request_reminder_days")
    @classmethod
    def _check_days(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(day < 1 for day in value) or list(value) != sorted(set(value)):
            raise ValueError("days must be positive and increasing")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _check_slack_api_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or not value.endswith("/"):
            raise ValueError("not an http(s) URL ending with /")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite://", "postgresql")):
            raise ValueError("unsupported database")
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("not an http(s) URL")
        return value.rstrip("/")

    @field_validator("reply_domain", "trusted_authserv_id")
    @classmethod
    def _check_host_name(cls, value: str) -> str:
        if value and not HOST_NAME.fullmatch(value):
            raise ValueError("not a host name")
        return value.lower()

    @field_validator("secret_key")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("secret too short")
        return value

    # Derived values: one place decides the embedded defaults.
    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'cordee.db'}"

    @property
    def effective_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port or 8080}"

    @property
    def mail_from_domain(self) -> str:
        address = parseaddr(self.mail_from)[1]
        return address.rpartition("@")[2] or "cordee.localhost"

    @property
    def effective_reply_domain(self) -> str:
        return self.reply_domain or self.mail_from_domain

    @property
    def effective_outbox_dir(self) -> Path:
        return self.outbox_dir or self.data_dir / "outbox"

    @property
    def effective_inbox_dir(self) -> Path:
        return self.inbox_dir or self.data_dir / "inbox"


SETTING_NAMES = tuple(Settings.model_fields)


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: Path | None = None
) -> Settings:
    """Merge defaults < cordee.toml < environment; raise ConfigError with one explanatory line."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    toml_path = config_file or Path(env.get(ENV_PREFIX + "CONFIG", "cordee.toml"))
    if toml_path.is_file():
        try:
            with toml_path.open("rb") as handle:
                from_file = tomllib.load(handle)
        except (tomllib.TOMLDecodeError, OSError) as error:
            raise ConfigError(
                f"Fichier de configuration {toml_path} illisible : {error}"
            ) from error
        unknown = sorted(set(from_file) - set(SETTING_NAMES))
        if unknown:
            raise ConfigError(
                f"Réglage inconnu dans {toml_path} : « {unknown[0]} » "
                f"(réglages possibles : {', '.join(SETTING_NAMES)})"
            )
        values.update(from_file)
    for field in SETTING_NAMES:
        if env_name(field) in env:
            values[field] = env[env_name(field)]
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        description = Settings.model_fields[field].description if field in SETTING_NAMES else ""
        shown = "(masquée)" if field == "secret_key" else repr(values.get(field))
        raise ConfigError(
            f"Réglage invalide : {env_name(field)} = {shown} ; attendu : {description}."
        ) from None


def ensure_secret_key(settings: Settings) -> Settings:
    """Return settings with a secret key, generating and keeping one in data_dir on first run."""
    if settings.secret_key is not None:
        return settings
    key_path = settings.data_dir / SECRET_KEY_FILE
    if key_path.is_file():
        key = key_path.read_text(encoding="ascii").strip()
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        # Create with owner-only permissions before the secret is written.
        descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(key + "\n")
    return settings.model_copy(update={"secret_key": SecretStr(key)})


def describe(settings: Settings) -> list[tuple[str, str]]:
    """(environment name, displayed value) pairs, secrets masked, derived defaults resolved."""
    shown: dict[str, object] = dict(settings)
    shown["database_url"] = _mask_url_password(settings.effective_database_url)
    shown["public_url"] = settings.effective_public_url
    shown["reply_domain"] = settings.effective_reply_domain
    shown["outbox_dir"] = settings.effective_outbox_dir
    shown["inbox_dir"] = settings.effective_inbox_dir
    shown["access_request_reminder_days"] = ",".join(
        str(day) for day in settings.access_request_reminder_days
    )
    rows = []
    for field in SETTING_NAMES:
        value = shown[field]
        if isinstance(value, SecretStr):
            text = "********"
        elif value is None:
            text = "(non défini)"
        else:
            text = str(value)
        rows.append((env_name(field), text))
    return rows


def _mask_url_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":********@", 1)
    return url
