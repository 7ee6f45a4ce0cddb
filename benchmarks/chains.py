"""Stacking the laws' chains, or the laws whole: the same fits, weighted two ways.

A fit whose chains did not mix (R-hat far above 1: about a third of the default stack's
fits on these curves) pools a chain stuck in a poor mode with the others, each a quarter
of the law's draws. Chain stacking (Yao, Vehtari and Gelman 2022) weights each chain of
each law by PSIS-LOO on the run's checkpoints, so that such a chain gets less weight than
its law's other chains; ``extrapolate`` does so since it was measured here.

On the curves of ``bagging.py`` (outside issue 3's acceptance sets), alone or, with
``--pooled``, in their groups: each call is ``extrapolate``'s default, weighted by chain;
its predictions are then assembled again from the same fits and backtests, with the same
keys, with each law's chains pooled and the laws weighted whole (the default before), so
the rows of a curve differ by the weighting alone. Both are bagged over the same
Bayesian-bootstrap replicates of the checkpoints.

Run: ``python benchmarks/chains.py --out benchmarks/results/chains.json`` and
``python benchmarks/chains.py --pooled --out benchmarks/results/chains_pooled.json``
"""

import numpy as np
from bagging import main
from stacking import arguments

from bayescale.compare import bagged_stacking_weights, pointwise_log_likelihood, pointwise_loo


def law_weights(fits, run, key) -> dict[str, float]:
    """Bagged PSIS-LOO stacking weights of the laws for one run, each law's chains pooled."""
    columns = [pointwise_loo(pointwise_log_likelihood(fit)[..., fit.data["run"] == run])[0] for fit in fits.values()]
    weights = bagged_stacking_weights(np.column_stack(columns), key=key)
    return dict(zip(fits, map(float, weights), strict=True))


WEIGHTINGS = {"by chain": {}, "by law": {"_run_weights": law_weights}}

if __name__ == "__main__":
    main(arguments("benchmarks/results/chains.json").parse_args(), WEIGHTINGS, "chains.py")
