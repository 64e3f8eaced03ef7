"""The built wheel installs and its two commands start, away from the checkout.

Fast on purpose: the wheel is built without isolation (the dev extra has
hatchling), and the fresh venv gets only the wheel (``--no-deps``); its
dependencies come from this venv's site-packages through a ``.pth`` line.
A plain path in a ``.pth`` file does not process that directory's own
``.pth`` files, so the checkout's editable install stays out, and the test
checks that the commands run the wheel's copy of the packages.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT
    )


def test_the_wheel_installs_in_a_fresh_venv_and_its_commands_run(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    built = _run(
        sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, ROOT,
        cwd=tmp_path,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    [wheel] = dist.glob("intraday_live-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "client_sdk/py.typed" in names
    assert "reference_server/py.typed" in names
    assert any(name.endswith("licenses/LICENSE") for name in names), names

    fresh = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=False).create(fresh)
    python = fresh / "bin" / "python"
    purelib = _run(
        python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path
    ).stdout.strip()
    (Path(purelib) / "outer-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    installed = _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
        "--no-index", wheel,
        cwd=tmp_path,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr

    version = _run(fresh / "bin" / "intraday-live", "--version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == "intraday-live 0.1.0"
    serve_help = _run(fresh / "bin" / "intraday-live-server", "serve", "--help", cwd=tmp_path)
    assert serve_help.returncode == 0, serve_help.stderr
    assert "--max-connections-total" in serve_help.stdout
    where = _run(python, "-c", "import client_sdk; print(client_sdk.__file__)", cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(fresh), where.stdout
