"""Sampler defaults and the compilation cache.

The defaults are kept in one frozen object that every argument can override.
"""

import dataclasses
import os

__all__ = ["LARGE_BATCH", "RETRY_SCHEDULE", "SamplerConfig", "enable_compilation_cache"]

#: Retries of a fit that fails its sampler checks (``fit(..., retry=True)``): the target
#: acceptance and the multiple of the warmup of each. A higher target acceptance adapts a
#: smaller step size, which follows the curvature that causes divergences; the longer warmup
#: gives the adaptation of that step size and of the mass matrix time to settle.
RETRY_SCHEDULE = ((0.95, 2), (0.99, 4))


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
    """Settings of the NUTS run behind :func:`bayescale.fit`.

    Parameters
    ----------
    num_warmup : int
        Adaptation iterations per chain; discarded.
    num_samples : int
        Kept draws per chain.
    num_chains : int
        Independent chains, run vectorized on one device.
    target_accept : float
        Target acceptance probability of the step-size adaptation. Raise it (0.9, 0.95)
        when a fit reports divergences.
    max_tree_depth : int
        Cap on the NUTS tree depth (at most ``2**max_tree_depth - 1`` leapfrog steps).
    dense_mass : bool
        Adapt a dense inverse mass matrix (initialised from the Laplace approximation at
        the MAP point) rather than a diagonal one. Scaling-law posteriors are strongly
        correlated (a scale constant against its exponent), which a dense metric absorbs.
    map_starts : int
        Number of starting points of the MAP search that initialises the chains.
    map_steps : int
        Newton steps of each MAP search.
    fixed_steps : int, optional
        Replace NUTS by HMC that takes exactly this many leapfrog steps per iteration
        (``bayescale._fixed_length``), for large batches: their problems and chains run in
        lockstep, so each NUTS iteration costs the deepest tree of them all, while every
        fixed-length iteration costs the same. After the Laplace whitening a posterior close
        to Normal wants a trajectory of about pi/2, which for a handful of parameters is 2
        steps (more parameters adapt smaller steps and want more of them); a posterior far
        from Normal mixes slowly, which R-hat and ESS then report. ``max_tree_depth`` and
        ``dense_mass`` do not apply (the whitening is the metric).
    """

    num_warmup: int = 1000
    num_samples: int = 1000
    num_chains: int = 4
    target_accept: float = 0.8
    max_tree_depth: int = 10
    dense_mass: bool = True
    map_starts: int = 16
    map_steps: int = 25
    fixed_steps: int | None = None

    def __post_init__(self):
        counts = ("num_warmup", "num_samples", "num_chains", "max_tree_depth", "map_starts", "map_steps", "fixed_steps")
        for name in counts:
            value = getattr(self, name)
            minimum = 0 if name == "num_warmup" else 1
            if name == "fixed_steps" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"SamplerConfig.{name} must be an integer >= {minimum}, got {value!r}")
        if not 0.0 < self.target_accept < 1.0:
            raise ValueError(f"SamplerConfig.target_accept must lie in (0, 1), got {self.target_accept!r}")

    def replace(self, **changes):
        """Return a copy with the given fields changed; ``None`` values are ignored."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def retries(self) -> tuple["SamplerConfig", ...]:
        """Return the settings of the retries of an unhealthy fit, in order (see :data:`RETRY_SCHEDULE`).

        The target acceptance never drops below this one's, and a retry that would repeat
        the previous settings is left out.

        Returns
        -------
        tuple of SamplerConfig
        """
        retries, previous = [], self
        for target_accept, warmup_factor in RETRY_SCHEDULE:
            candidate = self.replace(
                target_accept=max(target_accept, self.target_accept), num_warmup=self.num_warmup * warmup_factor
            )
            if candidate != previous:
                retries.append(candidate)
                previous = candidate
        return tuple(retries)


#: Settings for batches of hundreds or thousands of small problems (learning curves, each
#: law of a sweep's runs): fixed-length HMC (2 leapfrog steps, a trajectory of about pi/2
#: in the whitened space of a handful of parameters), 150 warmup iterations (the Laplace
#: whitening leaves only the step size to adapt), 800 draws per chain (bulk ESS about 3,000
#: per curve, and R-hat < 1.01 for each of 1,000 simulated curves; with 600, the largest
#: R-hat came within 0.001 of the limit) and 4 MAP starts (a curve's posterior has one
#: mode; the 16 of the default guard scaling laws' ridges). Measured in
#: benchmarks/BENCHMARKS.md; every fit is still checked, and one that fails says so.
LARGE_BATCH = SamplerConfig(num_warmup=150, num_samples=800, fixed_steps=2, map_starts=4)


def enable_compilation_cache(path: str | None = None) -> str:
    """Keep compiled programs on disk, so a new process does not compile the same fit again.

    The command line turns it on; call it yourself to get the same in Python. It sets
    JAX's persistent compilation cache, for every compiled program of the process.

    Parameters
    ----------
    path : str, optional
        Cache directory. Defaults to ``$BAYESCALE_CACHE_DIR``, else
        ``$XDG_CACHE_HOME/bayescale/jax`` (``~/.cache/bayescale/jax``).

    Returns
    -------
    str
        The directory used.
    """
    import jax

    if path is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = os.environ.get("BAYESCALE_CACHE_DIR") or os.path.join(base, "bayescale", "jax")
    jax.config.update("jax_compilation_cache_dir", path)
    # Cache every program: a fit is several programs of a second or two each.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path
