"""The one escaping function every renderer uses on strings that came from the logs."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
MAX_CHARS = 400  # of one log string in a human rendering
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
    # GitHub turns @name into a mention and links bare URLs; neither may come from a log line.
    "@": "&#64;",
}
_AUTOLINK = re.compile(r"(?i)(?<=[a-z0-9]):(?=//)|(?<=www)\.")
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
    """Make a log string safe in a Markdown table cell ("md"), a Mermaid label ("mermaid") or a terminal."""
    # Control characters would end a table row, or reach a terminal as escape sequences.
    flat = _CONTROL.sub(" ", "" if text is None else str(text))
    if len(flat) > MAX_CHARS:  # a 1 MB "account id" would bury the report; the JSON keeps it whole
        flat = flat[: MAX_CHARS - 1] + "…"
    if where == "terminal":
        return flat
    if where == "mermaid":
        return "".join(_MERMAID.get(c, c) for c in flat)
    return _AUTOLINK.sub(
        lambda m: "&#58;" if m.group() == ":" else "&#46;", "".join(_MD.get(c, c) for c in flat)
    )
