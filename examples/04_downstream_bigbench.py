"""BIG-bench errors from the language-modelling loss: compute -> loss -> metric, and the mirage question.

Does a downstream score follow the loss, and is its shape the metric's doing? The data are
the BIG-bench rows of Alabdulmohsin, Neyshabur and Zhai's extrapolation benchmark
("Revisiting Neural Scaling Laws in Language and Vision", NeurIPS 2022): five BIG-bench
tasks, 1- and 2-shot, scored along the training of one 262M-parameter decoder, with the
same model's validation loss at every 2.6e9 tokens (bundled with bayescale; origin, licence
and quirks in ``bayescale/datasets/revisiting_lang_262m.SOURCE.md``).

The chain, with both posteriors carried through:

1. the validation loss against tokens seen, ``kaplan_d_e`` (L = E + (D_c/D)^a) with
   correlated residuals along the run, fitted on the checkpoints the benchmark marks for
   fitting (the first half of the run);
2. per task, the error against the loss at the same checkpoints: ``sigmoid_link`` (a
   threshold in the loss, with a floor) and ``exact_match`` (no threshold: p^k of a
   per-token probability, Schaeffer et al. 2023), compared by PSIS-LOO;
3. the loss forecast at the task's last checkpoint (held out) pushed through the better
   link: a forecast of the final error, checked against what was measured;
4. ``bs.metric_explains_jump``: the probability that the metric-only law predicts the
   task at least as well as the threshold law.

What to expect from these data: one model along one run covers a narrow range of loss, so
neither link is well identified (the sampler checks say so; the script prints them), and
there is no emergent jump to explain: errors fall slowly towards a floor, a shape p^k
cannot make. The benchmark's losses are rescaled (the first checkpoint reads 0.999), so
the links' parameters are in those units, not nats. The loss at a BIG-bench checkpoint is
interpolated (linearly in log loss against log tokens) between the two nearest of the
loss curve's checkpoints, 2.6e9 tokens apart.

Run: ``python examples/04_downstream_bigbench.py [--num-samples 1000] [--out-dir .]``
"""

import argparse
import csv
import os
from importlib import resources

import jax
import numpy as np
from matplotlib.figure import Figure

import bayescale as bs
from bayescale.forecast import expected_loss
from bayescale.inference import fit_problems
from bayescale.law import ModelSpec, resolve_law

LINKS = ("sigmoid_link", "exact_match")
DATA_FILE = "revisiting_lang_262m.csv"


def read_benchmark():
    """Return the loss curve (tokens, loss, fit flag) and each task's (tokens, error, fit flag), duplicates removed."""
    with (resources.files("bayescale.datasets") / DATA_FILE).open() as handle:
        rows = list(csv.DictReader(handle))

    def columns(selected):
        # The benchmark repeats each loss-curve row 4 times (SOURCE.md); keep one of each.
        unique = sorted({(float(r["Seen Examples"]), float(r["Loss"]), r["Training"] == "1") for r in selected})
        tokens, values, for_fitting = (np.array(column) for column in zip(*unique, strict=True))
        return tokens, values, for_fitting

    curve = columns([r for r in rows if r["Domain"] == "LM"])
    tasks = sorted({r["Task"] for r in rows if r["Domain"] == "BB"})
    return curve, {task: columns([r for r in rows if r["Task"] == task]) for task in tasks}


def task_label(task):
    """``date 1-shot`` for the benchmark's ``('date', '1-shot')``."""
    return " ".join(part.strip(" '") for part in task.strip("()").split(","))


def main(args):
    """Fit the loss curve and both links per task, forecast the final errors, print and plot."""
    (tokens, loss, for_fitting), tasks = read_benchmark()
    config = bs.SamplerConfig(num_warmup=args.num_warmup, num_samples=args.num_samples, num_chains=args.num_chains)
    key = jax.random.key(args.seed)
    key, curve_key = jax.random.split(key)
    steps = tokens / tokens[0]  # checkpoint index along the run: the residuals' clock
    curve = bs.fit(
        "kaplan_d_e",
        {
            "D": tokens[for_fitting],
            "loss": loss[for_fitting],
            "step": steps[for_fitting],
            "run": ["262M"] * sum(for_fitting),
        },
        key=curve_key,
        likelihood="normal",
        correlated=True,
        config=config,
    )

    # The loss at each task checkpoint, from the observed curve.
    pairs = {
        task: (np.exp(np.interp(np.log(x), np.log(tokens), np.log(loss))), error, fitted)
        for task, (x, error, fitted) in tasks.items()
    }
    key, *keys = jax.random.split(key, len(tasks) * len(LINKS) + 1)
    # One compiled program per link serves all ten tasks (the same table size).
    specs = [ModelSpec(resolve_law(link), "normal") for _ in tasks for link in LINKS]
    link_data = [
        bs.ScalingData({"lm_loss": lm[fit], "loss": err[fit]}, f"BIG-bench {task_label(task)}", np.flatnonzero(fit) + 1)
        for task, (lm, err, fit) in pairs.items()
        for _ in LINKS
    ]
    fitted = iter(fit_problems(specs, link_data, keys=keys, config=config))
    links = {task: {link: next(fitted) for link in LINKS} for task in tasks}

    print(
        f"loss curve: kaplan_d_e on {for_fitting.sum()} checkpoints up to {tokens[for_fitting].max():.2e} tokens; "
        f"checks {'ok' if curve.diagnostics.ok else 'FAILED'}"
    )
    print(
        f"{'task':14} {'error range':>13} {'best link':>12} {'P(metric)':>9}  {'final error: forecast [90%]':>28}"
        f" {'measured':>8}  checks"
    )
    results = {}
    for task, by_link in links.items():
        x, error, fit = tasks[task]
        comparison = bs.compare(by_link)
        key, jump_key, upstream_key, downstream_key = jax.random.split(key, 4)
        jump = bs.metric_explains_jump(comparison, "exact_match", key=jump_key)
        upstream = bs.forecast(curve, D=[x[-1]], key=upstream_key)
        final = bs.forecast_downstream(upstream, comparison.fits[comparison.best], key=downstream_key)
        q = final.summary()["metric_observed"]
        covered = q["q05"] <= error[-1] <= q["q95"]
        failed = [link for link, one in by_link.items() if not one.diagnostics.ok]
        results[task] = {
            "best": comparison.best,
            "forecast": q,
            "measured": float(error[-1]),
            "covered": covered,
            "p_metric": jump.p_metric,
        }
        print(
            f"{task_label(task):14} {error[fit].min():5.3f}-{error[fit].max():5.3f}   {comparison.best:>12}"
            f" {jump.p_metric:9.3f}  {q['median']:8.3f} [{q['q05']:.3f}, {q['q95']:.3f}]{'':4}"
            f" {error[-1]:8.3f}{'' if covered else '*'}  {'FAILED: ' + ', '.join(failed) if failed else 'ok'}"
        )
    inside = sum(r["covered"] for r in results.values())
    print(f"final errors inside their 90% forecast interval: {inside} of {len(results)} (* marks a miss)")
    print(
        "P(metric): probability that exact_match (no threshold) predicts the task at least as well as "
        "sigmoid_link; near 0, the curve has a shape the metric alone cannot make."
    )

    figure = Figure(figsize=(9, 4.5), layout="constrained")
    axes = figure.subplots(2, 5, sharex=True)
    for ax, (task, (lm, error, fit)) in zip(axes.ravel(), pairs.items(), strict=True):
        best = results[task]["best"]
        grid = np.linspace(lm.min(), lm.max(), 100)
        curves = expected_loss(links[task][best], {"lm_loss": grid})
        ax.fill_between(grid, *np.quantile(curves, [0.05, 0.95], axis=0), alpha=0.3, color="C0")
        ax.plot(grid, np.median(curves, axis=0), color="C0", linewidth=1)
        ax.plot(lm[fit], error[fit], "o", markersize=3, color="k")
        ax.plot(lm[~fit], error[~fit], "x", markersize=3, color="C3")
        ax.set_title(task_label(task), fontsize="small")
        ax.invert_xaxis()
    figure.supxlabel("validation loss (rescaled), falling as training goes on")
    figure.supylabel("BIG-bench error")
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "bigbench_links.png")
    figure.savefig(path, dpi=120)
    print(f"figure: {path} (dots: fitted checkpoints; crosses: held out; band: 90% of the better link)")
    return results


if __name__ == "__main__":
    bs.enable_compilation_cache()  # a rerun loads the compiled samplers instead of compiling them
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-warmup", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=".")
    main(parser.parse_args())
