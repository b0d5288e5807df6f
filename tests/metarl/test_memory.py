"""metarl.memory: with freed memory kept, large temporaries reuse their pages instead of faulting in new ones."""

import json
import os
import subprocess
import sys

import pytest

from metarl import memory

PROBE = """
import json, resource, sys, torch
from metarl.memory import keep_freed_memory
kept = keep_freed_memory()
a, w = torch.ones(40, 2000, 100), torch.ones(40, 100, 100)  # 32 MB outputs, above glibc's largest mmap threshold
faults = []
for _ in range(12):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    y = torch.bmm(a, w)
    z = y * 2
    del y, z
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "faults": sum(faults[4:])}))
"""

glibc = pytest.mark.skipif(memory._mallopt() is None, reason="the C library is not glibc")


def _probe(setting: str) -> dict:
    env = {**os.environ, memory.ENV_VAR: setting}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc
def test_kept_memory_reuses_pages_the_default_faults_in_again():
    kept, default = _probe("1"), _probe("0")
    assert kept["kept"] is True and default["kept"] is False
    pages = 2 * 40 * 2000 * 100 * 4 // 4096  # two 32 MB temporaries per round
    assert default["faults"] >= 8 * pages * 0.9  # every round faults both temporaries in again
    assert kept["faults"] < 0.25 * default["faults"]


@glibc
def test_the_environment_variable_and_explicit_argument():
    assert memory.keep_freed_memory(True) is True
    assert memory.keep_freed_memory(False) is False
    os.environ[memory.ENV_VAR] = "0"
    try:
        assert memory.keep_freed_memory() is False
    finally:
        del os.environ[memory.ENV_VAR]
    assert memory.keep_freed_memory() is True
