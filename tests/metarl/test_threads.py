"""metarl.threads: OpenMP's idle threads spin briefly instead of long, set before torch loads."""

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
print(json.dumps({"spin": os.environ.get("GOMP_SPINCOUNT"), "wait": os.environ.get("OMP_WAIT_POLICY"),
                  "idle_cpu": idle}))
"""


# What importing metarl (which does not load torch) or torch alone leaves in the environment.
SETTINGS_PROBE = """
import json, os, sys
if sys.argv[1] == "metarl":
    import metarl
elif sys.argv[1] == "torch-only":
    import torch
print(json.dumps({"spin": os.environ.get("GOMP_SPINCOUNT"), "wait": os.environ.get("OMP_WAIT_POLICY"),
                  "torch": "torch" in sys.modules}))
"""


def _clean_env() -> dict[str, str]:
    """The environment without the caller's OpenMP settings (they would change what is measured)."""
    return {k: v for k, v in os.environ.items() if k != threads.ENV_VAR and not k.startswith(("OMP_", "GOMP_", "KMP_"))}


def _probe(mode: str, probe: str = PROBE, **env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", probe, mode], env={**_clean_env(), **env}, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _settings(mode: str, **env: str) -> dict:
    """The OpenMP variables of a fresh process after ``import metarl`` (mode "metarl") or ``import torch`` alone."""
    return _probe(mode, SETTINGS_PROBE, **env)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may run on (taskset, container cpusets)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def test_sets_the_spin_count_only_when_unset_wanted_and_still_possible():
    env: dict[str, str] = {}
    assert threads.shorten_openmp_spinning(env, torch_loaded=False) == "set"
    assert env == {"GOMP_SPINCOUNT": "10000"}
    for mine in ({"GOMP_SPINCOUNT": "500"}, {"OMP_WAIT_POLICY": "ACTIVE"}, {"OMP_WAIT_POLICY": "passive"}):
        env = dict(mine)
        assert threads.shorten_openmp_spinning(env, torch_loaded=False) == "user"
        assert env == mine  # the user's setting, untouched
    env = {"GOMP_SPINCOUNT": " ", "OMP_WAIT_POLICY": ""}  # empty: unset
    assert threads.shorten_openmp_spinning(env, torch_loaded=False) == "set" and env["GOMP_SPINCOUNT"] == "10000"
    for off in ("0", "false", "No", " off "):
        env = {"METARL_SET_OPENMP": off}
        assert threads.shorten_openmp_spinning(env, torch_loaded=False) == "off"
        assert env == {"METARL_SET_OPENMP": off}
    env = {"METARL_SET_OPENMP": "1"}
    assert threads.shorten_openmp_spinning(env, torch_loaded=False) == "set"
    env = {}
    assert threads.shorten_openmp_spinning(env, torch_loaded=True) == "too late"
    assert env == {}


def test_importing_metarl_sets_it_for_the_process_and_its_children():
    mine = _settings("metarl")
    assert mine["spin"] == "10000" and not mine["torch"]  # set while torch is not loaded yet
    mine = _settings("metarl", OMP_WAIT_POLICY="PASSIVE")
    assert mine["spin"] is None and mine["wait"] == "PASSIVE"  # the user's choice, alone
    assert _settings("metarl", GOMP_SPINCOUNT="42")["spin"] == "42"
    assert _settings("metarl", METARL_SET_OPENMP="0")["spin"] is None
    assert _settings("torch-only")["spin"] is None  # nothing changes a process that does not import metarl
    child = subprocess.run([sys.executable, "-c", "import subprocess, sys, metarl; print(subprocess.run([sys.executable, "
                            "'-c', 'import os; print(os.environ.get(\"GOMP_SPINCOUNT\"))'], capture_output=True, "
                            "text=True, check=True).stdout.strip())"],
                           env=_clean_env(), capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "10000"  # a child of a metarl process (a local Ray worker, a bench run)


@pytest.mark.skipif(_usable_cpus() < 2, reason="needs two usable cores for a two-thread OpenMP team")
def test_openmp_reads_the_setting_idle_threads_stop_spinning():
    import torch

    if "OpenMP" not in torch.__config__.parallel_info():
        pytest.skip("torch's parallel backend is not OpenMP")
    spinning = _probe("torch-only", OMP_WAIT_POLICY="ACTIVE")  # idle threads spin for as long as they may
    short = _probe("metarl")
    # 0.6 s of sleeps: a thread that keeps spinning burns CPU meanwhile (about 0.6 s on an idle machine;
    # less, but far from nothing, when other jobs share the cores); 10,000 rounds are over in well under a
    # millisecond after each region
    assert spinning["idle_cpu"] > 0.05, spinning
    assert short["idle_cpu"] < 0.2 * spinning["idle_cpu"], (short, spinning)
