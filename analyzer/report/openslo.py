"""The SLO the report used, as an OpenSLO v1 `SLO` document (YAML), for `--openslo FILE`.

The indicator is a ratio metric, bad over total: gateway requests answered with one of
`[bursts] statuses` over all requests; the objective is `[slo] target`; the time window is
`[postmortem] slo_window`, rolling; the budget is counted in Occurrences (requests), as the report's
`summary.error_budget_consumed` is. The YAML is written by hand, in a fixed order, so the same settings
give the same bytes.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Final

from analyzer.config import Settings

API_VERSION: Final = "openslo/v1"
NAME: Final = "llm-api-availability"  # metadata.name: RFC 1123, at most 63 characters
SERVICE: Final = "llm-api"


def _shorthand(window: timedelta) -> str:
    """A duration in OpenSLO's shorthand: 30d, 12h, 90m, 45s (the largest whole unit)."""
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _q(text: str) -> str:
    """A YAML scalar in double quotes (JSON's string escaping is valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def render_openslo(settings: Settings) -> str:
    """The OpenSLO v1 SLO document of `settings`' availability SLO."""
    statuses = ", ".join(str(s) for s in settings.bursts.statuses)
    target = settings.slo.target
    window = _shorthand(settings.postmortem.slo_window)
    bad = f"gateway requests answered with status {statuses}"
    lines = [
        f"apiVersion: {API_VERSION}",
        "kind: SLO",
        "metadata:",
        f"  name: {NAME}",
        f"  displayName: {_q('LLM API availability')}",
        "spec:",
        f"  description: {_q(f'Share of gateway requests not answered with a 5xx ({statuses}), as analyzer report measures it.')}",
        f"  service: {SERVICE}",
        "  indicator:",
        "    metadata:",
        f"      name: {NAME}-5xx-ratio",
        f"      displayName: {_q('5xx responses over all requests')}",
        "    spec:",
        "      ratioMetric:",
        "        counter: false",
        "        bad:",
        "          metricSource:",
        "            type: analyzer",
        "            spec:",
        f"              query: {_q(bad)}",
        "        total:",
        "          metricSource:",
        "            type: analyzer",
        "            spec:",
        f"              query: {_q('all gateway requests')}",
        "  timeWindow:",
        f"    - duration: {window}",
        "      isRolling: true",
        "  budgetingMethod: Occurrences",
        "  objectives:",
        f"    - displayName: {_q(f'{target * 100:g}% of requests without a 5xx')}",
        f"      target: {target!r}",
    ]
    return "\n".join(lines) + "\n"
