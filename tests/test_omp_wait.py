"""Every entry point sets OpenMP's passive wait policy before torch is first imported (the runtime reads it once)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

# Records OMP_WAIT_POLICY at the moment torch is first imported, after importing the entry point given.
WATCH = """
import os, sys

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "policy" not in globals():
            globals()["policy"] = os.environ.get("OMP_WAIT_POLICY", "unset")

sys.meta_path.insert(0, Watch())
__import__(sys.argv[1])
import torch
print(policy)
"""


@pytest.mark.parametrize("entry", ["run_search", "train_proxy", "bench.cpu_contention"])
@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_the_wait_policy_is_set_before_torch_is_imported(entry, given, expected):
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    env.update({"PYTHONPATH": str(REPO), **({"OMP_WAIT_POLICY": given} if given else {})})
    done = subprocess.run([sys.executable, "-c", WATCH, entry], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected  # a user's own policy is kept
