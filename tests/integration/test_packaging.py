"""The wheel carries templates, schemas and migrations, and Cordée finds them once installed."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("cordee-*.whl")
    return built


def test_the_wheel_ships_templates_schemas_and_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "bot/_data/templates/fr/access_request/partner/request.html.j2" in names
    assert "bot/_data/templates/en/access_request/partner/request.txt.j2" in names
    assert any(name.startswith("bot/_data/xsd/") and name.endswith(".xsd") for name in names)
    assert "bot/store/migrations/env.py" in names
    assert any(name.startswith("bot/store/migrations/versions/0001") for name in names)
    assert "workflows/access_request.py" in names


def test_an_installed_wheel_finds_its_templates(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "from bot.resources import templates_dir, xsd_dir\n"
        "from workflows.access_request import WORKFLOW\n"
        "print(templates_dir()); print(xsd_dir()); print(WORKFLOW.name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert result.returncode == 0, result.stderr
    templates, schemas, name = result.stdout.split()
    assert Path(templates) == site / "bot" / "_data" / "templates"
    assert Path(schemas) == site / "bot" / "_data" / "xsd"
    assert name == "access_request"
