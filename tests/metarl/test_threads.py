"""metarl.threads: OpenMP's idle threads sleep instead of spinning, set before torch loads."""

import json
import os
import subprocess
import sys

import pytest

from metarl import threads

# One parallel region, then the main thread sleeps: CPU time the process spends during the sleep is the
# idle OpenMP threads spinning.
PROBE = """
import json, os, resource, sys, time
if sys.argv[1] == "metarl":
    import metarl  # before torch, as the metarl command does
import torch
torch.set_num_threads(2)
x = torch.ones(4_000_000)
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
idle = 0.0
for _ in range(3):
    x.add_(1.0)  # parallel over the team
    before = cpu()
    time.sleep(0.2)
    idle += cpu() - before
print(json.dumps({"policy": os.environ.get("OMP_WAIT_POLICY"), "idle_cpu": idle}))
"""


def _probe(mode: str, **env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in (threads.OMP_VAR, threads.ENV_VAR)}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env={**base, **env}, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_sets_passive_only_when_unset_wanted_and_still_possible():
    env: dict[str, str] = {}
    assert threads.prefer_passive_openmp(env, torch_loaded=False) == "set"
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert threads.prefer_passive_openmp(env, torch_loaded=False) == "user"
    assert env == {"OMP_WAIT_POLICY": "ACTIVE"}
    for off in ("0", "false", "No", " off "):
        env = {"METARL_OPENMP_PASSIVE": off}
        assert threads.prefer_passive_openmp(env, torch_loaded=False) == "off"
        assert "OMP_WAIT_POLICY" not in env
    env = {"METARL_OPENMP_PASSIVE": "1"}
    assert threads.prefer_passive_openmp(env, torch_loaded=False) == "set"
    env = {}
    assert threads.prefer_passive_openmp(env, torch_loaded=True) == "too late"
    assert env == {}


def test_importing_metarl_sets_it_for_the_process_and_its_children():
    assert _probe("metarl")["policy"] == "PASSIVE"
    assert _probe("metarl", OMP_WAIT_POLICY="active")["policy"] == "active"  # the user's own value is kept
    assert _probe("metarl", METARL_OPENMP_PASSIVE="0")["policy"] is None
    assert _probe("torch-only")["policy"] is None  # nothing changes a process that does not import metarl


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores for a two-thread OpenMP team")
def test_openmp_reads_the_setting_idle_threads_stop_spinning():
    import torch

    if "OpenMP" not in torch.__config__.parallel_info():
        pytest.skip("torch's parallel backend is not OpenMP")
    spinning = _probe("torch-only", OMP_WAIT_POLICY="ACTIVE")  # idle threads spin for as long as they may
    sleeping = _probe("metarl")
    assert spinning["idle_cpu"] > 0.15, spinning  # 0.6 s of sleeps: the spinning thread burns CPU meanwhile
    assert sleeping["idle_cpu"] < 0.5 * spinning["idle_cpu"] and sleeping["idle_cpu"] < 0.1, (sleeping, spinning)
