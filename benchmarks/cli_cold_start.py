"""Wall time of the README quickstart command, cold (empty compilation cache) and warm.

Each run is a fresh process, as a user's would be: Python start-up, imports, tracing,
compilation (or a cache hit), sampling, summaries and the forecast.

Run: ``python benchmarks/cli_cold_start.py [--repeats 3]``
"""

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bayescale import _progress

COMMAND = ["-m", "bayescale", *"fit --example chinchilla --likelihood laplace --compute 5.76e23 --json".split()]


def timed(env):
    start = time.perf_counter()
    subprocess.run([sys.executable, *COMMAND], check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main(args):
    import os

    cold, warm = [], []
    with _progress.task("quickstart runs, cold then warm", total=2 * args.repeats) as status:  # shown on a terminal
        for _ in range(args.repeats):
            cache = tempfile.mkdtemp(prefix="bayescale-cache-")
            env = {**os.environ, "BAYESCALE_CACHE_DIR": cache}
            with status.phase("cold (empty cache)"):
                cold.append(timed(env))  # empty cache: compiles everything
            status.advance()
            with status.phase("warm cache"):
                warm.append(timed(env))  # same shapes: programs come from the cache
            status.advance()
            shutil.rmtree(cache)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(f"bayescale {' '.join(COMMAND[2:])}")
    print(f"cold (empty cache): median {statistics.median(cold):.1f} s  runs {[round(t, 1) for t in cold]}")
    print(f"warm cache:         median {statistics.median(warm):.1f} s  runs {[round(t, 1) for t in warm]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    main(parser.parse_args())
