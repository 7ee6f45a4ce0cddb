"""Fixed-length HMC: every iteration takes the same number of leapfrog steps, for large batches.

Problems and chains of a batch run in lockstep (``vmap``), so every NUTS iteration costs the
longest trajectory among thousands of chains: in a batch of 1,000 learning curves the
deepest tree sets the pace (14-30 leapfrog steps per iteration against a mean of 5.4), and
NUTS's tree bookkeeping costs more than the gradient of a small model. After the Laplace
whitening of :mod:`bayescale._sampler` the posterior is close to a standard normal, on which
Hamiltonian flow turns a point about the mode at one radian per unit of time: a trajectory
of length about pi/2 gives nearly independent draws. With the step sizes that an acceptance
of 0.8 adapts to there (about 0.9 for a handful of parameters), two leapfrog steps make that
length; longer ones come back towards the start, and the draws of a trajectory near pi
alternate (anticorrelated draws inflate the ESS and upset R-hat).

One iteration is Neal's (2011, "MCMC using Hamiltonian dynamics") HMC: draw a momentum,
take ``num_steps`` leapfrog steps, accept the end point with probability
``min(1, exp(-energy error))``. The step size is jittered by up to 10% per iteration, so that
no trajectory length resonates with a period of the posterior, and adapted per chain during
warmup by dual averaging (Hoffman and Gelman 2014) of the acceptance probability towards its
target, as NumPyro does. An energy error past NumPyro's threshold anywhere along the
trajectory marks the iteration divergent.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from numpyro.infer.hmc_util import dual_averaging

# An energy error past this is a divergence (NumPyro's threshold for NUTS).
_MAX_DELTA_ENERGY = 1000.0
# Each iteration's step size is the adapted one times a uniform factor in 1 -/+ this.
_STEP_JITTER = 0.1


class Adaptation(NamedTuple):
    """The step size in use and the dual-averaging state that adapts it."""

    step_size: jax.Array
    dual: tuple


class FixedLengthState(NamedTuple):
    """One chain's state; the fields the sampler reads are named as in NumPyro's ``HMCState``."""

    z: jax.Array
    z_grad: jax.Array
    potential_energy: jax.Array
    energy: jax.Array
    diverging: jax.Array
    num_steps: jax.Array
    accept_prob: jax.Array
    adapt_state: Adaptation
    iteration: jax.Array
    rng_key: jax.Array


def fixed_length_hmc(potential_fn_gen, num_steps: int, num_warmup: int, target_accept_prob: float):
    """Return ``(init_kernel, sample_kernel)`` of fixed-length HMC on a flat vector.

    Parameters
    ----------
    potential_fn_gen : callable
        ``potential_fn_gen(*model_args)`` returns the potential energy of a flat vector.
    num_steps : int
        Leapfrog steps per iteration.
    num_warmup : int
        Iterations that adapt the step size; after them it stays at its averaged value.
    target_accept_prob : float
        Target of the acceptance probability during warmup.

    Returns
    -------
    init_kernel : callable
        ``init_kernel(z, *, model_args, rng_key, step_size=1.0) -> FixedLengthState``.
    sample_kernel : callable
        ``sample_kernel(state, *, model_args) -> FixedLengthState``: one iteration.
    """
    dual_init, dual_update = dual_averaging()

    def init_kernel(z, *, model_args, rng_key, step_size=1.0):
        potential, gradient = jax.value_and_grad(potential_fn_gen(*model_args))(z)
        step_size = jnp.asarray(step_size, z.dtype)
        # As NumPyro: the dual averaging is pulled towards ten times the initial step size.
        adaptation = Adaptation(step_size, dual_init(jnp.log(10.0 * step_size)))
        zero = jnp.zeros((), z.dtype)
        return FixedLengthState(
            z,
            gradient,
            potential,
            potential,
            jnp.zeros((), bool),
            jnp.asarray(num_steps),
            zero,
            adaptation,
            jnp.zeros((), jnp.int32),
            rng_key,
        )

    def sample_kernel(state, *, model_args):
        value_and_grad = jax.value_and_grad(potential_fn_gen(*model_args))
        dtype = state.z.dtype
        rng_key, momentum_key, jitter_key, accept_key = jax.random.split(state.rng_key, 4)
        momentum = jax.random.normal(momentum_key, state.z.shape, dtype)
        start_energy = state.potential_energy + 0.5 * momentum @ momentum
        jitter = jax.random.uniform(jitter_key, (), dtype, 1.0 - _STEP_JITTER, 1.0 + _STEP_JITTER)
        step_size = state.adapt_state.step_size * jitter

        def leapfrog(carry, _):
            (z, p, gradient, _), diverging = carry
            p = p - 0.5 * step_size * gradient
            z = z + step_size * p
            potential, gradient = value_and_grad(z)
            p = p - 0.5 * step_size * gradient
            delta = potential + 0.5 * p @ p - start_energy
            return ((z, p, gradient, potential), diverging | ~(delta <= _MAX_DELTA_ENERGY)), None

        start = (state.z, momentum, state.z_grad, state.potential_energy)
        ((z, p, gradient, potential), diverging), _ = jax.lax.scan(
            leapfrog, (start, jnp.zeros((), bool)), length=num_steps
        )
        energy = potential + 0.5 * p @ p
        delta = jnp.where(jnp.isnan(energy), jnp.inf, energy - start_energy)
        accept_prob = jnp.exp(jnp.minimum(0.0, -delta))
        accept = jax.random.uniform(accept_key, (), dtype) < accept_prob
        chosen = jax.tree.map(
            lambda new, old: jnp.where(accept, new, old),
            (z, gradient, potential, energy),
            (state.z, state.z_grad, state.potential_energy, start_energy),
        )

        dual = dual_update(target_accept_prob - accept_prob, state.adapt_state.dual)
        # While adapting, the step size follows the iterate; from the last warmup
        # iteration on, the average (which converges, where the iterate keeps jittering).
        log_step = jnp.where(state.iteration + 1 < num_warmup, dual[0], dual[1])
        adapted = Adaptation(jnp.exp(log_step).astype(dtype), dual)
        warming = state.iteration < num_warmup
        adaptation = jax.tree.map(lambda new, old: jnp.where(warming, new, old), adapted, state.adapt_state)
        z, gradient, potential, energy = chosen
        return FixedLengthState(
            z,
            gradient,
            potential,
            energy,
            diverging,
            state.num_steps,
            accept_prob,
            adaptation,
            state.iteration + 1,
            rng_key,
        )

    return init_kernel, sample_kernel
