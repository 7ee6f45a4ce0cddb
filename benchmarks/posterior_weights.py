"""Stacking weights as the posterior mean of mixture weights, against bagged stacking.

Stacking finds the weights that maximise the log score of the mixture on the run's
checkpoints; bagged stacking (the default) averages that optimum over Bayesian-bootstrap
replicates. The candidate treats the same pointwise PSIS-LOO densities as the likelihood of
a mixture with fixed components and a uniform prior on the weights, Dirichlet(1, ..., 1),
and weights the laws by the posterior mean, the weights under which the mixture predicts a
new checkpoint (Bayesian model combination; Monteith et al. 2011). Its prior counts one
checkpoint per law, so on a run's few dozen checkpoints the weights are shrunk toward equal,
which predicted closest in the earlier stacking benchmarks, and the evidence of many
checkpoints overrides it. Sampled by Gibbs (allocations, then weights), four chains.

On the curves of ``bagging.py`` (outside issue 3's acceptance sets), alone or, with
``--pooled``, in their groups: each call is ``extrapolate``'s default, then assembled again
from the same fits and backtests, same keys, with the candidate weights.

Run: ``python benchmarks/posterior_weights.py --out benchmarks/results/posterior_weights.json``
and ``python benchmarks/posterior_weights.py --pooled --out benchmarks/results/posterior_weights_pooled.json``
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from bagging import main
from stacking import arguments

# Gibbs sweeps per chain, the first discarded as warmup.
SWEEPS, WARMUP, CHAINS = 2500, 500, 4


@functools.partial(jax.jit, static_argnames=("sweeps",))
def _gibbs(log_densities, key, sweeps):
    """Rao-Blackwellised posterior means of the weights, (sweeps, models), from one chain."""
    observations, models = log_densities.shape

    def sweep(weights, key):
        allocation_key, weight_key = jax.random.split(key)
        allocation = jax.random.categorical(allocation_key, jnp.log(weights) + log_densities)
        counts = jnp.bincount(allocation, length=models)
        return jax.random.dirichlet(weight_key, 1.0 + counts), (1.0 + counts) / (models + observations)

    _, means = jax.lax.scan(sweep, jnp.full(models, 1.0 / models), jax.random.split(key, sweeps))
    return means


def posterior_weights(elpd, *, key) -> np.ndarray:
    """Posterior mean of the weights of a mixture of the models' pointwise predictive densities."""
    with jax.enable_x64(True):
        elpd = jnp.asarray(elpd, dtype=jnp.float64)
        log_densities = elpd - elpd.max(axis=1, keepdims=True)
        means = jax.vmap(lambda k: _gibbs(log_densities, k, SWEEPS))(jax.random.split(key, CHAINS))
        return np.asarray(means[:, WARMUP:].mean(axis=(0, 1)))


WEIGHTINGS = {"bagged": {}, "posterior": {"bagged_stacking_weights": posterior_weights}}

if __name__ == "__main__":
    main(arguments("benchmarks/results/posterior_weights.json").parse_args(), WEIGHTINGS, "posterior_weights.py")
