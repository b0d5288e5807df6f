"""metarl.memory: with freed memory kept, large temporaries reuse their pages instead of faulting in new ones."""

import json
import os
import resource
import subprocess
import sys

import pytest

from metarl import memory

PROBE = """
import json, resource, sys, torch
from metarl.memory import keep_freed_memory
kept = keep_freed_memory()
a, w = torch.ones(40, 4000, 100), torch.ones(40, 100, 100)  # 64 MB outputs, above glibc's largest mmap threshold
faults = []
for _ in range(12):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    y = torch.bmm(a, w)
    z = y * 2
    del y, z
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "faults": sum(faults[4:])}))
"""


def _huge_pages_always() -> bool:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as fh:
            return "[always]" in fh.read()
    except OSError:
        return False


glibc = pytest.mark.skipif(memory._mallopt() is None, reason="the C library is not glibc")


def _probe(setting: str) -> dict:
    env = {**os.environ, memory.ENV_VAR: setting}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc
@pytest.mark.skipif(_huge_pages_always() or "THP_MEM_ALLOC_ENABLE" in os.environ,
                    reason="transparent huge pages fault large blocks in 2 MB at a time: page counts are not comparable")
def test_kept_memory_reuses_pages_glibcs_defaults_fault_in_again():
    kept, default = _probe("1"), _probe("0")  # "0": nothing is changed, glibc's own defaults
    assert kept["kept"] is True and default["kept"] is False
    pages = 2 * 40 * 4000 * 100 * 4 // resource.getpagesize()  # two 64 MB temporaries per round
    assert default["faults"] >= 8 * pages * 0.9  # every round faults both temporaries in again
    assert kept["faults"] < 0.25 * default["faults"]


@glibc
def test_the_environment_variable_and_explicit_argument(monkeypatch):
    assert memory.keep_freed_memory(True) is True
    assert memory.keep_freed_memory(False) is False  # changes nothing
    for off in ("0", "false", "OFF", " no "):
        monkeypatch.setenv(memory.ENV_VAR, off)
        assert memory.keep_freed_memory() is False
    monkeypatch.setenv(memory.ENV_VAR, "1")
    assert memory.keep_freed_memory() is True
    monkeypatch.delenv(memory.ENV_VAR)
    assert memory.keep_freed_memory() is True
