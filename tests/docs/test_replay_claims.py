"""What the guides say about replay is what the reference server does.

Issue 21 item 3: ``docs/concepts.md`` and ``docs/troubleshooting.md`` still
said the reference server does not replay, long after it did; an on-call
reader took replayed alerts for lost ones. The pages a user reads when
something was missed must say that missed messages come back marked
``Message.replayed`` and that what cannot come back is reported as a gap.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
# "the reference server does not replay", "does not offer replay yet", ...
DENIES_REPLAY = re.compile(
    r"reference\s+server\s+(?:does\s+not|doesn't|cannot)\s+(?:offer\s+)?replay"
    r"|server\s+does\s+not\s+(?:offer\s+)?replay",
    re.IGNORECASE,
)


def test_no_page_says_the_reference_server_does_not_replay() -> None:
    claims = [
        f"{page.name}: {match.group(0)!r}"
        for page in sorted(DOCS.rglob("*.md"))
        for match in DENIES_REPLAY.finditer(page.read_text(encoding="utf-8"))
    ]
    assert claims == []


@pytest.mark.parametrize("page", ["concepts.md", "troubleshooting.md"])
def test_the_pages_about_missed_messages_name_replay_and_gaps(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    assert "Message.replayed" in text
    assert re.search(r"\bgaps?\b", text, re.IGNORECASE)
