"""A throwaway Dovecot (IMAP, IMAPS with its own CA, LMTP) on loopback, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import trustme

BOT = "bot@cordee.example"
PASSWORD = "secret"
START_TIMEOUT_SECONDS = 30.0


class DovecotUnavailable(RuntimeError):
    """Dovecot is installed but did not start; the message carries its log."""


@dataclass(frozen=True)
class Dovecot:
    imap_port: int
    imaps_port: int
    lmtp_port: int
    authority: trustme.CA

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.authority.configure_trust(context)
        return context


def dovecot_executable() -> str | None:
    found = shutil.which("dovecot")
    if found is None and Path("/usr/sbin/dovecot").exists():
        found = "/usr/sbin/dovecot"
    return found


def deliver_by_lmtp(
    server: Dovecot, sender: str, message: bytes, recipients: tuple[str, ...] = (BOT,)
) -> None:
    """Hand a message to Dovecot as a mail server would: it is in the mailbox on return."""
    with smtplib.LMTP("127.0.0.1", server.lmtp_port) as lmtp:
        lmtp.sendmail(sender, list(recipients), message)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def _wait(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)  # waiting for a server process, not moving time
    return condition()


@contextlib.contextmanager
def running_dovecot(root: Path) -> Iterator[Dovecot]:
    """Start Dovecot with its configuration, state and logs under `root`; stop it on exit.

    One user, BOT, whose password is PASSWORD (any user name logs in, with its own mailbox).
    Raises FileNotFoundError when Dovecot is not installed, DovecotUnavailable when it does not
    start.
    """
    executable = dovecot_executable()
    if executable is None:
        raise FileNotFoundError("dovecot")
    for sub in ("run", "state"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    # Dovecot refuses to give mail to uid 0: as root, the mailbox belongs to nobody, in a
    # folder that user can reach (pytest's temporary tree is private to root).
    uid, gid = (65534, 65534) if os.getuid() == 0 else (os.getuid(), os.getgid())
    mail_root = Path(tempfile.mkdtemp(prefix="cordee-dovecot-"))
    mail_root.chmod(0o755)
    os.chown(mail_root, uid, gid)
    imap_port, imaps_port, lmtp_port = _free_port(), _free_port(), _free_port()
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    certificate.cert_chain_pems[0].write_to_path(str(root / "cert.pem"))
    certificate.private_key_pem.write_to_path(str(root / "key.pem"))
    (root / "dovecot.conf").write_text(
        f"""
protocols = imap lmtp
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail_root}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
  unix_listener lmtp {{
    mode = 0600
  }}
}}
service imap-hibernate {{
  unix_listener imap-hibernate {{
    mode = 0600
  }}
}}
""",
        encoding="utf-8",
    )
    ports = (imap_port, imaps_port, lmtp_port)
    try:
        subprocess.run([executable, "-c", str(root / "dovecot.conf")], check=True, timeout=30)
        # Usually about a second.
        if not _wait(lambda: all(_listening(port) for port in ports), START_TIMEOUT_SECONDS):
            log = (root / "dovecot.log").read_text(encoding="utf-8", errors="replace")
            raise DovecotUnavailable(f"Dovecot did not start:\n{log}")
        yield Dovecot(imap_port, imaps_port, lmtp_port, authority)
    finally:
        pid_file = root / "run" / "master.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text(encoding="ascii").strip()), signal.SIGTERM)
        _wait(lambda: not _listening(imap_port), START_TIMEOUT_SECONDS)
        shutil.rmtree(mail_root, ignore_errors=True)
