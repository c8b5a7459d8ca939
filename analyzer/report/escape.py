"""The one escaping function every renderer uses on strings that came from the logs."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_MD = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    "|": "&#124;",
    "`": "&#96;",
    "[": "&#91;",
    "]": "&#93;",
    "*": "&#42;",
    "#": "&#35;",
    "\\": "&#92;",
    "~": "&#126;",
}
# Mermaid has no reliable escape inside gantt/xychart labels: swap breaking characters for look-alikes.
_MERMAID = {
    '"': "'",
    ":": "∶",
    ";": "；",
    "#": "＃",
    "%": "％",
    "`": "'",
    "<": "‹",
    ">": "›",
    "&": "＆",
    "|": "¦",
    "{": "(",
    "}": ")",
    "[": "(",
    "]": ")",
    ",": "‚",
}


def escape(text: object, where: str = "md") -> str:
    """Make a log string safe in a Markdown table cell ("md") or a Mermaid label ("mermaid")."""
    flat = _CONTROL.sub(" ", "" if text is None else str(text))
    table = _MERMAID if where == "mermaid" else _MD
    return "".join(table.get(c, c) for c in flat)
