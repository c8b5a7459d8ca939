"""Fixtures shared by the test modules.

`shared_analysis`: tests that drive the CLI only to read what it prints or writes (exit codes of
--fail-on rules, JUnit, annotations, the README's CI commands) share one analysis of each input folder
for the whole test run, instead of analyzing the sample again for each command line. The CLI runs
exactly as it does for users (options, checks, rendering, writing); only `pipeline.run_report` answers
a request it has already answered from memory. A module opts in with
`pytestmark = pytest.mark.usefixtures("shared_analysis")`; tests of the analysis itself, and of
determinism (the same input analyzed twice gives the same bytes), do not.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from s3server import s3, s3_server  # noqa: F401  (the local S3 server's fixtures, for every module)

from analyzer import pipeline

_ANSWERED: dict[object, pipeline.Analysis] = {}


@pytest.fixture
def shared_analysis(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`pipeline.run_report` memoized per (request, options) for the whole test run."""
    real = pipeline.run_report

    def remembered(request: pipeline.ReportRequest, **options: Any) -> pipeline.Analysis:
        key = (request, tuple(sorted((k, v) for k, v in options.items() if k != "progress")))
        try:
            hash(key)
        except TypeError:  # a request built with lists: not remembered, answered afresh
            return real(request, **options)
        if key not in _ANSWERED:
            _ANSWERED[key] = real(request, **options)
        return _ANSWERED[key]

    monkeypatch.setattr(pipeline, "run_report", remembered)
    yield
