"""Each voice platform's documented request (tests/fixtures/platforms/) and how the tests send it.

Shared by tests/test_platforms.py (each fixture through the app) and tests/test_platforms_doc.py
(each platform page's curl example in docs/platforms/ against its fixture).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parents[1] / "fixtures" / "platforms"
CHAT_FIXTURES = sorted(p.stem for p in FIXTURES.glob("*.json") if p.stem not in ("ims_call_control", "ims_form"))
TOKEN = "platform-token-0123456789"
ANSWER = ["Sure", ", here it is."]


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def with_token(headers: dict[str, str]) -> dict[str, str]:
    """The fixture's headers, the operator's key (shown as <...> in the docs) replaced by ours.

    A platform whose docs show no credential header (AICCS) gets the bearer header an
    operator would configure for it.
    """
    filled = {} if {h.lower() for h in headers} & {"authorization", "x-api-key"} else {
        "Authorization": f"Bearer {TOKEN}"}
    for name, value in headers.items():
        if name.lower() == "authorization":
            value = f"Bearer {TOKEN}"
        elif name.lower() == "x-api-key":
            value = TOKEN
        filled[name] = re.sub(r"<[^>]*>", "x", value)
    return filled


def path_for(fixture: dict[str, Any]) -> str:
    """Where the platform posts: the base URL plus what it appends, or the chat URL pasted whole."""
    appended = fixture.get("appends_path") or ""
    return "/v1" + appended if appended else "/chat/completions"
