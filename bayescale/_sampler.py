"""The compiled sampling program behind :func:`bayescale.fit` and the batched fits.

One jitted function takes a batch of problems (keys, padded data, and which model the
batch uses) and returns raw draws for all of them. Per problem:

1. MAP search from several starts (half around the prior means, half uniform in [-2, 2]
   on the unconstrained scale) by saddle-free Newton steps: |eigenvalues| of the Hessian,
   steps capped in length (a trust region), and a line search that tries several step
   fractions at once. Scaling-law posteriors reach condition numbers of 1e6, where
   first-order methods stall; Newton converges in about 20 steps from anywhere in the box.
   The best finite optimum is kept, so no fit depends on one lucky starting grid. (BFGS
   from jax.scipy needs a while-loop line search that costs several times the compile time.)
2. The Laplace approximation at the MAP point whitens the problem: NUTS runs on ``u`` with
   ``z = z_map + F u`` and ``F F^T`` the Laplace covariance, so the posterior it sees is
   close to isotropic, whatever the law's parameterisation. (Passing the covariance as an
   initial mass matrix instead does not survive adaptation: NumPyro shrinks each adapted
   covariance towards the identity, which swamps the small eigenvalues of posteriors whose
   scale constant and exponent correlate at 0.98.) Curvature comes from the likelihood's
   smooth stand-in (see ``Likelihood.smooth``): the Laplace density has none away from its
   kink. Chains start from Laplace draws.
3. NumPyro's NUTS kernel with its own step-size and mass-matrix adaptation per problem and
   chain, warmup and sampling in one scan so the NUTS step is compiled once; or, with
   ``SamplerConfig.fixed_steps``, HMC with trajectories of fixed length
   (:mod:`bayescale._fixed_length`), which no chain of a large batch waits on.

Problems and chains are vmapped inside the scans: batching a whole scan of NUTS's nested
while-loops re-traces its body several times. Several models can share one program: the
batch's model is chosen by ``lax.switch`` on a scalar index (all problems of one call use
the same model, so only its branch runs), on parameter vectors padded to the longest
(padding coordinates get a standard Normal, sampled and discarded). A family ensemble then
compiles the NUTS machinery once instead of once per family, and runs each family as its
own call, so one family's deep trees do not hold the others back.

The data are arguments of the compiled function, not constants baked into it, so new data
padded to the same shape reuse the compiled program (and JAX's persistent cache).

On several devices the problem axis is split over a one-dimensional mesh with ``shard_map``:
each device runs the program above on its own block of problems, with its own while-loops.
(Sharding the vmapped program with ``jit`` alone would make every loop's exit test a
reduction over all devices, so each device would wait on the deepest tree anywhere.)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer.hmc import hmc
from numpyro.infer.initialization import init_to_mean
from numpyro.infer.util import constrain_fn, log_likelihood, potential_energy

from bayescale import _exported
from bayescale._fixed_length import fixed_length_hmc
from bayescale.config import SamplerConfig
from bayescale.law import ModelSpec

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
    """What the compiled program returns; arrays lead with the problem, then the chain axis."""

    z: jax.Array  # (problems, chains, samples, dim) unconstrained draws, padded to the longest model
    potential_energy: jax.Array  # (problems, chains, samples)
    energy: jax.Array  # (problems, chains, samples) Hamiltonian, for E-BFMI
    diverging: jax.Array  # (problems, chains, samples) bool
    n_steps: jax.Array  # (problems, chains, samples) leapfrog steps per iteration
    accept_prob: jax.Array  # (problems, chains, samples)
    step_size: jax.Array  # (problems, chains) adapted step size
    warmup_divergences: jax.Array  # (problems, chains)
    map_point: jax.Array  # (problems, dim)
    map_potential: jax.Array  # (problems,) potential at the MAP point; inf if every start failed
    laplace_ok: jax.Array  # (problems,) the Hessian at the MAP point was positive definite


jax.export.register_namedtuple_serialization(RawDraws, serialized_name="bayescale.RawDraws")


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
    """Return the function mapping a flat unconstrained vector back to named sites, and its length."""
    shapes = jax.eval_shape(functools.partial(_prior_centre, model), args)
    flat, unravel = ravel_pytree(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes))
    return unravel, flat.size


def _laplace_factor(hessian):
    """Return a square root ``F`` of the inverse Hessian (|eigenvalues| floored), and whether it was PD.

    ``F F^T`` is the Laplace covariance; for a Hessian that is not positive definite the
    absolute eigenvalues give a saddle-free stand-in.
    """
    hessian = 0.5 * (hessian + hessian.T)
    eigenvalues, vectors = jnp.linalg.eigh(hessian)
    floor = _EIGEN_FLOOR * jnp.max(jnp.abs(eigenvalues))
    return vectors / jnp.sqrt(jnp.maximum(jnp.abs(eigenvalues), floor)), jnp.all(eigenvalues > 0)


class _Potentials:
    """The potential, curvature potential and prior centre of several models, padded to one length.

    Every function takes ``(flat, args, which)`` for one problem: ``flat`` padded to the
    longest model, ``which`` the model's index.
    """

    def __init__(self, specs: Sequence[ModelSpec], args_one):
        self.models = [spec.model() for spec in specs]
        self.smooth_models = [spec.model(smooth=True) for spec in specs]
        unravelers = [_unraveler(model, args_one) for model in self.models]
        self.unravel = [unravel for unravel, _ in unravelers]
        self.dims = [dim for _, dim in unravelers]
        self.dim = max(self.dims)

    def _switch(self, which, branches, *operands):
        if len(branches) == 1:
            return branches[0](*operands)
        return jax.lax.switch(which, branches, *operands)

    def _padded_potential(self, models, index, flat, args):
        dim = self.dims[index]
        energy = potential_energy(models[index], args, {}, self.unravel[index](flat[:dim]))
        return energy + 0.5 * jnp.sum(flat[dim:] ** 2)

    def potential(self, flat, args, which):
        branches = [functools.partial(self._padded_potential, self.models, k) for k in range(len(self.models))]
        return self._switch(which, branches, flat, args)

    def curvature(self, flat, args, which):
        branches = [functools.partial(self._padded_potential, self.smooth_models, k) for k in range(len(self.models))]
        return self._switch(which, branches, flat, args)

    def centre(self, args, which):
        def branch(k, args):
            centre = ravel_pytree(_prior_centre(self.models[k], args))[0]
            return jnp.pad(centre, (0, self.dim - self.dims[k]))

        return self._switch(which, [functools.partial(branch, k) for k in range(len(self.models))], args)


def _over_problems(fn, num_problems):
    """``fn`` mapped over a leading problem axis: vmap, or for one problem a squeeze and unsqueeze.

    Tracing a second level of vmap through NUTS costs seconds; a batch of one skips it.
    """
    if num_problems > 1:
        return jax.vmap(fn)

    def single(*args):
        result = fn(*jax.tree.map(lambda leaf: leaf[0], args))
        return jax.tree.map(lambda leaf: leaf[None], result)

    return single


def _map_search(potentials, jitted_potential, keys, args, which, config):
    """Best of ``config.map_starts`` Newton runs per problem: point, Laplace factor, PD flag, potential."""
    jitted_curvature = jax.jit(potentials.curvature)
    num_starts, dim = config.map_starts, potentials.dim
    num_problems = keys.shape[0]

    def starts(key, args):
        centre = potentials.centre(args, which)
        offsets = jax.random.uniform(key, (num_starts, dim), centre.dtype, minval=-2.0, maxval=2.0)
        return jnp.where(jnp.arange(num_starts)[:, None] < num_starts // 2, centre + offsets, offsets)

    def newton_step(point, factor, args):
        gradient = jax.grad(jitted_potential)(point, args, which)
        direction = -factor @ (factor.T @ jnp.where(jnp.isfinite(gradient), gradient, 0.0))
        direction *= jnp.minimum(1.0, _MAX_NEWTON_STEP / jnp.maximum(jnp.linalg.norm(direction), 1e-30))
        candidates = point + jnp.asarray(_LINE_SEARCH, point.dtype)[:, None] * direction
        values = jax.vmap(jitted_potential, in_axes=(0, None, None))(candidates, args, which)
        point = candidates[jnp.argmin(jnp.where(jnp.isfinite(values), values, jnp.inf))]
        # The curvature at the new point is both the next step's metric and, after the
        # last step, the Laplace approximation at the optimum.
        factor, positive_definite = _laplace_factor(jax.hessian(jitted_curvature)(point, args, which))
        return point, factor, positive_definite

    over_starts = _over_problems(jax.vmap(newton_step, in_axes=(0, 0, None)), num_problems)

    def body(carry, _):
        points, factors, _ = carry
        return over_starts(points, factors, args), None

    points = _over_problems(starts, num_problems)(keys, args)
    identity = jnp.broadcast_to(jnp.eye(dim, dtype=points.dtype), (*points.shape, dim))
    initial = (points, identity, jnp.zeros(points.shape[:2], bool))
    (points, factors, positive_definite), _ = jax.lax.scan(body, initial, length=config.map_steps)
    values = _over_problems(
        jax.vmap(lambda point, args: jitted_potential(point, args, which), in_axes=(0, None)), num_problems
    )(points, args)
    values = jnp.where(jnp.isfinite(values) & jnp.all(jnp.isfinite(points), axis=-1), values, jnp.inf)
    best = jnp.argmin(values, axis=1)

    def pick(values):
        return jnp.take_along_axis(values, best.reshape(-1, *([1] * (values.ndim - 1))), axis=1)[:, 0]

    return pick(points), pick(factors), pick(positive_definite), pick(values)


@functools.cache
def _compiler_options() -> dict:
    """XLA options for the sampling programs: on CPU, the classic fusion emitters.

    The newer fusion emitters compile these programs (nested while-loops of small fusions)
    about 25% slower for no gain in run time (benchmarks/BENCHMARKS.md). Probed once, so
    an XLA that no longer knows the option just gets none.
    """
    if jax.default_backend() != "cpu":
        return {}
    options = {"xla_cpu_use_fusion_emitters": False}
    try:
        jax.jit(lambda x: x + 1, compiler_options=options).lower(1.0).compile()
    except Exception:  # an unknown option is an XlaRuntimeError; any failure means "none"
        return {}
    return options


@functools.lru_cache(maxsize=64)
def compiled_sampler(specs: tuple[ModelSpec, ...], config: SamplerConfig, devices: tuple[jax.Device, ...] = ()):
    """Return the jitted program ``run(keys, args, which) -> RawDraws`` for a batch of problems.

    ``keys`` (problems,), ``args`` the model arguments with a leading problem axis (all
    padded to one shape), ``which`` a scalar: the index into ``specs`` of the batch's model.
    With two or more ``devices`` the problems are split into equal blocks, one per device
    in order, so their number must be a multiple of ``len(devices)``; each device samples
    its block alone. Cached, so repeated fits with the same models, settings and devices
    reuse one compiled function for every data shape they have met.
    """

    def run(keys, args, which):
        potentials = _Potentials(specs, _one_problem(args))
        jitted_potential = jax.jit(potentials.potential)

        def whitened_potential_gen(args, shift, factor, which):
            # A sum of products, not ``factor @ u``: vmapped over thousands of chains, a
            # batch of tiny matrix products costs XLA on the CPU half the gradient's time.
            return lambda u: jitted_potential(shift + jnp.sum(factor * u, axis=-1), args, which)

        num_problems = keys.shape[0]
        split = jax.vmap(lambda key: jax.random.split(key, 3))(keys)
        point, factor, laplace_ok, map_potential = _map_search(
            potentials, jitted_potential, split[:, 0], args, which, config
        )
        shape = (config.num_chains, potentials.dim)
        starts = jax.vmap(lambda key: jax.random.normal(key, shape, point.dtype))(split[:, 1])
        starts = jnp.clip(starts, -_INIT_CLIP, _INIT_CLIP)
        whitening = (args, point, factor)

        if config.fixed_steps is None:
            init_kernel, sample_kernel = hmc(potential_fn_gen=whitened_potential_gen, algo="NUTS")
            dim, dtype = potentials.dim, point.dtype
            identity = jnp.eye(dim, dtype=dtype) if config.dense_mass else jnp.ones(dim, dtype)

            def init(chain_key, start, whitening):
                return init_kernel(
                    start,
                    config.num_warmup,
                    inverse_mass_matrix=identity,
                    dense_mass=config.dense_mass,
                    target_accept_prob=config.target_accept,
                    max_tree_depth=config.max_tree_depth,
                    model_args=(*whitening, which),
                    rng_key=chain_key,
                )
        else:
            init_kernel, sample_kernel = fixed_length_hmc(
                whitened_potential_gen, config.fixed_steps, config.num_warmup, config.target_accept
            )

            def init(chain_key, start, whitening):
                return init_kernel(start, model_args=(*whitening, which), rng_key=chain_key)

        chain_keys = jax.vmap(lambda key: jax.random.split(key, config.num_chains))(split[:, 2])
        states = _over_problems(jax.vmap(init, in_axes=(0, 0, None)), num_problems)(chain_keys, starts, whitening)
        over_chains = jax.vmap(
            lambda state, whitening: sample_kernel(state, model_args=(*whitening, which)), in_axes=(0, None)
        )
        over_problems = _over_problems(over_chains, num_problems)

        def step(states, _):
            states = over_problems(states, whitening)
            z = point[:, None] + jnp.einsum("pij,pcj->pci", factor, states.z)
            return states, (
                z,
                states.potential_energy,
                states.energy,
                states.diverging,
                states.num_steps,
                states.accept_prob,
            )

        states, stats = jax.lax.scan(step, states, length=config.num_warmup + config.num_samples)
        warmup_divergences = jnp.sum(stats[3][: config.num_warmup], axis=0)
        # Scan stacks iterations first; the draws lead with the problem and chain axes.
        stats = tuple(jnp.moveaxis(values[config.num_warmup :], 0, 2) for values in stats)
        return RawDraws(*stats, states.adapt_state.step_size, warmup_divergences, point, map_potential, laplace_ok)

    if len(devices) > 1:
        problems = jax.sharding.PartitionSpec("problems")
        mesh = jax.sharding.Mesh(np.asarray(devices), ("problems",))
        # Inside, ``run`` sees one device's block. It uses no collectives, so there is no
        # replication to check; the check would want every loop carry that starts from a
        # constant (the identity as first metric) cast to "varying".
        run = jax.shard_map(
            run,
            mesh=mesh,
            in_specs=(problems, problems, jax.sharding.PartitionSpec()),
            out_specs=problems,
            check_vma=False,
        )
    return jax.jit(run, compiler_options=_compiler_options())


def sampler_program(specs: tuple[ModelSpec, ...], config: SamplerConfig, keys, args, which, *, devices=()):
    """Return the program of :func:`compiled_sampler`, compiled for the shapes of these arguments.

    Compiling ahead of the call lets a caller show compiling and sampling as separate
    steps. It is the program a plain call would compile, and JAX's caches (in memory and
    on disk) serve both, so a repeat costs about a millisecond.

    ``devices`` as in :func:`compiled_sampler`.

    Returns
    -------
    callable
        ``program(keys, args, which) -> RawDraws``, for arguments of these shapes only.
    """
    return lowered_sampler(specs, config, (keys, args, which), devices=devices).compile()


def lowered_sampler(specs: tuple[ModelSpec, ...], config: SamplerConfig, call, *, devices=()) -> jax.stages.Lowered:
    """Return the program of :func:`compiled_sampler` for ``call = (keys, args, which)``, traced and lowered.

    While JAX's persistent cache is on, the traced program is stored beside it (see
    :mod:`bayescale._exported`) and read back in later processes, so that they neither
    trace nor compile it again. Sharded programs are traced every time.
    """
    folder = _exported.program_folder()
    if len(devices) > 1 or folder is None:
        return compiled_sampler(specs, config, tuple(devices)).lower(*call)
    leaves, structure = jax.tree.flatten(call)
    signature = tuple((leaf.shape, leaf.dtype) for leaf in leaves)
    return _stored_sampler(specs, config, structure, signature, folder).lower(*call)


@functools.lru_cache(maxsize=64)
def _stored_sampler(specs, config, structure, signature, folder):
    """Return the jitted stored program of :func:`compiled_sampler` for arguments of this structure and signature."""
    call = jax.tree.unflatten(structure, [jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in signature])
    program = _exported.stored_program(
        sampler_key(specs, config, call), lambda: jax.export.export(compiled_sampler(specs, config))(*call), folder
    )
    return jax.jit(program, compiler_options=_compiler_options())


def sampler_key(specs: tuple[ModelSpec, ...], config: SamplerConfig, call) -> str:
    """Return the key of the stored program of :func:`compiled_sampler` for ``call`` (its shapes and types).

    The models enter as they are traced for one problem (their potentials, curvature
    potentials and prior centres), so a law or prior that changes is a new program.
    """
    _, args, which = call
    args_one = _one_problem(args)
    potentials = _Potentials(specs, args_one)
    flat = jax.ShapeDtypeStruct((potentials.dim,), jnp.result_type(float))
    traced = [
        jax.make_jaxpr(potentials.potential)(flat, args_one, which),
        jax.make_jaxpr(potentials.curvature)(flat, args_one, which),
        jax.make_jaxpr(potentials.centre)(args_one, which),
    ]
    return _exported.fingerprint("sampler", traced, config, call)


def _one_problem(args):
    """Shapes and types of one problem's arguments, from a batch's (leading problem axis)."""
    return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape[1:], leaf.dtype), args)


@functools.lru_cache(maxsize=64)
def compiled_postprocess(spec: ModelSpec, pointwise: bool = True):
    """Return the jitted map from flat unconstrained draws of one problem to named draws and log-likelihoods.

    Returns ``post(args, z) -> (sites, log_lik)`` for ``z`` of shape (draws, dim) with
    ``dim`` this model's own length: the constrained parameters and the deterministic
    sites (a level sampled through its whitened form is one), and with ``pointwise``
    ``mu`` and the pointwise log-likelihood of the observed log losses; without, neither
    (``log_lik`` is None).
    """
    model = spec.model()

    def post(args, z):
        unravel, _ = _unraveler(model, args)
        constrain = functools.partial(constrain_fn, model, args, {}, return_deterministic=True)
        sites = jax.vmap(lambda flat: constrain(unravel(flat)))(z)
        if not pointwise:  # not returned, so the compiler drops its computation
            return {name: values for name, values in sites.items() if name != "mu"}, None
        return sites, log_likelihood(model, sites, *args)["log_loss"]

    return jax.jit(post)


def model_dim(spec: ModelSpec, args) -> int:
    """Length of the unconstrained parameter vector of ``spec`` for one problem's ``args``."""
    leaves, structure = jax.tree.flatten(args)
    return _model_dim(
        spec, structure, tuple(jax.ShapeDtypeStruct(np.shape(leaf), jnp.result_type(leaf)) for leaf in leaves)
    )


@functools.lru_cache(maxsize=256)
def _model_dim(spec: ModelSpec, structure, leaves) -> int:
    """:func:`model_dim` for arguments of this tree structure and these shapes (tracing the model costs ~20 ms)."""
    return _unraveler(spec.model(), jax.tree.unflatten(structure, leaves))[1]
