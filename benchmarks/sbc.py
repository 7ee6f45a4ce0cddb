"""Simulation-based calibration of every law in the catalogue.

For each law, ``bayescale.testing.sbc`` draws parameters and data from the model's prior
predictive at the law's design (``bayescale.testing.sbc_design``: a ladder, curves of two
runs, a known schedule, LM losses), fits every simulation with NUTS in one compiled
program (Normal likelihood on log loss, ``SBC_CONFIG``: 2 chains x 300 + 200) and tests
that the ranks of the true parameters among 49 thinned draws are uniform (chi-square on 5
bins, each parameter at 0.001 over the number of parameters). The same key and settings as
``pytest tests/test_sbc.py --runslow``, so both give the same ranks on one machine.

Seconds are wall time per law, compilation included (no persistent cache), and depend on
what else runs on the machine.

Run: ``python benchmarks/sbc.py --out benchmarks/results/sbc.json`` (the table goes to the
same name with ``.md``); ``--laws pow3,bnsl`` for some laws only.
"""

import argparse
import dataclasses
import json
import os
import platform
import time

import jax
import numpy as np
from bayescale.models import LAWS

import bayescale as bs
from bayescale.testing import SBC_CONFIG, sbc, sbc_design


def _row(result, seconds):
    values = result.to_dict()
    return {
        **values,
        "num_parameters": len(result.parameters),
        "healthy_share": float(np.mean(result.healthy)),
        "seconds": round(seconds, 1),
    }


def _table(rows):
    lines = [
        "| law | S | parameters | min p | threshold | SBC | fits with divergences | R-hat >= 1.01 | ESS < L | "
        "unhealthy | redrawn | log loss 1-99% | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        low, high = row["log_loss_range"]
        lines.append(
            f"| `{name}` | {row['num_simulations']} | {row['num_parameters']} | {row['min_p_value']:.2g} | "
            f"{row['threshold']:.2g} | {'pass' if row['passed'] else '**fail**'} | {row['divergent_fits']} | "
            f"{row['r_hat_above']} | {row['autocorrelated']} | {row['unhealthy']} | {row['num_rejected']} | "
            f"{low:.1f} to {high:.1f} | "
            f"{row['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=50)
    parser.add_argument("--laws", default=",".join(LAWS), help="comma-separated law names (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (the test suite's default is 0)")
    parser.add_argument("--out", default="benchmarks/results/sbc.json")
    args = parser.parse_args()
    report = {
        "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {jax.default_backend()}",
        "versions": {"bayescale": bs.__version__, "jax": jax.__version__, "python": platform.python_version()},
        "config": {"sampler": dataclasses.asdict(SBC_CONFIG), "seed": args.seed},
        "laws": {},
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    for name in args.laws.split(","):
        law = LAWS[name]
        start = time.perf_counter()
        result = sbc(
            law,
            sbc_design(law, rng=np.random.default_rng(0)),
            key=jax.random.key(args.seed),
            num_simulations=args.simulations,
        )
        report["laws"][name] = _row(result, time.perf_counter() - start)
        summary = {k: v for k, v in report["laws"][name].items() if k not in ("ranks", "per_simulation")}
        print(json.dumps(summary), flush=True)
        # Written after every law, so an interrupted run keeps what it measured.
        with open(args.out, "w") as handle:
            json.dump(report, handle, indent=1)
        with open(os.path.splitext(args.out)[0] + ".md", "w") as handle:
            handle.write(_table(report["laws"]))


if __name__ == "__main__":
    main()
