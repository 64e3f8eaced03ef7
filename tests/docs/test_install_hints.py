"""Install hints a user can follow: the package is not on PyPI.

Issue 21 item 11: three messages and pages still said
``pip install 'intraday-live[...]'``, which fails for an unpublished package;
the hints name the extra from a checkout (``pip install -e '.[extra]'``) or a
wheel of ``make dist``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WHERE = ("client_sdk", "reference_server", "docs", "examples", "README.md", "CONTRIBUTING.md")
EXTRA_HINT = re.compile(r"pip install -e '\.\[([\w,]+)\]'")
FROM_AN_INDEX = re.compile(r"pip install\s+['\"]?intraday[-_]live\b")


def _texts() -> list[Path]:
    paths: list[Path] = []
    for where in WHERE:
        path = ROOT / where
        if path.is_file():
            paths.append(path)
        else:
            suffixes = {".py", ".md", ".ipynb", ".html", ".js"}
            paths += [p for p in sorted(path.rglob("*")) if p.suffix in suffixes]
    return paths


def test_no_hint_installs_the_package_from_an_index() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _texts()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if FROM_AN_INDEX.search(line)
    ]
    assert found == []


def test_every_extra_a_hint_names_exists_and_the_notebook_one_brings_jupyterlab() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    named = {
        extra.strip()
        for path in _texts()
        for group in re.findall(EXTRA_HINT, path.read_text(errors="replace"))
        for extra in group.split(",")
    }
    assert named
    assert named <= set(extras), named - set(extras)
    # The example notebook says `pip install -e '.[server,notebook]'` then `jupyter lab`.
    assert any(dependency.startswith("jupyterlab") for dependency in extras["notebook"])
    notebook = (ROOT / "examples" / "notebook" / "live_kpis.ipynb").read_text()
    assert "pip install -e '.[server,notebook]'" in notebook
