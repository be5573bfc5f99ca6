"""`cordee mail check`: tries the mail settings step by step and says precisely what is wrong.

    SMTP      DNS → connexion → chiffrement → EHLO → authentification → QUIT (no mail is sent)
    IMAP      DNS → connexion → chiffrement → accueil → authentification → dossier
              → dossier des courriels traités → LOGOUT
    Maildir   when no server is set: the folder exists or can be created, and is writable

Each server stops at its first failing step; the steps after it are reported as skipped. Every
detail is French, says what to do next, and never carries a password.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
import socket
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

import aiosmtplib
from aioimaplib import aioimaplib  # type: ignore[import-untyped]

from bot.channels.imap_inbox import (
    CONNECTION_ERRORS,
    LOGOUT_TIMEOUT_SECONDS,
    parse_uidvalidity,
    quote_mailbox,
    starttls,
)
from bot.channels.imap_inbox import DEFAULT_PORTS as IMAP_PORTS
from bot.channels.mail import MAILDIR_SUBDIRS
from bot.channels.smtp import DEFAULT_PORTS as SMTP_PORTS
from bot.config import Settings
from bot.errors import ChannelUnavailable

Resolver = Callable[[str, int], Awaitable[list[str]]]

DEFAULT_TIMEOUT_SECONDS = 10.0
FOLDERS_SHOWN = 6

# OpenSSL verification codes worth a sentence of their own.
_CERT_EXPIRED = 10
_NAME_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH

_LIST_LINE = re.compile(rb'^\((?P<flags>[^)]*)\) (?:"(?:[^"\\]|\\.)*"|NIL) (?P<name>.+)$', re.I)
_RESPONSE_CODE = re.compile(rb"^\[(?P<code>[A-Z-]+)", re.I)
_MODIFIED_BASE64 = re.compile(r"&([A-Za-z0-9+,]*)-")


class Status(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CheckResult:
    server: str  # smtp, imap, outbox (Maildir) or inbox (Maildir)
    step: str  # dns, tcp, tls, greeting, auth, folder, processed_folder or maildir
    label: str  # what a person reads, e.g. « SMTP · DNS »
    status: Status
    detail: str  # French, with what to do next


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for host, without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def check_mail(
    settings: Settings,
    *,
    step_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    resolver: Resolver = system_resolver,
    tls_context: ssl.SSLContext | None = None,
) -> list[CheckResult]:
    """Check sending (SMTP or the Maildir outbox) and receiving (IMAP or the Maildir inbox)."""
    context = tls_context or ssl.create_default_context()
    sending: Awaitable[list[CheckResult]]
    receiving: Awaitable[list[CheckResult]]
    if settings.smtp_host:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        sending = check_smtp(
            settings.smtp_host,
            settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=password,
            step_seconds=step_seconds,
            resolver=resolver,
            tls_context=context,
        )
    else:
        sending = asyncio.to_thread(check_maildir, "outbox", settings.effective_outbox_dir)
    if settings.imap_host:
        password = settings.imap_password.get_secret_value() if settings.imap_password else None
        receiving = check_imap(
            settings.imap_host,
            settings.imap_port,
            security=settings.imap_security,
            username=settings.imap_username,
            password=password,
            folder=settings.imap_folder,
            processed_folder=settings.imap_processed_folder,
            step_seconds=step_seconds,
            resolver=resolver,
            tls_context=context,
        )
    else:
        receiving = asyncio.to_thread(check_maildir, "inbox", settings.effective_inbox_dir)
    sent, received = await asyncio.gather(sending, receiving)
    return [*sent, *received]


# -- steps ---------------------------------------------------------------------------------------


class _Stop(Exception):
    """A step failed: the server's remaining steps are skipped."""


class _Steps:
    """The fixed list of one server's steps, in the order they are shown."""

    def __init__(self, server: str, title: str, steps: Sequence[tuple[str, str]]) -> None:
        self.server = server
        self.title = title
        self._labels = dict(steps)
        self._results: dict[str, CheckResult] = {}

    def ok(self, step: str, detail: str) -> None:
        self._record(step, Status.OK, detail)

    def skip(self, step: str, detail: str) -> None:
        self._record(step, Status.SKIPPED, detail)

    def fail(self, detail: str) -> NoReturn:
        """Record the failure of the step under way (the first without a result), and stop."""
        pending = next(step for step in self._labels if step not in self._results)
        self._record(pending, Status.FAILED, detail)
        raise _Stop

    def results(self) -> list[CheckResult]:
        return [
            self._results.get(step)
            or CheckResult(
                self.server,
                step,
                f"{self.title} · {label}",
                Status.SKIPPED,
                "non vérifié : une étape précédente a échoué.",
            )
            for step, label in self._labels.items()
        ]

    def _record(self, step: str, status: Status, detail: str) -> None:
        label = f"{self.title} · {self._labels[step]}"
        self._results[step] = CheckResult(self.server, step, label, status, detail)


@dataclass(frozen=True)
class _Target:
    """Where a server is, and which settings a person changes to fix it."""

    kind: str  # SMTP or IMAP, as in the settings' names
    host: str
    port: int
    security: str
    ports_hint: str

    def setting(self, name: str) -> str:
        return f"CORDEE_{self.kind}_{name}"


async def _resolve(
    steps: _Steps, target: _Target, resolver: Resolver, step_seconds: float
) -> list[str]:
    host, setting = target.host, target.setting("HOST")
    try:
        addresses = await asyncio.wait_for(resolver(host, target.port), step_seconds)
    except socket.gaierror as error:
        if error.errno == socket.EAI_AGAIN:
            steps.fail(
                f"le DNS ne répond pas pour « {host} » : vérifiez la connexion réseau de cette "
                "machine, puis relancez la vérification."
            )
        steps.fail(
            f"le nom « {host} » est introuvable dans le DNS : vérifiez l'orthographe de "
            f"{setting} (le nom du serveur, par ex. {target.kind.lower()}.votre-domaine.fr)."
        )
    except TimeoutError:
        steps.fail(
            f"le DNS n'a pas répondu en {step_seconds:g} s pour « {host} » : vérifiez la connexion "
            "réseau de cette machine, puis relancez la vérification."
        )
    except OSError as error:
        steps.fail(
            f"résolution DNS de « {host} » impossible ({error.strerror or type(error).__name__}) "
            f": vérifiez {setting} et la connexion réseau de cette machine."
        )
    if not addresses:
        steps.fail(f"le nom « {host} » n'a aucune adresse dans le DNS : vérifiez {setting}.")
    shown = ", ".join(addresses[:3]) + (" …" if len(addresses) > 3 else "")
    steps.ok("dns", f"{host} → {shown}")
    return addresses


async def _reach(steps: _Steps, target: _Target, addresses: list[str], step_seconds: float) -> None:
    """A bare TCP connection, so that a closed port is told apart from TLS or login problems."""
    first_error: BaseException | None = None
    for address in addresses:
        try:
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection(address, target.port), step_seconds
            )
        except (OSError, TimeoutError) as error:
            first_error = first_error or error
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        steps.ok("tcp", f"le port {target.port} de {address} répond")
        return
    where = f"{addresses[0]} sur le port {target.port}"
    port_setting = target.setting("PORT")
    if isinstance(first_error, ConnectionRefusedError):
        steps.fail(
            f"connexion refusée par {where} : aucun service n'écoute sur ce port. Vérifiez "
            f"{port_setting} ({target.ports_hint} ; 0 choisit selon "
            f"{target.setting('SECURITY')})."
        )
    if isinstance(first_error, TimeoutError):
        steps.fail(
            f"pas de réponse de {where} en {step_seconds:g} s : un pare-feu bloque peut-être "
            f"ce port. Vérifiez {port_setting}, ou demandez l'ouverture du port à votre service "
            "réseau."
        )
    reason = getattr(first_error, "strerror", None) or type(first_error).__name__
    steps.fail(
        f"{where} injoignable ({reason}) : vérifiez la connexion réseau de cette machine et "
        f"{port_setting}."
    )


def _tls_problem(error: ssl.SSLError, target: _Target) -> str:
    """« certificat non reconnu » with the reason, or a handshake that went wrong."""
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = error.verify_message or error.reason or "vérification impossible"
        if error.verify_code in _NAME_MISMATCH:
            return (
                f"certificat non reconnu : il n'est pas établi pour « {target.host} » "
                f"({reason}). Indiquez dans {target.setting('HOST')} le nom exact qui figure "
                "sur le certificat du serveur."
            )
        if error.verify_code == _CERT_EXPIRED:
            return (
                f"certificat non reconnu : il a expiré ({reason}). Demandez à l'hébergeur du "
                "serveur de le renouveler."
            )
        return (
            f"certificat non reconnu ({reason}) : il n'est pas signé par une autorité de "
            "confiance de cette machine. Demandez à l'hébergeur un certificat valide, ou faites "
            "installer le certificat de son autorité sur cette machine (paquet ca-certificates)."
        )
    return (
        f"la négociation TLS a échoué ({error.reason or type(error).__name__}) : le port "
        f"{target.port} n'attend peut-être pas ce mode de chiffrement. Vérifiez "
        f"{target.setting('SECURITY')} et {target.setting('PORT')} ({target.ports_hint})."
    )


def _ssl_cause(error: BaseException) -> ssl.SSLError | None:
    """The TLS error behind an exception raised by aiosmtplib or aioimaplib, if any."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _tls_version(transport: Any) -> str:
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    version = ssl_object.version() if ssl_object is not None else None
    return str(version or "TLS")


def _no_answer(target: _Target, step_seconds: float) -> str:
    return (
        f"le serveur n'a pas répondu en {step_seconds:g} s : relancez la vérification, avec "
        f"--timeout plus long si le serveur est lent ; sinon vérifiez {target.setting('PORT')} "
        f"et {target.setting('SECURITY')}."
    )


def _interrupted(target: _Target, error: BaseException) -> str:
    return (
        f"la connexion a été interrompue ({type(error).__name__}) : relancez la vérification ; "
        f"si cela se répète, vérifiez {target.setting('SECURITY')} et {target.setting('PORT')}."
    )


def _plain_text_notice(target: _Target) -> str:
    return (
        f"aucun ({target.setting('SECURITY')} = none) : identifiants et courriels circulent en "
        "clair. Préférez starttls ou tls si le serveur le permet."
    )


# -- SMTP ----------------------------------------------------------------------------------------

SMTP_STEPS = (
    ("dns", "DNS"),
    ("tcp", "connexion"),
    ("tls", "chiffrement"),
    ("greeting", "EHLO"),
    ("auth", "authentification"),
)


async def check_smtp(
    host: str,
    port: int = 0,
    *,
    security: str,
    username: str = "",
    password: str | None = None,
    step_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    resolver: Resolver = system_resolver,
    tls_context: ssl.SSLContext | None = None,
) -> list[CheckResult]:
    """Connect, negotiate TLS, EHLO, log in when a username is set, QUIT. Never sends a mail."""
    target = _Target(
        "SMTP",
        host,
        port or SMTP_PORTS[security],
        security,
        "587 pour starttls, 465 pour tls, 25 pour none",
    )
    steps = _Steps("smtp", "SMTP", SMTP_STEPS)
    with contextlib.suppress(_Stop):
        addresses = await _resolve(steps, target, resolver, step_seconds)
        await _reach(steps, target, addresses, step_seconds)
        await _smtp_session(
            steps,
            target,
            username,
            password,
            step_seconds,
            tls_context or ssl.create_default_context(),
        )
    return steps.results()


async def _smtp_session(
    steps: _Steps,
    target: _Target,
    username: str,
    password: str | None,
    step_seconds: float,
    context: ssl.SSLContext,
) -> None:
    client = aiosmtplib.SMTP(
        hostname=target.host,
        port=target.port,
        timeout=step_seconds,
        use_tls=target.security == "tls",
        start_tls=False,  # done by hand below, to report it as its own step
        tls_context=context,
    )
    try:
        await _smtp_hello(steps, target, client, step_seconds)
        await _smtp_login(steps, target, client, username, password)
    except _Stop:
        raise
    except ssl.SSLError as error:
        steps.fail(_tls_problem(error, target))
    except TimeoutError:
        steps.fail(_no_answer(target, step_seconds))
    except (aiosmtplib.SMTPException, OSError) as error:
        steps.fail(_interrupted(target, error))
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()


async def _smtp_hello(
    steps: _Steps, target: _Target, client: aiosmtplib.SMTP, step_seconds: float
) -> None:
    if target.security == "none":
        steps.skip("tls", _plain_text_notice(target))
    try:
        await client.connect()
    except aiosmtplib.SMTPConnectResponseError as error:
        if target.security == "tls":
            steps.ok("tls", _smtp_tls_done(target, client, "TLS établi"))
        steps.fail(
            f"le serveur refuse la connexion ({error.code} {error.message}) : cette machine "
            "n'est peut-être pas autorisée à lui écrire. Transmettez ce message à l'hébergeur "
            "du serveur."
        )
    except aiosmtplib.SMTPConnectTimeoutError:
        if target.security == "tls":
            steps.fail(
                f"la négociation TLS n'a pas abouti en {step_seconds:g} s : le port {target.port} "
                "attend peut-être une connexion sans TLS. Vérifiez "
                f"{target.setting('SECURITY')} et {target.setting('PORT')} ({target.ports_hint})."
            )
        steps.fail(
            f"le serveur ne s'est pas présenté en {step_seconds:g} s : le port {target.port} "
            f"attend peut-être TLS dès la connexion. Essayez {target.setting('SECURITY')} = tls "
            f"(port {SMTP_PORTS['tls']})."
        )
    except aiosmtplib.SMTPConnectError as error:
        cause = _ssl_cause(error)
        if cause is not None:
            steps.fail(_tls_problem(cause, target))
        raise
    if target.security == "tls":
        steps.ok("tls", _smtp_tls_done(target, client, "TLS établi"))
    response = await _smtp_ehlo(steps, client)
    if target.security == "starttls":
        if not client.supports_extension("starttls"):
            steps.fail(
                f"le serveur ne propose pas STARTTLS sur le port {target.port} : choisissez "
                f"{target.setting('SECURITY')} = tls (port {SMTP_PORTS['tls']}) si le serveur "
                "chiffre dès la connexion, ou demandez à l'hébergeur d'activer STARTTLS."
            )
        try:
            await client.starttls()
        except aiosmtplib.SMTPResponseException as error:
            steps.fail(
                f"le serveur a refusé STARTTLS ({error.code} {error.message}) : transmettez ce "
                "message à l'hébergeur du serveur."
            )
        steps.ok("tls", _smtp_tls_done(target, client, "STARTTLS accepté"))
        response = await _smtp_ehlo(steps, client)
    methods = ", ".join(method.upper() for method in client.supported_auth_methods)
    name = response.message.split(maxsplit=1)[0] if response.message.strip() else target.host
    steps.ok(
        "greeting",
        f"le serveur répond ({name}) ; authentification proposée : {methods or 'aucune'}",
    )


def _smtp_tls_done(target: _Target, client: aiosmtplib.SMTP, what: str) -> str:
    version = _tls_version(client.transport)
    return f"{what} ({version}), certificat vérifié pour « {target.host} »"


async def _smtp_ehlo(steps: _Steps, client: aiosmtplib.SMTP) -> aiosmtplib.SMTPResponse:
    try:
        return await client.ehlo()
    except aiosmtplib.SMTPHeloError as error:
        steps.fail(
            f"le serveur refuse EHLO ({error.code} {error.message}) : transmettez ce message à "
            "l'hébergeur du serveur."
        )


async def _smtp_login(
    steps: _Steps, target: _Target, client: aiosmtplib.SMTP, username: str, password: str | None
) -> None:
    user_setting, password_setting = target.setting("USERNAME"), target.setting("PASSWORD")
    if not username:
        steps.skip(
            "auth",
            f"aucun identifiant ({user_setting} vide) : les courriels partiront sans "
            "authentification.",
        )
        return
    if not password:
        steps.fail(
            f"{password_setting} n'est pas défini alors que {user_setting} l'est : indiquez le "
            "mot de passe du compte d'envoi."
        )
    if not client.supports_extension("auth"):
        if target.security == "none":
            steps.fail(
                "le serveur ne propose pas d'authentification sur une connexion en clair : "
                f"choisissez {target.setting('SECURITY')} = starttls ou tls ; s'il n'en demande "
                f"pas, laissez {user_setting} vide."
            )
        steps.fail(
            "le serveur ne propose pas d'authentification (AUTH) : vérifiez "
            f"{target.setting('PORT')} (587 ou 465 pour l'envoi authentifié), ou laissez "
            f"{user_setting} vide si ce serveur n'en demande pas."
        )
    try:
        await client.login(username, password)
    except aiosmtplib.SMTPAuthenticationError as error:
        if error.code == 535:
            steps.fail(
                f"identifiant ou mot de passe refusé par le serveur (535) : vérifiez "
                f"{user_setting} et {password_setting} (certains fournisseurs exigent un mot de "
                "passe d'application)."
            )
        if 400 <= error.code < 500:
            steps.fail(
                f"authentification momentanément impossible ({error.code} {error.message}) : "
                "réessayez dans quelques minutes."
            )
        steps.fail(
            f"authentification refusée ({error.code} {error.message}) : vérifiez "
            f"{user_setting} et {password_setting}, ou demandez à l'hébergeur quelle méthode "
            "il accepte."
        )
    steps.ok("auth", "identifiant et mot de passe acceptés")


# -- IMAP ----------------------------------------------------------------------------------------

IMAP_STEPS = (
    ("dns", "DNS"),
    ("tcp", "connexion"),
    ("tls", "chiffrement"),
    ("greeting", "accueil"),
    ("auth", "authentification"),
    ("folder", "dossier surveillé"),
    ("processed_folder", "dossier des courriels traités"),
)


async def check_imap(
    host: str,
    port: int = 0,
    *,
    security: str,
    username: str,
    password: str | None,
    folder: str = "INBOX",
    processed_folder: str = "",
    step_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    resolver: Resolver = system_resolver,
    tls_context: ssl.SSLContext | None = None,
) -> list[CheckResult]:
    """Connect, negotiate TLS, log in, open the folder, look for the processed folder, LOGOUT."""
    target = _Target(
        "IMAP",
        host,
        port or IMAP_PORTS[security],
        security,
        "993 pour tls, 143 pour starttls ou none",
    )
    steps = _Steps("imap", "IMAP", IMAP_STEPS)
    with contextlib.suppress(_Stop):
        addresses = await _resolve(steps, target, resolver, step_seconds)
        await _reach(steps, target, addresses, step_seconds)
        context = tls_context or ssl.create_default_context()
        client = aioimaplib.IMAP4(
            host,
            target.port,
            timeout=step_seconds,
            ssl_context=context if security == "tls" else None,
        )
        try:
            await _imap_hello(steps, target, client, context, step_seconds)
            await _imap_login(steps, target, client, username, password)
            await _imap_folders(steps, target, client, folder, processed_folder)
        except _Stop:
            raise
        except ssl.SSLError as error:
            steps.fail(_tls_problem(error, target))
        except (TimeoutError, aioimaplib.CommandTimeout):
            steps.fail(_no_answer(target, step_seconds))
        except CONNECTION_ERRORS as error:
            steps.fail(_interrupted(target, error))
        finally:
            await _imap_close(client)
    return steps.results()


async def _imap_hello(
    steps: _Steps, target: _Target, client: Any, context: ssl.SSLContext, step_seconds: float
) -> None:
    if target.security == "none":
        steps.skip("tls", _plain_text_notice(target))
    try:
        await client.wait_hello_from_server()
    except TimeoutError:
        if target.security == "tls":
            steps.fail(
                f"pas de réponse en {step_seconds:g} s après la connexion chiffrée : le port "
                f"{target.port} attend peut-être une connexion sans TLS. Vérifiez "
                f"{target.setting('SECURITY')} et {target.setting('PORT')} ({target.ports_hint})."
            )
        steps.fail(
            f"le serveur ne s'est pas présenté en {step_seconds:g} s : le port {target.port} "
            f"attend peut-être TLS dès la connexion. Essayez {target.setting('SECURITY')} = tls "
            f"(port {IMAP_PORTS['tls']})."
        )
    except aioimaplib.Error as error:
        steps.fail(
            f"le serveur refuse la connexion ({error}) : transmettez ce message à l'hébergeur "
            "du serveur."
        )
    if target.security == "tls":
        steps.ok("tls", _imap_tls_done(target, client, "TLS établi"))
    elif target.security == "starttls":
        if "STARTTLS" not in client.protocol.capabilities:
            steps.fail(
                f"le serveur ne propose pas STARTTLS sur le port {target.port} : choisissez "
                f"{target.setting('SECURITY')} = tls (port {IMAP_PORTS['tls']}) si le serveur "
                "chiffre dès la connexion, ou demandez à l'hébergeur d'activer STARTTLS."
            )
        try:
            await starttls(client, target.host, context, step_seconds)
        except ChannelUnavailable:
            steps.fail(
                "le serveur a refusé STARTTLS : transmettez ce message à l'hébergeur du serveur."
            )
        steps.ok("tls", _imap_tls_done(target, client, "STARTTLS accepté"))
    steps.ok("greeting", f"le serveur répond ({client.protocol.imap_version or 'IMAP'})")


def _imap_tls_done(target: _Target, client: Any, what: str) -> str:
    version = _tls_version(client.protocol.transport)
    return f"{what} ({version}), certificat vérifié pour « {target.host} »"


async def _imap_login(
    steps: _Steps, target: _Target, client: Any, username: str, password: str | None
) -> None:
    user_setting, password_setting = target.setting("USERNAME"), target.setting("PASSWORD")
    if not username:
        steps.fail(
            f"{user_setting} est vide : indiquez l'identifiant de la boîte aux lettres "
            "(souvent l'adresse complète)."
        )
    if not password:
        steps.fail(f"{password_setting} n'est pas défini : indiquez le mot de passe de la boîte.")
    if client.has_capability("LOGINDISABLED"):
        steps.fail(
            "le serveur refuse les mots de passe sur une connexion en clair : choisissez "
            f"{target.setting('SECURITY')} = starttls ou tls."
        )
    response = await client.login(username, password)
    if response.result != "OK":
        code = _response_code(response.lines)
        if code == "UNAVAILABLE":
            steps.fail(
                "le service d'authentification du serveur est momentanément indisponible : "
                "réessayez dans quelques minutes."
            )
        if code == "PRIVACYREQUIRED":
            steps.fail(
                "le serveur exige une connexion chiffrée pour s'authentifier : choisissez "
                f"{target.setting('SECURITY')} = starttls ou tls."
            )
        steps.fail(
            f"identifiant ou mot de passe refusé par le serveur : vérifiez {user_setting} et "
            f"{password_setting} (certains fournisseurs exigent un mot de passe d'application)."
        )
    if client.has_capability("IDLE"):
        how = "il propose IDLE : les réponses seront lues dès leur arrivée"
    else:
        how = (
            "il ne propose pas IDLE : la boîte sera relue toutes les "
            "CORDEE_IMAP_POLL_SECONDS secondes"
        )
    steps.ok("auth", f"identifiant et mot de passe acceptés ; {how}")


async def _imap_folders(
    steps: _Steps, target: _Target, client: Any, folder: str, processed_folder: str
) -> None:
    folder_setting = target.setting("FOLDER")
    processed_setting = target.setting("PROCESSED_FOLDER")
    # STATUS, unlike SELECT, never creates the folder on lenient servers.
    if not await _folder_exists(client, folder):
        steps.fail(
            f"le dossier « {folder} » n'existe pas sur le serveur. "
            f"{await _existing_folders(client)} Corrigez {folder_setting}."
        )
    response = await client.select(quote_mailbox(folder))
    if response.result != "OK":
        steps.fail(
            f"le dossier « {folder} » ne peut pas être ouvert : vérifiez que le compte a le droit "
            "de le lire et de le modifier."
        )
    if any(b"[READ-ONLY]" in bytes(line).upper() for line in response.lines):
        steps.fail(
            f"le dossier « {folder} » s'ouvre en lecture seule : Cordée ne pourrait pas marquer "
            "les courriels traités. Donnez au compte le droit de modifier ce dossier."
        )
    try:
        parse_uidvalidity(response.lines)
    except ChannelUnavailable:
        steps.fail(
            f"le serveur ne donne pas d'UIDVALIDITY pour « {folder} » : Cordée ne peut pas "
            "suivre ce dossier. Choisissez un autre serveur ou un autre dossier."
        )
    count = aioimaplib.extract_exists(response)
    steps.ok("folder", f"« {folder} » ouvert ({count if count is not None else '?'} message(s))")

    if not processed_folder:
        steps.skip(
            "processed_folder",
            f"aucun ({processed_setting} vide) : les courriels traités restent dans "
            f"« {folder} », marqués comme lus.",
        )
        return
    if _same_folder(processed_folder, folder):
        steps.fail(
            f"{processed_setting} désigne le dossier surveillé « {folder} » : choisissez un "
            "autre dossier (par ex. Traités), ou laissez ce réglage vide."
        )
    if not await _folder_exists(client, processed_folder):
        steps.fail(
            f"le dossier « {processed_folder} » n'existe pas sur le serveur. "
            f"{await _existing_folders(client)} Créez-le depuis votre messagerie, ou corrigez "
            f"{processed_setting}."
        )
    if client.has_capability("MOVE"):
        how = "ils y seront déplacés (MOVE)"
    elif client.has_capability("UIDPLUS"):
        how = f"ils y seront copiés, puis retirés de « {folder} »"
    else:
        how = (
            f"ils y seront copiés ; l'original restera dans « {folder} », marqué supprimé, "
            "jusqu'à ce que votre messagerie vide la corbeille (le serveur ne propose ni MOVE "
            "ni UIDPLUS)"
        )
    steps.ok("processed_folder", f"« {processed_folder} » existe : {how}.")


async def _folder_exists(client: Any, folder: str) -> bool:
    response = await client.status(quote_mailbox(folder), "(MESSAGES)")
    return bool(response.result == "OK")


async def _existing_folders(client: Any) -> str:
    """« Dossiers existants : … », a few names, for a person to pick the right one."""
    try:
        response = await client.list('""', "*")
    except (*CONNECTION_ERRORS, TimeoutError):
        return "La liste des dossiers n'a pas pu être lue."
    names = _folder_names(response.lines) if response.result == "OK" else []
    if not names:
        return "La liste des dossiers n'a pas pu être lue."
    shown = ", ".join(f"« {name} »" for name in names[:FOLDERS_SHOWN])
    more = f" (et {len(names) - FOLDERS_SHOWN} autres)" if len(names) > FOLDERS_SHOWN else ""
    return f"Dossiers existants : {shown}{more}."


def _folder_names(lines: Sequence[Any]) -> list[str]:
    """Selectable folder names from a LIST answer, decoded from IMAP's modified UTF-7."""
    names: list[str] = []
    index = 0
    while index < len(lines):
        line = bytes(lines[index])
        match = _LIST_LINE.match(line)
        index += 1
        if match is None:
            continue
        raw = match.group("name")
        if re.fullmatch(rb"\{\d+\}", raw) and index < len(lines):
            raw = bytes(lines[index])  # the name came as a literal
            index += 1
        elif raw.startswith(b'"') and raw.endswith(b'"') and len(raw) >= 2:
            raw = re.sub(rb'\\(["\\])', rb"\1", raw[1:-1])
        if b"\\noselect" in match.group("flags").lower():
            continue
        names.append(_decode_modified_utf7(raw.decode("utf-8", errors="replace")))
    return sorted(set(names), key=lambda name: (name.upper() != "INBOX", name.casefold()))


def _decode_modified_utf7(name: str) -> str:
    """« Bo&AO4-te » → « Boîte » (RFC 3501 §5.1.3); a name that does not decode stays as is."""

    def decode(match: re.Match[str]) -> str:
        chunk = match.group(1)
        if not chunk:
            return "&"
        padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
        return base64.b64decode(padded).decode("utf-16-be")

    try:
        return _MODIFIED_BASE64.sub(decode, name)
    except (binascii.Error, UnicodeDecodeError):
        return name


def _same_folder(first: str, second: str) -> bool:
    # INBOX is the one case-insensitive name (RFC 3501 §5.1).
    if first.upper() == "INBOX" and second.upper() == "INBOX":
        return True
    return first == second


def _response_code(lines: Sequence[Any]) -> str:
    """The response code of a tagged answer, e.g. AUTHENTICATIONFAILED (RFC 5530)."""
    if not lines:
        return ""
    match = _RESPONSE_CODE.match(bytes(lines[-1]).strip())
    return match.group("code").decode().upper() if match else ""


async def _imap_close(client: Any) -> None:
    with contextlib.suppress(*CONNECTION_ERRORS, TimeoutError):
        if client.protocol.state in (aioimaplib.NONAUTH, aioimaplib.AUTH, aioimaplib.SELECTED):
            await asyncio.wait_for(client.logout(), LOGOUT_TIMEOUT_SECONDS)
    transport = client.protocol.transport
    if transport is not None:
        transport.close()


# -- Maildir -------------------------------------------------------------------------------------

MAILDIR_ROLES = {
    "outbox": (
        "Envoi",
        "CORDEE_SMTP_HOST",
        "CORDEE_OUTBOX_DIR",
        "les courriels sont écrits en fichiers .eml dans {new}",
    ),
    "inbox": (
        "Réception",
        "CORDEE_IMAP_HOST",
        "CORDEE_INBOX_DIR",
        "les réponses déposées dans {new} sont lues",
    ),
}


def check_maildir(server: str, directory: Path) -> list[CheckResult]:
    """The embedded Maildir is in use: it exists or can be created, and is writable."""
    title, host_setting, dir_setting, use = MAILDIR_ROLES[server]
    steps = _Steps(server, title, (("maildir", "Maildir"),))
    intro = f"Maildir intégré ({host_setting} vide) : {use.format(new=directory / 'new')}"
    with contextlib.suppress(_Stop):
        outcome = _maildir_usable(steps, directory, dir_setting)
        steps.ok("maildir", f"{intro} ; {outcome}.")
    return steps.results()


def _maildir_usable(steps: _Steps, directory: Path, dir_setting: str) -> str:
    if directory.exists():
        if not directory.is_dir():
            steps.fail(
                f"{directory} existe mais n'est pas un dossier : choisissez un autre chemin avec "
                f"{dir_setting}."
            )
        for sub in MAILDIR_SUBDIRS:
            if (directory / sub).exists() and not (directory / sub).is_dir():
                steps.fail(
                    f"{directory / sub} n'est pas un dossier : déplacez ce fichier, ou choisissez "
                    f"un autre chemin avec {dir_setting}."
                )
        probe = directory / "tmp" if (directory / "tmp").is_dir() else directory
        outcome = "dossier accessible en écriture"
    else:
        probe = next(parent for parent in directory.parents if parent.exists())
        if not probe.is_dir():
            steps.fail(
                f"{probe} n'est pas un dossier : {directory} ne peut pas y être créé. Choisissez "
                f"un autre chemin avec {dir_setting}."
            )
        outcome = (
            "il sera créé au premier démarrage (le dossier qui le contiendra, "
            f"{probe.resolve()}, est accessible en écriture)"
        )
    try:
        # What matters is whether Cordée may write here, whatever the permission bits say.
        with tempfile.TemporaryFile(dir=probe, prefix=".cordee-check-"):
            pass
    except OSError as error:
        steps.fail(
            f"écriture impossible dans {probe} ({error.strerror or type(error).__name__}) : "
            "donnez le droit d'écriture à l'utilisateur qui lance Cordée, ou choisissez un autre "
            f"dossier avec {dir_setting}."
        )
    return outcome
