"""A griffe extension: the reStructuredText bits of our docstrings, as Markdown.

The docstrings are Google style, read by ``help()`` and IDEs as well as by
mkdocstrings, and use a few reST habits that Markdown does not know:

- Sphinx roles (``:class:`~pkg.Name```) become code spans (``Name``);
- a paragraph ending in ``::`` introduces a literal block, which becomes a
  fenced block (``Example::`` stays a Google "Example:" section);
- simple tables (``====  ====``) become Markdown tables;
- ``# doctest: +SKIP`` markers are dropped;
- an error code in double backticks links to its entry in the Concepts page.

Loaded by ``mkdocs.yml`` (``extensions:`` of the python handler).
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

from client_sdk.protocol import ErrorCode

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|data|mod|exc|obj|const):`(~?)([^`]+)`")
_DOCTEST_SKIP = re.compile(r"\s*#\s*doctest:\s*\+SKIP")
_TABLE_RULE = re.compile(r"^\s*=+(\s+=+)+\s*$")
_ERROR_CODE = re.compile(r"``(" + "|".join(code.value for code in ErrorCode) + r")``")
_SHELL_WORDS = ("intraday-live", "pip ", "python ", "pytest ", "curl ", "$ ")


def _role(match: re.Match[str]) -> str:
    short, target = match.groups()
    name = target.rsplit(".", 1)[-1] if short else target
    return f"`{name}`"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _language(block: list[str]) -> str:
    text = "\n".join(block)
    if any(char in text for char in "├└│"):
        return "text"
    if block and block[0].lstrip().startswith(_SHELL_WORDS):
        return "sh"
    return "python"


def _literal_blocks(lines: list[str]) -> list[str]:
    """``text::`` + an indented block -> ``text:`` + a fenced block."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.rstrip().endswith("::"):
            out.append(line)
            i += 1
            continue
        base = _indent(line)
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        block: list[str] = []
        while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > base):
            block.append(lines[j])
            j += 1
        while block and not block[-1].strip():
            block.pop()
        if not block:
            out.append(line)
            i += 1
            continue
        head = line.rstrip()[:-2].rstrip()
        pad = " " * base
        body_indent = min(_indent(b) for b in block if b.strip())
        section = bool(re.fullmatch(r"\s*Examples?", head))
        fence_pad = " " * (base + 4) if section else pad
        if head.strip():
            out.append(head + ":")
            if not section:
                out.append("")
        out.append(f"{fence_pad}```{_language([b[body_indent:] for b in block])}")
        out.extend(fence_pad + b[body_indent:] if b.strip() else "" for b in block)
        out.append(f"{fence_pad}```")
        out.append("")
        i = j
    return out


def _tables(lines: list[str]) -> list[str]:
    """reST simple tables (``===  ===`` rules) -> Markdown tables."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not _TABLE_RULE.match(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        rule = lines[i]
        starts = [m.start() for m in re.finditer(r"=+", rule)]
        rows: list[list[str]] = []
        rules = 1
        j = i + 1
        while j < len(lines) and rules < 3:
            if _TABLE_RULE.match(lines[j]):
                rules += 1
            elif lines[j].strip():
                cells = [
                    lines[j][start : starts[k + 1] if k + 1 < len(starts) else None].strip()
                    for k, start in enumerate(starts)
                ]
                if rows and not cells[0] and rules > 1:  # a continuation line
                    rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
                else:
                    rows.append(cells)
            j += 1
        pad = rule[: starts[0]]
        header, *body = rows
        out.append(pad + "| " + " | ".join(header) + " |")
        out.append(pad + "|" + "---|" * len(header))
        out.extend(pad + "| " + " | ".join(row) + " |" for row in body)
        i = j
    return out


def to_markdown(text: str) -> str:
    """Our docstring dialect of reST, in Markdown."""
    text = _DOCTEST_SKIP.sub("", text)
    lines = _literal_blocks(_tables(text.splitlines()))  # tables first: columns are positions
    text = _ERROR_CODE.sub(r"[`\1`][\1]", "\n".join(lines))
    return _ROLE.sub(_role, text)


class RstToMarkdown(Extension):
    """Rewrite every docstring of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg: Object, **kwargs: Any) -> None:
        self._convert(pkg)

    def _convert(self, obj: Object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._convert(member)  # type: ignore[arg-type]
