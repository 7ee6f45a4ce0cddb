"""The compiled sampling program behind :func:`bayescale.fit`.

One jitted function takes a key and the (padded) data and returns raw draws:

1. MAP search from several starts (half around the prior means, half uniform in [-2, 2]
   on the unconstrained scale) by saddle-free Newton steps: |eigenvalues| of the Hessian, steps
   capped in length (a trust region), and a line search that tries several step fractions
   at once. Scaling-law posteriors reach condition numbers of 1e6, where first-order
   methods stall; Newton converges in about 20 steps from anywhere in the box. The best
   finite optimum is kept, so no fit depends on one lucky starting grid. (BFGS from
   jax.scipy needs a while-loop line search that costs several times the compile time.)
2. The Laplace approximation at the MAP point whitens the problem: NUTS runs on
   ``u`` with ``z = z_map + F u`` and ``F F^T`` the Laplace covariance, so the posterior
   it sees is close to isotropic, whatever the law's parameterisation. (Passing the
   covariance as an initial mass matrix instead does not survive adaptation: NumPyro
   shrinks each adapted covariance towards the identity, which swamps the small
   eigenvalues of posteriors whose scale constant and exponent correlate at 0.98.)
   Curvature comes from the likelihood's smooth stand-in (see ``Likelihood.smooth``): the
   Laplace density has none away from its kink. Chains start from Laplace draws.
3. NumPyro's NUTS kernel (step size and mass-matrix adaptation), chains vectorized, warmup
   and sampling in one scan so the NUTS step is compiled once.

The data are arguments of the compiled function, not constants baked into it, so new data
padded to the same shape reuse the compiled program (and JAX's persistent cache).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer.hmc import hmc
from numpyro.infer.initialization import init_to_mean
from numpyro.infer.util import constrain_fn, log_likelihood, potential_energy

from bayescale.config import SamplerConfig
from bayescale.law import Law, build_model

# Newton steps longer than this (in unconstrained units) are shortened to it: far from the
# mode the quadratic model is not to be trusted.
_MAX_NEWTON_STEP = 2.0
# Fractions of the Newton step tried at once by the line search; 0 keeps the point.
_LINE_SEARCH = (1.0, 0.5, 0.25, 0.1, 0.01, 0.0)
# Hessian eigenvalues are floored at this fraction of the largest one, so a flat or
# negative direction gets a large but finite variance in the Laplace covariance.
_EIGEN_FLOOR = 1e-8
# Chains start from Laplace draws truncated at this many standard deviations, so that a
# flat direction of the Hessian cannot throw a chain into a region of numerical overflow.
_INIT_CLIP = 2.0


class RawDraws(NamedTuple):
    """What the compiled program returns; arrays lead with the chain axis."""

    z: jax.Array  # (chains, samples, dim) unconstrained draws
    potential_energy: jax.Array  # (chains, samples)
    energy: jax.Array  # (chains, samples) Hamiltonian, for E-BFMI
    diverging: jax.Array  # (chains, samples) bool
    n_steps: jax.Array  # (chains, samples) leapfrog steps per iteration
    accept_prob: jax.Array  # (chains, samples)
    step_size: jax.Array  # (chains,) adapted step size
    warmup_divergences: jax.Array  # (chains,)
    map_point: jax.Array  # (dim,)
    map_potential: jax.Array  # () potential energy at the MAP point; inf if every start failed
    laplace_ok: jax.Array  # () bool: the Hessian at the MAP point was positive definite


def _prior_centre(model, args):
    """Every latent site at its prior mean, on the unconstrained scale.

    Means, not draws: compiling the samplers of Beta or Gamma priors (rejection loops)
    would cost seconds for nothing.
    """
    centred = handlers.substitute(handlers.seed(model, jax.random.key(0)), substitute_fn=init_to_mean)
    trace = handlers.trace(centred).get_trace(*args)
    return {
        name: biject_to(site["fn"].support).inv(site["value"])
        for name, site in trace.items()
        if site["type"] == "sample" and not site["is_observed"]
    }


def _unraveler(model, args):
    """The function mapping a flat unconstrained vector back to named sites."""
    shapes = jax.eval_shape(functools.partial(_prior_centre, model, args))
    _, unravel = ravel_pytree(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes))
    return unravel


def _laplace_factor(hessian):
    """A square root ``F`` of the inverse Hessian (|eigenvalues| floored), and whether it was PD.

    ``F F^T`` is the Laplace covariance; for a Hessian that is not positive definite the
    absolute eigenvalues give a saddle-free stand-in.
    """
    hessian = 0.5 * (hessian + hessian.T)
    eigenvalues, vectors = jnp.linalg.eigh(hessian)
    floor = _EIGEN_FLOOR * jnp.max(jnp.abs(eigenvalues))
    return vectors / jnp.sqrt(jnp.maximum(jnp.abs(eigenvalues), floor)), jnp.all(eigenvalues > 0)


def _newton(potential, curvature_potential, starts, steps):
    """Saddle-free Newton from each row of ``starts``.

    Returns, per start: the point reached, the Laplace factor there, whether the Hessian
    there is positive definite, and the potential.
    """

    def step(point, factor):
        gradient = jax.grad(potential)(point)
        direction = -factor @ (factor.T @ jnp.where(jnp.isfinite(gradient), gradient, 0.0))
        direction *= jnp.minimum(1.0, _MAX_NEWTON_STEP / jnp.maximum(jnp.linalg.norm(direction), 1e-30))
        candidates = point + jnp.asarray(_LINE_SEARCH, point.dtype)[:, None] * direction
        values = jax.vmap(potential)(candidates)
        point = candidates[jnp.argmin(jnp.where(jnp.isfinite(values), values, jnp.inf))]
        # The curvature at the new point is both the next step's metric and, after the
        # last step, the Laplace approximation at the optimum.
        factor, positive_definite = _laplace_factor(jax.hessian(curvature_potential)(point))
        return point, factor, positive_definite

    # The starts are vmapped inside the scan: batching a whole scan re-traces its body.
    def batched_step(carry, _):
        points, factors, _ = carry
        return jax.vmap(step)(points, factors), None

    identity = jnp.broadcast_to(jnp.eye(starts.shape[-1], dtype=starts.dtype), (*starts.shape, starts.shape[-1]))
    initial = (starts, identity, jnp.zeros(starts.shape[0], bool))
    (points, factors, positive_definite), _ = jax.lax.scan(batched_step, initial, length=steps)
    return points, factors, positive_definite, jax.vmap(potential)(points)


def _map_search(potential, curvature_potential, model, args, key, config):
    """Best of ``config.map_starts`` Newton runs: (point, Laplace factor, PD flag, potential)."""
    centre = ravel_pytree(_prior_centre(model, args))[0]
    offsets = jax.random.uniform(key, (config.map_starts, centre.size), centre.dtype, minval=-2.0, maxval=2.0)
    starts = jnp.where(jnp.arange(config.map_starts)[:, None] < config.map_starts // 2, centre + offsets, offsets)
    points, factors, positive_definite, values = _newton(potential, curvature_potential, starts, config.map_steps)
    values = jnp.where(jnp.isfinite(values) & jnp.all(jnp.isfinite(points), axis=-1), values, jnp.inf)
    best = jnp.argmin(values)
    return points[best], factors[best], positive_definite[best], values[best]


@functools.lru_cache(maxsize=64)
def compiled_sampler(law: Law, likelihood: str, config: SamplerConfig):
    """The jitted program ``run(key, args) -> RawDraws`` for one law, likelihood and config.

    Cached, so repeated fits of the same law and settings reuse one compiled function for
    every data shape they have met.
    """
    model = build_model(law, likelihood)
    smooth_model = build_model(law, likelihood, smooth=True)

    def jitted_potential(model):
        # Jitted so that NumPyro traces the model once per data shape: the Newton steps,
        # the Hessian and the NUTS kernel then transform that one jaxpr instead of each
        # re-running the model in Python (about 0.4 s a time).
        @jax.jit
        def potential(flat, args):
            return potential_energy(model, args, {}, _unraveler(model, args)(flat))

        return potential

    potential_fn, curvature_fn = jitted_potential(model), jitted_potential(smooth_model)

    def whitened_potential_gen(args, shift, factor):
        return lambda u: potential_fn(shift + factor @ u, args)

    init_kernel, sample_kernel = hmc(potential_fn_gen=whitened_potential_gen, algo="NUTS")

    def run(key, args):
        key_map, key_init, key_chains = jax.random.split(key, 3)
        potential = functools.partial(potential_fn, args=args)
        curvature_potential = functools.partial(curvature_fn, args=args)
        point, factor, laplace_ok, map_potential = _map_search(
            potential, curvature_potential, model, args, key_map, config
        )
        whitening = (args, point, factor)
        starts = jnp.clip(jax.random.normal(key_init, (config.num_chains, point.size), point.dtype), -_INIT_CLIP, _INIT_CLIP)
        identity = jnp.eye(point.size, dtype=point.dtype) if config.dense_mass else jnp.ones(point.size, point.dtype)

        def init(chain_key, start):
            return init_kernel(
                start,
                config.num_warmup,
                inverse_mass_matrix=identity,
                dense_mass=config.dense_mass,
                target_accept_prob=config.target_accept,
                max_tree_depth=config.max_tree_depth,
                model_args=whitening,
                rng_key=chain_key,
            )

        # The chain axis is vmapped inside the scan, not around it: batching a scan of
        # NUTS's nested while-loops costs several times more tracing than batching one step.
        def step(states, _):
            states = jax.vmap(lambda state: sample_kernel(state, model_args=whitening))(states)
            z = point + states.z @ factor.T
            return states, (z, states.potential_energy, states.energy, states.diverging, states.num_steps, states.accept_prob)

        states = jax.vmap(init)(jax.random.split(key_chains, config.num_chains), starts)
        states, stats = jax.lax.scan(step, states, length=config.num_warmup + config.num_samples)
        warmup_divergences = jnp.sum(stats[3][: config.num_warmup], axis=0)
        # Scan stacks iterations first; the draws lead with the chain axis.
        stats = tuple(jnp.swapaxes(values[config.num_warmup :], 0, 1) for values in stats)
        return RawDraws(*stats, states.adapt_state.step_size, warmup_divergences, point, map_potential, laplace_ok)

    return jax.jit(run)


@functools.lru_cache(maxsize=64)
def compiled_postprocess(law: Law, likelihood: str):
    """The jitted map from flat unconstrained draws to named draws and log-likelihoods.

    Returns ``post(args, z) -> (sites, log_lik)`` for ``z`` of shape (draws, dim): the
    constrained parameters with every deterministic site (``mu`` included), and the
    pointwise log-likelihood of the observed log losses.
    """
    model = build_model(law, likelihood)

    def post(args, z):
        unravel = _unraveler(model, args)
        sites = jax.vmap(lambda flat: constrain_fn(model, args, {}, unravel(flat), return_deterministic=True))(z)
        log_lik = log_likelihood(model, sites, *args)["log_loss"]
        return sites, log_lik

    return jax.jit(post)
