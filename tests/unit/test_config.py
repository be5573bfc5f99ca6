"""Settings: defaults, precedence, one-line errors, generated secret, masked display."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import describe, ensure_secret_key, load_settings
from bot.errors import ConfigError

NO_FILE = Path("/nonexistent/cordee.toml")


def test_embedded_defaults_need_no_configuration() -> None:
    settings = load_settings({}, NO_FILE)
    assert settings.effective_database_url == "sqlite:///var/cordee.db"
    assert settings.effective_outbox_dir == Path("var/outbox")
    assert settings.effective_inbox_dir == Path("var/inbox")
    assert settings.effective_public_url == "http://127.0.0.1:8080"
    assert settings.access_request_reminder_days == (3, 7)
    assert settings.access_request_expiry_days == 30


def test_environment_overrides_the_toml_file(tmp_path: Path) -> None:
    toml = tmp_path / "cordee.toml"
    toml.write_text('port = 9000\npublic_url = "https://cordee.example.fr/"\n', encoding="utf-8")
    settings = load_settings({"CORDEE_PORT": "9100"}, toml)
    assert settings.port == 9100
    assert settings.effective_public_url == "https://cordee.example.fr"


def test_reminder_days_parse_from_a_comma_list() -> None:
    assert load_settings(
        {"CORDEE_ACCESS_REQUEST_REMINDER_DAYS": "2, 5"}, NO_FILE
    ).access_request_reminder_days == (2, 5)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "CORDEE_PORT",
            "abc",
            "CORDEE_PORT = 'abc' ; attendu : un numéro de port entre 0 et 65535.",
        ),
        (
            "CORDEE_PUBLIC_URL",
            "ftp://x",
            "CORDEE_PUBLIC_URL = 'ftp://x' ; attendu : l'adresse publique",
        ),
        (
            "CORDEE_DATABASE_URL",
            "mysql://x",
            "CORDEE_DATABASE_URL = 'mysql://x' ; attendu : une URL SQLAlchemy",
        ),
        ("CORDEE_ACCESS_REQUEST_REMINDER_DAYS", "7,3", "CORDEE_ACCESS_REQUEST_REMINDER_DAYS"),
        ("CORDEE_SECRET_KEY", "short", "CORDEE_SECRET_KEY = (masquée) ; attendu"),
        ("CORDEE_LANGUAGE", "de", "CORDEE_LANGUAGE = 'de' ; attendu : fr ou en."),
    ],
)
def test_an_invalid_value_gives_one_line_naming_the_setting(
    variable: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: value}, NO_FILE)
    message = str(caught.value)
    assert "\n" not in message
    assert expected in message
    assert "short" not in message


def test_an_unknown_key_in_the_file_is_named(tmp_path: Path) -> None:
    toml = tmp_path / "cordee.toml"
    toml.write_text("prot = 80\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"Réglage inconnu dans .* : « prot »"):
        load_settings({}, toml)


def test_a_broken_file_is_reported(tmp_path: Path) -> None:
    toml = tmp_path / "cordee.toml"
    toml.write_text("port = = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="illisible"):
        load_settings({}, toml)


def test_the_secret_key_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    settings = load_settings({"CORDEE_DATA_DIR": str(tmp_path / "var")}, NO_FILE)
    first = ensure_secret_key(settings)
    second = ensure_secret_key(settings)
    assert first.secret_key is not None
    assert second.secret_key is not None
    assert first.secret_key.get_secret_value() == second.secret_key.get_secret_value()
    key_file = tmp_path / "var" / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_describe_masks_secrets_and_passwords() -> None:
    settings = load_settings(
        {
            "CORDEE_SECRET_KEY": "s" * 40,
            "CORDEE_DATABASE_URL": "postgresql+psycopg://cordee:hunter2@db/cordee",
        },
        NO_FILE,
    )
    shown = dict(describe(settings))
    assert shown["CORDEE_SECRET_KEY"] == "********"
    assert "hunter2" not in shown["CORDEE_DATABASE_URL"]
    assert "s" * 40 not in str(shown)
