"""The outage simulator: gateway logs, billing ledger and operator notes with known ground truth.

    sim = generate(SimSpec(scenario="launch", seed=7, hours=18, rate=1.0))
    write(sim, Path("out"), spec)          # gateway/*.jsonl.gz, ledger.csv, events.jsonl, truth.json

Five independent generators are spawned from the seed (traffic, incidents, failures, ledger, limiter),
so the `quiet` and `launch` scenarios of one seed carry the same requests (storms aside). The limiter
(limiter.py) runs after the incidents: it assigns tiers, adds batch storms and the legacy-limiter fault.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

from analyzer import schema as s
from analyzer.simulate import ledger as _ledger
from analyzer.simulate import limiter as _limiter
from analyzer.simulate import remedy as _remedy
from analyzer.simulate.scenarios import story
from analyzer.simulate.spec import SimSpec, Simulation, iso, validate
from analyzer.simulate.traffic import base_traffic, gateway_frame, inject, with_usage
from analyzer.simulate.truth import build_truth
from analyzer.simulate.write import write

__all__ = ["SimSpec", "Simulation", "generate", "simulate", "write"]


def generate(spec: SimSpec) -> Simulation:
    """Simulate `spec` in memory: canonical gateway, ledger and events frames plus the truth."""
    validate(spec)
    traffic_rng, incident_rng, failure_rng, ledger_rng, limiter_rng, usage_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(spec.seed).spawn(6)
    )
    plan = story(spec)
    limited = _limiter.apply(
        spec,
        plan,
        inject(base_traffic(spec, plan, traffic_rng), plan, incident_rng, failure_rng),
        limiter_rng,
    )
    if spec.cached:
        limited = replace(limited, traffic=with_usage(limited.traffic, usage_rng))
    traffic = limited.traffic
    books = _ledger.build(spec, plan, traffic, ledger_rng)
    events = pl.DataFrame(
        {
            s.TS: [e[0] for e in plan.events],
            s.KIND: [e[1] for e in plan.events],
            s.TITLE: [e[2] for e in plan.events],
        },
        schema=s.EVENTS,
    )
    resets = [iso(r) for r in _remedy.reset_times(spec, plan)]
    truth = build_truth(spec, plan, limited, books, resets, events)
    return Simulation(
        gateway=gateway_frame(traffic, spec.accounts),
        ledger=books.ledger.select(list(s.LEDGER)),
        events=events,
        truth=truth,
        accounts=_limiter.accounts_frame(limited.tier),
        config=_remedy.config_text(plan),
    )


def simulate(out_dir: Path, spec: SimSpec) -> Simulation:
    """Generate `spec` and write it under `out_dir`."""
    sim = generate(spec)
    write(sim, out_dir, spec)
    return sim
