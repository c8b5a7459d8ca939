"""The `analyzer` command line: each command parses options, calls one library function and renders.

No Polars here (tests/test_architecture.py checks it). Errors from the library arrive as AnalyzerError
and leave as one line on stderr with exit code 2; a --fail-on rule that holds gives exit code 1.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from analyzer import __version__
from analyzer.engine import Engine
from analyzer.errors import AnalyzerError, ConfigError

if TYPE_CHECKING:
    from analyzer.pipeline import Part, ReportRequest
    from analyzer.report.model import Report

app = typer.Typer(
    help="Post-mortem analysis of LLM API gateway logs and billing ledgers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Kind(StrEnum):
    gateway = "gateway"
    ledger = "ledger"
    events = "events"


class Scenario(StrEnum):
    launch = "launch"
    quiet = "quiet"
    remedy = "remedy"


class SimFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"


class Annotations(StrEnum):
    github = "github"


class Preset(StrEnum):
    """schema.PresetName, spelled here so the CLI starts without Polars (tests/test_presets.py checks)."""

    litellm = "litellm"
    openai_usage = "openai_usage"


class Compression(StrEnum):
    gz = "gz"
    zst = "zst"
    none = "none"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"analyzer {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Post-mortem analysis of LLM API gateway logs and billing ledgers."""


@contextmanager
def _errors() -> Iterator[None]:
    """Turn library errors into one line on stderr and exit code 2."""
    try:
        yield
    except AnalyzerError as e:
        err.print(f"error: {e.one_line()}", markup=False)
        raise typer.Exit(2) from None
    except MemoryError:
        err.print(
            "error: out of memory; convert the inputs to Parquet first (analyzer convert)", markup=False
        )
        raise typer.Exit(2) from None


@contextmanager
def _memory_guard(max_memory: str | None) -> Iterator[None]:
    """Stop the run with one line and exit code 2 before the machine runs out of memory."""
    from analyzer.memguard import default_limit, human_size, parse_size, start_guard

    try:
        limit = default_limit() if max_memory is None else parse_size(max_memory)
    except ValueError as e:
        raise ConfigError(str(e), field="--max-memory") from None
    if limit is None:
        yield
        return

    def stop(rss: int) -> None:
        err.print(
            f"error: memory use reached {human_size(rss)}, over the limit of {human_size(limit)} "
            "(--max-memory); convert the inputs to Parquet first (analyzer convert) or narrow with --since/--until",
            markup=False,
        )
        sys.stderr.flush()
        os._exit(2)  # from the watchdog thread: the main thread may be deep inside a Polars call

    cancel = start_guard(limit, stop)
    try:
        yield
    finally:
        cancel()


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        text = value.replace("Z", "+00:00")
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"'{value}' is not an ISO 8601 time", field=option) from None
    if t.tzinfo is None:
        from datetime import UTC

        t = t.replace(tzinfo=UTC)
    return t


GatewayOpt = Annotated[
    list[Path] | None, typer.Option("--gateway", help="Gateway log file, folder or glob (repeatable).")
]
LedgerOpt = Annotated[
    list[Path] | None, typer.Option("--ledger", help="Billing ledger file, folder or glob (repeatable).")
]
EventsOpt = Annotated[
    list[Path] | None, typer.Option("--events", help="Operator events file (JSON lines or CSV).")
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Settings TOML (default: DIR/analyzer.toml if present).")
]
DirArg = Annotated[
    Path | None, typer.Argument(help="Folder holding gateway*/ledger*/events* files (default: .).")
]
SinceOpt = Annotated[str | None, typer.Option("--since", help="Only analyze from this ISO 8601 time on.")]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Only analyze before this ISO 8601 time.")]
JsonOpt = Annotated[str | None, typer.Option("--json", help="Write JSON to FILE, or - for stdout.")]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print nothing but errors and requested output.")
]
MaxMemoryOpt = Annotated[
    str | None,
    typer.Option(
        "--max-memory",
        help="Stop with a message if resident memory passes this (e.g. 4GB). Default: 90% of what is free.",
    ),
]
RefundsOpt = Annotated[
    Path | None, typer.Option("--refunds", help="Write every account owed a refund (.csv/.parquet).")
]
PresetOpt = Annotated[
    Preset | None,
    typer.Option(
        "--preset",
        help="Read the inputs as a known record shape (litellm). Default: detected from field names.",
    ),
]
UsageOpt = Annotated[
    list[Path] | None,
    typer.Option("--usage", help="A provider's usage export (OpenAI's CSV): daily totals per model checked."),
]
FindingsOpt = Annotated[
    Path | None, typer.Option("--findings", help="Write every flagged ledger entry (.csv/.parquet).")
]


def _request(
    directory: Path | None,
    gateway: list[Path] | None,
    ledger: list[Path] | None,
    events: list[Path] | None,
    config: Path | None,
    since: str | None = None,
    until: str | None = None,
    refunds: Path | None = None,
    preset: Preset | None = None,
    usage: list[Path] | None = None,
    full: bool = False,
) -> ReportRequest:
    from analyzer.pipeline import ReportRequest

    return ReportRequest(
        directory=directory,
        gateway=tuple(gateway or ()),
        ledger=tuple(ledger or ()),
        events=tuple(events or ()),
        config=config,
        since=_time(since, "--since"),
        until=_time(until, "--until"),
        refunds_path=refunds,
        preset=None if preset is None else preset.value,
        usage=tuple(usage or ()),
        full=full,
    )


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[str], None] | None]:
    """A status line on stderr while inputs load; none when stderr is not a terminal or with --quiet."""
    if quiet or not err.is_terminal:
        yield None
        return
    with err.status("loading…") as status:
        yield status.update


@app.command()
def report(
    directory: DirArg = None,
    gateway: GatewayOpt = None,
    ledger: LedgerOpt = None,
    events: EventsOpt = None,
    config: ConfigOpt = None,
    json_out: Annotated[
        str | None, typer.Option("--json", help="Write the JSON report to FILE, or - for stdout.")
    ] = None,
    markdown: Annotated[
        Path | None, typer.Option("--markdown", help="Write the Markdown post-mortem to FILE.")
    ] = None,
    refunds: RefundsOpt = None,
    findings: FindingsOpt = None,
    rejects: Annotated[
        Path | None,
        typer.Option("--rejects", help="Write every rejected input line with file, line, reason."),
    ] = None,
    compensation: Annotated[
        Path | None,
        typer.Option(
            "--compensation",
            help="Write every account still owed after the reset or given an SLA credit (.csv/.parquet).",
        ),
    ] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 if a rule holds: bursts, spikes, refunds>N, rejects>P%, not_whole>N, wrong_429>N.",
        ),
    ] = None,
    junit: Annotated[
        Path | None,
        typer.Option("--junit", help="Write JUnit XML: a test case per --fail-on rule and per invariant."),
    ] = None,
    openslo: Annotated[
        Path | None,
        typer.Option("--openslo", help="Write the SLO the report used as an OpenSLO v1 SLO document (YAML)."),
    ] = None,
    annotations: Annotated[
        Annotations | None,
        typer.Option("--annotations", help="Write CI annotations on stderr (github: workflow commands)."),
    ] = None,
    preset: PresetOpt = None,
    usage: UsageOpt = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full", help="Show every timeline row in the terminal and Markdown, not the first by rank."
        ),
    ] = False,
    quiet: QuietOpt = False,
    max_memory: MaxMemoryOpt = None,
    throttled: Annotated[
        Path | None,
        typer.Option(
            "--throttled", help="Write every wrong or ambiguous 429 with its usage (CSV or Parquet)."
        ),
    ] = None,
    engine: Annotated[
        Engine,
        typer.Option("--engine", help="Where the work runs: local (this process) or ray (a Ray cluster)."),
    ] = Engine.LOCAL,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="The Ray cluster for --engine ray: HOST:PORT or ray://HOST:PORT (default: RAY_ADDRESS, else local).",
        ),
    ] = None,
) -> None:
    """Write the incident timeline report: terminal, Markdown and JSON; gate CI with --fail-on.

    Example: analyzer report sample_logs --markdown postmortem.md --json report.json --fail-on refunds>0
    """
    from analyzer.pipeline import check_outputs, run_report, write_outputs
    from analyzer.report.ci import github_annotations
    from analyzer.report.gate import failing_rules, parse_rules
    from analyzer.report.terminal import render_terminal

    json_to_stdout = json_out == "-"
    out = _console()
    with _errors(), _memory_guard(max_memory):
        rules = list(fail_on or [])
        parsed = parse_rules(rules)
        request = _request(
            directory, gateway, ledger, events, config, since, until, refunds, preset, usage, full
        )
        if ray_address is not None and engine is not Engine.RAY:
            raise ConfigError("is for --engine ray", field="--ray-address")
        request = replace(request, engine=engine, ray_address=ray_address)
        json_path = None if json_out in (None, "-") else Path(json_out)
        check_outputs(
            request,
            files=(json_path, markdown, junit, openslo),
            tables=(refunds, findings, rejects, compensation, throttled),
        )
        with _progress(quiet) as say:
            analysis = run_report(request, progress=say)
        failing = failing_rules(analysis.report, parsed)
        written = write_outputs(
            analysis,
            json_path=json_path,
            markdown_path=markdown,
            refunds_path=refunds,
            findings_path=findings,
            rejects_path=rejects,
            junit_path=junit,
            openslo_path=openslo,
            rules=rules,
            append_markdown=_is_step_summary(markdown),
            compensation_path=compensation,
            throttled_path=throttled,
        )
        notices = github_annotations(analysis.report, rules) if annotations is Annotations.github else []
    if json_to_stdout:
        from analyzer.report.jsonreport import render_json

        sys.stdout.write(render_json(analysis.report))
    elif not quiet:
        render_terminal(analysis.report, out)
    if not quiet:
        for path in written:
            err.print(f"wrote {path}", markup=False)
    for reason in failing:
        err.print(f"fail-on: {reason}", markup=False)
    # Workflow commands are read line by line from the raw stream: no wrapping, no markup.
    sys.stderr.write("".join(f"{line}\n" for line in notices))
    raise typer.Exit(1 if failing else 0)


def _is_step_summary(path: Path | None) -> bool:
    """Whether `path` is GitHub's $GITHUB_STEP_SUMMARY, which is added to, never overwritten."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    return path is not None and summary is not None and Path(summary).resolve() == path.resolve()


@app.command()
def compare(
    base: Annotated[
        Path, typer.Argument(help="The JSON report of the last good run (analyzer report --json).")
    ],
    new: Annotated[Path, typer.Argument(help="The JSON report of this run.")],
    json_out: JsonOpt = None,
    markdown: Annotated[
        Path | None, typer.Option("--markdown", help="Write the comparison as Markdown.")
    ] = None,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 if a rule holds: new_bursts>N, new_spikes>N, error_rate_up>P%, p95_up>P%, refunds_up>N, "
            "wrong_429_up>N (also gone_bursts>N, gone_spikes>N).",
        ),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Compare two JSON reports: new and gone bursts and spikes, each slice's 5xx rate and p95, refunds.

    Example: analyzer compare yesterday.json today.json --fail-on 'new_bursts>0' --fail-on 'error_rate_up>50%'
    """
    from analyzer.pipeline import run_compare, write_text
    from analyzer.report.comparison import (
        held_reason,
        render_comparison_json,
        render_comparison_markdown,
        render_comparison_terminal,
    )

    with _errors():
        comparison, held = run_compare(base, new, list(fail_on or []))
        written: list[str] = []
        if json_out not in (None, "-"):
            write_text(Path(json_out), render_comparison_json(comparison), (base, new))
            written.append(json_out)
        if markdown is not None:
            text = render_comparison_markdown(comparison, held)
            write_text(markdown, text, (base, new), append=_is_step_summary(markdown))
            written.append(str(markdown))
    if json_out == "-":
        sys.stdout.write(render_comparison_json(comparison))
    elif not quiet:
        render_comparison_terminal(comparison, _console())
    if not quiet:
        for path in written:
            err.print(f"wrote {path}", markup=False)
    for h in held:
        err.print(f"fail-on: {held_reason(h, comparison)}", markup=False)
    raise typer.Exit(1 if held else 0)


def _emit_json(json_out: str | None, text: str, inputs: tuple[Path, ...]) -> None:
    """JSON to stdout for `-`, else to a file that is not an input."""
    from analyzer.pipeline import write_text

    if json_out == "-":
        sys.stdout.write(text)
    elif json_out is not None:
        write_text(Path(json_out), text, inputs)
        err.print(f"wrote {json_out}", markup=False)


def _gateway_section(
    directory: Path | None, gateway: list[Path] | None, config: Path | None, since: str | None,
    until: str | None, json_out: str | None, quiet: bool, max_memory: str | None, keys: tuple[str, ...],
    part: Part,
) -> Report | None:  # fmt: skip
    """Analyze the gateway logs alone (no ledger) for `bursts` and `latency`, write the JSON `keys`,
    and return the report to print: None when JSON goes to stdout or with --quiet."""
    from analyzer.pipeline import check_outputs, run_report, section_json

    with _errors(), _memory_guard(max_memory):
        request = _request(directory, gateway, None, None, config, since, until)
        check_outputs(request, files=(None if json_out in (None, "-") else Path(json_out),))
        with _progress(quiet) as say:
            analysis = run_report(request, parts=frozenset({part}), progress=say)
        _emit_json(json_out, section_json(analysis.report, keys), analysis.input_paths)
    return None if json_out == "-" or quiet else analysis.report


@app.command()
def bursts(
    directory: DirArg = None,
    gateway: GatewayOpt = None,
    config: ConfigOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    json_out: JsonOpt = None,
    quiet: QuietOpt = False,
    max_memory: MaxMemoryOpt = None,
) -> None:
    """Find 5xx bursts, replay the SLO burn-rate alerts and list log gaps.

    Example: analyzer bursts sample_logs --json -
    """
    from analyzer.pipeline import Part
    from analyzer.report.commands import render_bursts

    keys = ("inputs", "bursts", "alerts", "log_gaps")
    report = _gateway_section(
        directory, gateway, config, since, until, json_out, quiet, max_memory, keys, Part.BURSTS
    )
    if report is not None:
        render_bursts(report, _console())


@app.command()
def latency(
    directory: DirArg = None,
    gateway: GatewayOpt = None,
    config: ConfigOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    json_out: JsonOpt = None,
    quiet: QuietOpt = False,
    max_memory: MaxMemoryOpt = None,
) -> None:
    """Find latency spikes of successful requests, judged against what their sizes lead one to expect.

    Example: analyzer latency sample_logs
    """
    from analyzer.pipeline import Part
    from analyzer.report.commands import render_latency

    keys = ("inputs", "latency_spikes", "quantile_method")
    report = _gateway_section(
        directory, gateway, config, since, until, json_out, quiet, max_memory, keys, Part.SPIKES
    )
    if report is not None:
        render_latency(report, _console())


@app.command()
def reconcile(
    directory: DirArg = None,
    gateway: GatewayOpt = None,
    ledger: LedgerOpt = None,
    config: ConfigOpt = None,
    refunds: RefundsOpt = None,
    findings: FindingsOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    json_out: JsonOpt = None,
    top: Annotated[int, typer.Option("--top", min=0, help="How many accounts to list.")] = 10,
    preset: PresetOpt = None,
    usage: UsageOpt = None,
    quiet: QuietOpt = False,
    max_memory: MaxMemoryOpt = None,
) -> None:
    """Check every ledger deduction against the tokens served and say what each account is owed.

    Example: analyzer reconcile sample_logs --refunds refunds.csv
    """
    from analyzer.errors import InputError
    from analyzer.pipeline import Part, check_outputs, run_report, section_json, write_outputs
    from analyzer.report.commands import render_reconcile

    with _errors(), _memory_guard(max_memory):
        request = _request(directory, gateway, ledger, None, config, since, until, refunds, preset, usage)
        json_path = None if json_out in (None, "-") else Path(json_out)
        check_outputs(request, files=(json_path,), tables=(refunds, findings))
        with _progress(quiet) as say:
            analysis = run_report(request, parts=frozenset({Part.LEDGER}), progress=say)
        rec = analysis.reconciliation
        if rec is None:
            raise InputError(
                "no ledger found (name it ledger* or pass --ledger PATH)", path=str(directory or ".")
            )
        written = write_outputs(analysis, refunds_path=refunds, findings_path=findings)
        keys = ("inputs", "ledger", *(("usage_totals",) if analysis.report.usage_totals is not None else ()))
        _emit_json(json_out, section_json(analysis.report, keys), analysis.input_paths)
    if json_out == "-" or quiet:
        return
    render_reconcile(analysis.report, _console(), top)
    for path in written:
        err.print(f"wrote {path}", markup=False)


@app.command()
def convert(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write canonical Parquet into.")],
    directory: DirArg = None,
    gateway: GatewayOpt = None,
    ledger: LedgerOpt = None,
    events: EventsOpt = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    max_memory: MaxMemoryOpt = None,
) -> None:
    """Parse the inputs once into canonical Parquet partitioned by hour; `analyzer report OUT` reads it.

    Example: analyzer convert sample_logs --out /tmp/canonical && analyzer report /tmp/canonical
    """
    from analyzer.pipeline import run_convert

    with _errors(), _memory_guard(max_memory):
        request = _request(directory, gateway, ledger, events, config)
        with _progress(quiet) as say:
            reports = run_convert(request, out_dir, progress=say)
    if quiet:
        return
    rows = sum(r.rows_read for r in reports)
    rejected = sum(r.rows_rejected for r in reports)
    err.print(
        f"converted {len(reports)} input(s): {rows:,} rows read, {rejected:,} rejected, into {out_dir}",
        markup=False,
    )


def _console() -> Console:
    """Rich console on stdout; 120 columns wide when stdout is not a terminal."""
    return Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 120)


@app.command()
def inspect(
    paths: Annotated[list[Path], typer.Argument(help="Files, folders or globs to inspect.")],
    kind: Annotated[Kind, typer.Option("--kind", help="What the inputs are.")] = Kind.gateway,
    config: ConfigOpt = None,
    json_flag: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    preset: PresetOpt = None,
    rejects: Annotated[
        Path | None, typer.Option("--rejects", help="Write every rejected line with file, line, reason.")
    ] = None,
) -> None:
    """Show per input: format, compression, field sources, rows, rejects by reason, time range.

    Example: analyzer inspect sample_logs/gateway --kind gateway
    """
    from analyzer.pipeline import concat_rejects, describe_inputs, run_inspect, write_rejects
    from analyzer.report.commands import render_inspect

    with _errors():
        loaded = run_inspect(paths, kind.value, config, None if preset is None else preset.value)
        described = describe_inputs(loaded)
        if rejects is not None:
            write_rejects(
                concat_rejects(loaded),
                rejects,
                [*paths, *(Path(i.path) for item in loaded for i in item.inputs)],
            )
    if json_flag:
        sys.stdout.write(json.dumps(described, indent=2, sort_keys=True) + "\n")
        return
    reports = [i for item in loaded for i in item.inputs]
    render_inspect(kind.value, reports, [n for item in loaded for n in item.notes], _console())


@app.command()
def simulate(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the simulated outage into.")],
    scenario: Annotated[
        Scenario,
        typer.Option(
            help="launch: the launch-day outage; quiet: same traffic, no incident; remedy: launch with a "
            "quota reset the token bug outlives and enterprise accounts with an SLA."
        ),
    ] = Scenario.launch,
    seed: Annotated[int, typer.Option(help="Random seed; same arguments give byte-identical files.")] = 7,
    hours: Annotated[float, typer.Option(help="Hours of traffic from 06:00 UTC.")] = 18.0,
    rate: Annotated[float, typer.Option(help="Mean requests per second.")] = 1.0,
    accounts: Annotated[int, typer.Option(help="Number of accounts.")] = 300,
    fmt: Annotated[
        SimFormat, typer.Option("--format", help="Format of the gateway logs and ledger.")
    ] = SimFormat.jsonl,
    compress: Annotated[Compression, typer.Option(help="Compression of the gateway logs.")] = Compression.gz,
    cached: Annotated[
        bool,
        typer.Option(
            "--cached",
            help="Cached and reasoning tokens in the gateway logs, cached tokens billed at 1/10 "
            "(analyzer.toml), and two wrong billing rules injected (launch).",
        ),
    ] = False,
    sync_failure: Annotated[
        str | None,
        typer.Option(
            help="launch: the billing sync failure's stretch of the day, HH:MM-HH:MM (default 12:00-12:30)."
        ),
    ] = None,
    quota_reset: Annotated[
        str | None,
        typer.Option(
            help="launch: a full quota reset of every account at HH:MM (tokens 0, balance_after set)."
        ),
    ] = None,
) -> None:
    """Write a simulated launch-day outage with its ground truth (truth.json).

    Example: analyzer simulate /tmp/outage --rate 5 --hours 6 && analyzer report /tmp/outage
    """
    from analyzer.simulate import SimSpec
    from analyzer.simulate import simulate as run_simulation

    with _errors():
        sync = None if sync_failure is None else _clock_span(sync_failure, "--sync-failure")
        reset = None if quota_reset is None else _clock_time(quota_reset, "--quota-reset")
        spec = SimSpec(
            scenario=scenario.value, seed=seed, hours=hours, rate=rate, accounts=accounts,
            format=fmt.value, compress=compress.value, cached=cached, sync_window=sync, quota_reset=reset,
        )  # fmt: skip
        sim = run_simulation(out_dir, spec)
    truth = sim.truth
    err.print(
        f"wrote {truth['requests']:,} requests, {len(truth['bursts'])} bursts, "
        f"{len(truth['latency_spikes'])} latency spikes to {out_dir}",
        markup=False,
    )


def _clock_time(text: str, option: str) -> time:
    """HH:MM as a time of day, or a ConfigError naming the option."""
    try:
        return datetime.strptime(text.strip(), "%H:%M").time()
    except ValueError:
        raise ConfigError(f"'{text}' is not a time of day HH:MM", field=option) from None


def _clock_span(text: str, option: str) -> tuple[time, time]:
    """HH:MM-HH:MM as two times of day, or a ConfigError naming the option."""
    start, sep, end = text.partition("-")
    if not sep:
        raise ConfigError(f"'{text}' is not a stretch of the day HH:MM-HH:MM", field=option)
    return _clock_time(start, option), _clock_time(end, option)


def main() -> None:
    """Entry point of the `analyzer` console script: a bug is one line and exit 3, not a traceback."""
    try:
        app()
    except Exception as e:  # noqa: BLE001 - the last line of defence; ANALYZER_DEBUG=1 shows the traceback
        if os.environ.get("ANALYZER_DEBUG"):
            raise
        err.print(
            f"error: internal error ({type(e).__name__}: {e}); rerun with ANALYZER_DEBUG=1 for the "
            "traceback, and please report it",
            markup=False,
        )
        sys.exit(3)
