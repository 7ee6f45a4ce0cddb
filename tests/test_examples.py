"""The examples run, with small settings."""

import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples")


@pytest.mark.parametrize("script", sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py")))
def test_example_runs(script, tmp_path):
    path = os.path.join(EXAMPLES, script)
    process = subprocess.run(
        [sys.executable, path, "--num-warmup", "200", "--num-samples", "200", "--num-chains", "2", "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr
    assert any(tmp_path.iterdir()), "the example saves a figure"
