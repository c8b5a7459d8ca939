"""The jobs the CLI runs, each one library call: find inputs, load, analyze, build the report, write it.

    run_report(request)   -> Analysis     the main job: timeline report of an incident
                                          (reconcile=False: gateway only, for `bursts` / `latency`)
    run_inspect(...)      -> Loaded list  what each input is and what could not be read
    run_convert(...)      -> InputReports canonical Parquet partitioned by hour, rejects accounted for
    write_outputs(...)                    JSON / Markdown / refunds / findings / rejects / JUnit files
    run_compare(base, new, rules)         two JSON reports side by side, and the compare rules that hold
    section_json(...)     -> str          some top-level keys of the JSON report, same shapes

Everything here is plain Python over library functions; the CLI only parses options and renders.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from analyzer import objstore
from analyzer.config import load_settings
from analyzer.detect import detect
from analyzer.engine import Engine, collector
from analyzer.errors import InputError, OutputError
from analyzer.findings import REFUND_TOKENS, Detection, InputReport, Reconciliation
from analyzer.ingest import Loaded, find_inputs, load
from analyzer.ingest.formats import COMPLETION_STAMPED
from analyzer.ingest.presets import USD
from analyzer.limits import audit_limits
from analyzer.limits.audit import TIER, questionable, with_tier
from analyzer.notes import Note
from analyzer.reconcile import reconcile, totals
from analyzer.reconcile.compensation import sla_accounts
from analyzer.report.exports import check_table_path
from analyzer.report.model import Report, build_report
from analyzer.schema import EVENTS, REJECT_FILE, REJECT_LINE, TS

if TYPE_CHECKING:
    from analyzer.compare import Comparison, Held

CONFIG_NAME = "analyzer.toml"


class Part(StrEnum):
    """What a job analyzes: `analyzer report` does all of it, `bursts`, `latency`, `reconcile` one each."""

    BURSTS = "bursts"  # 5xx bursts, with the burn-rate replay and log gaps of the same pass
    SPIKES = "spikes"  # latency spikes
    LEDGER = "ledger"  # the ledger reconciled against the gateway
    LIMITS = "limits"  # the rate-limit audit of every 429


ALL_PARTS: frozenset[Part] = frozenset(Part)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ReportRequest:
    """What `analyzer report` was asked for."""

    directory: Path | None = None
    gateway: Sequence[Path] = ()
    ledger: Sequence[Path] = ()
    events: Sequence[Path] = ()
    config: Path | None = None
    since: datetime | None = None
    until: datetime | None = None
    refunds_path: Path | None = None
    preset: str | None = None  # `--preset`: every input read as this known record shape
    usage: Sequence[Path] = ()  # `--usage`: a provider's usage export, for the totals check
    full: bool = False  # the human reports show every timeline happening
    engine: Engine = Engine.LOCAL  # `--engine ray`: inputs read by tasks on a Ray cluster
    ray_address: str | None = None  # `--ray-address`: the cluster (None: a local one)


@dataclass(frozen=True)
class Analysis:
    """The report and the frames behind it that can be exported."""

    report: Report
    detection: Detection
    reconciliation: Reconciliation | None
    rejects: pl.DataFrame
    input_paths: tuple[Path, ...]
    loaded: tuple[Loaded, ...] = field(default_factory=tuple)


def resolve_sources(request: ReportRequest) -> tuple[dict[str, list[Path]], Path | None]:
    """The inputs and config of a request: explicit paths win over what is found by name in its directory."""
    found: dict[str, list[Path]] = {"gateway": [], "ledger": [], "events": []}
    config = request.config
    directory = request.directory
    if directory is None and not request.gateway:
        directory = Path(".")
    if directory is not None:
        directory = objstore.local_path(directory)  # a URL's prefix fetched: found by name like a folder
        if not directory.exists():
            raise InputError("no such directory", path=str(directory))
        if not directory.is_dir():
            raise InputError(
                "not a directory (give files with --gateway/--ledger/--events)", path=str(directory)
            )
        found = find_inputs(directory)
        if config is None and (directory / CONFIG_NAME).is_file():
            config = directory / CONFIG_NAME
    explicit = {
        "gateway": list(request.gateway),
        "ledger": list(request.ledger),
        "events": list(request.events),
        "usage": list(request.usage),
    }
    sources = {kind: explicit[kind] or found.get(kind, []) for kind in explicit}
    if not sources["gateway"]:
        where = str(directory) if directory is not None else "the command line"
        raise InputError(
            "no gateway logs found (name them gateway*/access* or pass --gateway PATH)", path=where
        )
    return sources, config


def _window(frame: pl.LazyFrame, since: datetime | None, until: datetime | None) -> pl.LazyFrame:
    if since is not None:
        frame = frame.filter(pl.col(TS) >= since)
    if until is not None:
        frame = frame.filter(pl.col(TS) < until)
    return frame


def run_report(
    request: ReportRequest, *, progress: Progress | None = None, parts: frozenset[Part] = ALL_PARTS
) -> Analysis:
    """Load every input once, detect, reconcile, and build the incident report: of it, only `parts`."""
    say = progress or (lambda _msg: None)
    sources, config_path = resolve_sources(request)
    if Part.LEDGER not in parts:
        sources["ledger"] = []
    settings = load_settings(config_path).with_preset(request.preset)
    # The SLA's accounts file is read first: a missing one is an error before a byte of logs is read.
    covered = sla_accounts(settings) if Part.LEDGER in parts else None
    loaded: list[Loaded] = []
    if request.engine is Engine.RAY:
        from analyzer.engine import load_on_ray

        loaded = load_on_ray(sources, settings, address=request.ray_address, progress=say)
    for kind in ("gateway", "ledger", "events", "usage"):
        if sources[kind] and request.engine is Engine.LOCAL:
            say(f"loading {kind} ({len(sources[kind])} path(s))")
            loaded.append(load(kind, sources[kind], settings))
    by_kind = {item.kind: item for item in loaded}
    gateway = _window(by_kind["gateway"].frame, request.since, request.until)
    say("detecting bursts, latency spikes and log gaps")
    detect_on, detect_settings = gateway, settings
    if settings.limits is not None:  # the account's tier is a slice too
        detect_on = with_tier(gateway, settings.limits)
        slices = (*settings.bursts.slices, TIER)
        detect_settings = replace(settings, bursts=replace(settings.bursts, slices=slices))
    detection = detect(detect_on, detect_settings, bursts=Part.BURSTS in parts, spikes=Part.SPIKES in parts)
    reconciliation = None
    ledger = None
    if "ledger" in by_kind:
        say("reconciling the ledger")
        ledger = _window(by_kind["ledger"].frame, request.since, request.until)
        money = any(i.amounts == USD for i in by_kind["ledger"].inputs)  # a ledger in dollars
        reconciliation = reconcile(
            gateway,
            ledger,
            settings,
            money=money,
            gaps=detection.gaps,
            collect=collector(request.engine, say),
        )
    rate_limits = None
    if Part.LIMITS in parts:
        say("auditing the rate limiter")
        formats = {i.format for i in by_kind["gateway"].inputs}
        completion = bool(formats) and formats <= COMPLETION_STAMPED
        rate_limits = audit_limits(gateway, ledger, settings.limits, completion_logged=completion)
    usage_totals = None
    if "usage" in by_kind:
        say("checking the usage export's totals")
        usage_totals = totals.usage_totals(
            gateway, _window(by_kind["usage"].frame, request.since, request.until)
        )
    events = (
        _window(by_kind["events"].frame, request.since, request.until).collect()
        if "events" in by_kind
        else pl.DataFrame(schema=EVENTS)
    )
    inputs: list[InputReport] = [report for item in loaded for report in item.inputs]
    notes = [note for item in loaded for note in item.notes]
    rejects = concat_rejects(loaded)
    converted = _converted(request)
    if converted is not None:
        inputs, notes, rejects = converted
    say("building the report")
    report = build_report(
        inputs,
        detection,
        reconciliation,
        events,
        settings,
        full=request.full,
        notes=notes,
        refunds_path=None if request.refunds_path is None else str(request.refunds_path),
        rate_limits=rate_limits,
        usage_totals=usage_totals,
        engine=request.engine,
    )
    if Part.LEDGER in parts:
        report = _with_compensation(report, gateway, by_kind, request, reconciliation, covered)
    input_paths = tuple(Path(i.path) for i in inputs) + tuple(p for ps in sources.values() for p in ps)
    return Analysis(report, detection, reconciliation, rejects, input_paths, tuple(loaded))


def _with_compensation(
    report: Report,
    gateway: pl.LazyFrame,
    by_kind: dict[str, Loaded],
    request: ReportRequest,
    reconciliation: Reconciliation | None,
    covered: pl.DataFrame | None,
) -> Report:
    """The report with its Compensation section: the remedy's coverage and the SLA credits over the
    incident window the summary found; the 429s the rate-limit audit found wrong count as failed."""
    from dataclasses import replace

    from analyzer.reconcile.compensation import compensate, wrong_429s

    ledger = _window(by_kind["ledger"].frame, request.since, request.until) if "ledger" in by_kind else None
    incident = (report.summary["first_symptom_at"], report.summary["last_symptom_at"])
    remedy = None if reconciliation is None else reconciliation.remedy
    wrong = wrong_429s(report.rate_limits)
    found = compensate(gateway, ledger, remedy, covered, report.settings, incident, wrong)  # type: ignore[arg-type]
    return replace(report, compensation=found)


def _converted(request: ReportRequest) -> tuple[list[InputReport], list[Note], pl.DataFrame] | None:
    """For a folder written by `analyzer convert` (and nothing given explicitly): the original inputs'
    reports, notes and rejected lines from its manifest, so the report still says what they lost."""
    from analyzer.convert import REJECTS, read_manifest, read_manifest_notes

    if request.directory is None or request.gateway or request.ledger or request.events:
        return None
    directory = objstore.local_path(request.directory)
    reports = read_manifest(directory)
    if reports is None:
        return None
    rejects_path = directory / REJECTS
    rejects = pl.read_parquet(rejects_path) if rejects_path.is_file() else pl.DataFrame()
    return reports, read_manifest_notes(directory), rejects


def run_inspect(
    paths: Sequence[Path], kind: str, config: Path | None, preset: str | None = None
) -> list[Loaded]:
    """Load the given inputs as `kind` (as the known record shape `preset`) and say what each one is."""
    settings = load_settings(config).with_preset(preset)
    return [load(kind, list(paths), settings)]


def section_json(report: Report, keys: Sequence[str]) -> str:
    """Only `keys` of the JSON report, in the same shapes as in the full report (a contract)."""
    import json

    from analyzer.report.jsonreport import render_json

    doc = json.loads(render_json(report))
    return json.dumps({k: doc[k] for k in keys}, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def run_convert(request: ReportRequest, out: Path, *, progress: Progress | None = None) -> list[InputReport]:
    """Parse the request's inputs once into canonical Parquet under `out`, partitioned by hour."""
    from analyzer.convert import convert

    say = progress or (lambda _msg: None)
    sources, config_path = resolve_sources(request)
    say(f"converting into {out}")
    return convert({k: v for k, v in sources.items() if v}, out, load_settings(config_path))


def check_outputs(
    request: ReportRequest, *, files: Sequence[Path | None] = (), tables: Sequence[Path | None] = ()
) -> None:
    """Before any log is read: every output can be written where it is asked for (its folder exists and
    is writable, it is not a folder, it is not an input or inside an input folder) and every table
    has a suffix it can be written as. A full run is not spent to find a typo in a path."""
    sources, _ = resolve_sources(request)
    inputs = [p for paths in sources.values() for p in paths]
    if request.directory is not None:
        inputs.append(request.directory)
    for path, table in [*((p, False) for p in files), *((p, True) for p in tables)]:
        if path is None:
            continue
        if table:
            check_table_path(path)
        if path.is_dir():
            raise OutputError("is a folder (give a file name)", path=str(path))
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise OutputError(f"no such folder: {folder}", path=str(path))
        guard_output(path, inputs)
        if path.exists() and not os.access(path, os.W_OK):
            raise OutputError("cannot write: permission denied", path=str(path))
        # A file made and removed in the folder: os.access says yes to root on a read-only mount or
        # in /proc, where the write at the end of the run would fail.
        try:
            tempfile.TemporaryFile(dir=folder).close()
        except OSError as e:
            raise OutputError(f"cannot write: {e.strerror or e}", path=str(path)) from None


def guard_output(path: Path, inputs: Sequence[Path]) -> None:
    """Refuse to write a report over one of the inputs it was made from."""
    target = path.resolve()
    for p in inputs:
        source = p.resolve()
        if source == target:
            raise OutputError("refusing to overwrite an input file with a report", path=str(path))
        if source.is_dir() and source in target.parents:
            # The next run would read the report back as a log file.
            raise OutputError(f"refusing to write a report inside an input folder ({p})", path=str(path))


def write_text(path: Path, text: str, inputs: Sequence[Path], *, append: bool = False) -> None:
    """Write a report file (or add to its end), never over an input, with an OutputError naming the path
    on failure."""
    guard_output(path, inputs)
    try:
        with path.open("a" if append else "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise OutputError(f"cannot write: {e.strerror}", path=str(path)) from None


def describe_inputs(loaded: Sequence[Loaded]) -> list[dict[str, object]]:
    """Plain, JSON-able rows describing every input of `loaded`, for `analyzer inspect` (as in the report)."""
    from analyzer.report.jsonreport import input_dict

    return [input_dict(i) for item in loaded for i in item.inputs]


def concat_rejects(loaded: Sequence[Loaded]) -> pl.DataFrame:
    """The rejected lines of every loaded kind in one frame."""
    return pl.concat([item.rejects for item in loaded], how="vertical_relaxed")


def write_rejects(rejects: pl.DataFrame, path: Path, inputs: Sequence[Path]) -> None:
    """Write every rejected raw line with its file, line number and reason."""
    from analyzer.report.exports import write_table

    guard_output(path, inputs)
    write_table(rejects.sort(REJECT_FILE, REJECT_LINE) if rejects.width else rejects, path)


def write_outputs(
    analysis: Analysis,
    *,
    json_path: Path | None = None,
    markdown_path: Path | None = None,
    refunds_path: Path | None = None,
    findings_path: Path | None = None,
    rejects_path: Path | None = None,
    junit_path: Path | None = None,
    openslo_path: Path | None = None,
    rules: Sequence[str] = (),
    append_markdown: bool = False,
    compensation_path: Path | None = None,
    throttled_path: Path | None = None,
) -> list[Path]:
    """Write the requested report files, never over an input; return the paths written.

    `append_markdown`: add the Markdown to the end of its file (GitHub's $GITHUB_STEP_SUMMARY holds what
    earlier steps wrote); `rules` are the --fail-on rules the JUnit file has a test case for."""
    from analyzer.report.exports import write_table
    from analyzer.report.jsonreport import render_json
    from analyzer.report.markdown import render_markdown

    inputs = analysis.input_paths
    written: list[Path] = []
    if json_path is not None:
        write_text(json_path, render_json(analysis.report), inputs)
        written.append(json_path)
    if markdown_path is not None:
        write_text(markdown_path, render_markdown(analysis.report), inputs, append=append_markdown)
        written.append(markdown_path)
    if junit_path is not None:
        from analyzer.report.ci import render_junit

        write_text(junit_path, render_junit(analysis.report, rules), inputs)
        written.append(junit_path)
    if openslo_path is not None:
        from analyzer.report.openslo import render_openslo

        write_text(openslo_path, render_openslo(analysis.report.settings), inputs)
        written.append(openslo_path)
    rec = analysis.reconciliation
    for path, frame in (
        (refunds_path, None if rec is None else rec.accounts.filter(pl.col(REFUND_TOKENS) > 0)),
        (findings_path, None if rec is None else rec.findings),
    ):
        if path is None:
            continue
        if frame is None:
            raise InputError("no ledger was given, so there is nothing to write", path=str(path))
        guard_output(path, inputs)
        write_table(frame, path)
        written.append(path)
    if rejects_path is not None:
        write_rejects(analysis.rejects, rejects_path, inputs)
        written.append(rejects_path)
    if compensation_path is not None:
        comp = analysis.report.compensation
        if comp is None:
            raise InputError(
                "no ledger and no [sla] accounts, so there is no compensation to write",
                path=str(compensation_path),
            )
        guard_output(compensation_path, inputs)
        write_table(comp.accounts, compensation_path)
        written.append(compensation_path)
    if throttled_path is not None and analysis.report.rate_limits is not None:
        guard_output(throttled_path, inputs)
        write_table(questionable(analysis.report.rate_limits), throttled_path)
        written.append(throttled_path)
    return written


def read_report_json(path: Path) -> dict[str, Any]:
    """A JSON report written by `analyzer report --json`, as a dict; one InputError naming the file if not."""
    import json

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("no such file", path=str(path)) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path=str(path)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        line = getattr(e, "lineno", None)
        raise InputError(
            "not a JSON report (analyzer report --json FILE writes one)", path=str(path), line=line
        ) from None
    if not isinstance(doc, dict):
        raise InputError("not a JSON report: the top level is not an object", path=str(path))
    return doc


def run_compare(base: Path, new: Path, rules: Sequence[str] = ()) -> tuple[Comparison, list[Held]]:
    """Compare two JSON reports: what changed from `base` to `new`, and which `rules` hold."""
    from analyzer.compare import compare, held_rules, parse_rules

    parsed = parse_rules(rules)  # a bad rule fails before a file is read
    comparison = compare(
        read_report_json(base), read_report_json(new), base_path=str(base), new_path=str(new)
    )
    return comparison, held_rules(comparison, parsed)
