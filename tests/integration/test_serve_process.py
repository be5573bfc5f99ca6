"""`cordee serve` as a newcomer runs it: a real process that serves, then stops on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_serve_answers_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CORDEE_DATA_DIR": str(tmp_path / "var"),
        "CORDEE_PORT": "0",
    }
    subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade"],
        env=env,
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        lines: list[str] = []
        match = None
        while match is None and len(lines) < 20:  # the banner comes first, after any warnings
            lines.append(server.stderr.readline())
            match = re.search(r"écoute sur (http://127\.0\.0\.1:\d+)", lines[-1])
            if lines[-1] == "":
                break  # the process ended
        assert match, lines
        with urllib.request.urlopen(match.group(1) + "/health", timeout=10) as response:  # noqa: S310
            assert response.status == 200
            assert json.load(response)["status"] == "ok"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()
    assert (tmp_path / "var" / "secret_key").is_file()
    assert (tmp_path / "var" / "inbox" / "new").is_dir()
