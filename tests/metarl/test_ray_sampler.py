"""The Ray sampler on a real local Ray with real envs: same episodes and runs as local sampling, faults, shutdown.

Selected by ``make test-ray`` (marker ``ray``; the default ``make test`` deselects it) and skipped where
Ray is not installed.  One Ray session (3 CPUs) serves the module; runs that must start or join Ray
themselves run as child processes.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")

from metarl.checkpoint import load_checkpoint  # noqa: E402
from metarl.config import ConfigError, load_config  # noqa: E402
from metarl.policy import GaussianMLPPolicy  # noqa: E402
from metarl.ray_sampler import RaySampler, SamplerError  # noqa: E402
from metarl.sampler import Sampler  # noqa: E402
from metarl.trainer import Trainer  # noqa: E402

from .helpers import sampling_problem  # noqa: E402

pytestmark = pytest.mark.ray

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SMOKE_NAV = os.path.join(ROOT, "experiments", "configs", "smoke_navigation2d.yaml")
SMOKE_CHEETAH = os.path.join(ROOT, "experiments", "configs", "smoke_halfcheetah_vel.yaml")
SLOW_NAV = ["env.id=raytest/SlowNavigation2D-v0", "env.imports=[tests.metarl.ray_plugins]"]
FIELDS = ("obs", "actions", "rewards", "mask")


@pytest.fixture(scope="module")
def ray_session():
    # workers inherit the environment: they import this checkout's metarl and the test plug-in
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([ROOT] + ([old] if old else []))
    ray.init(address="local", num_cpus=3, include_dashboard=False, logging_level="WARNING")  # never a stray cluster
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


def assert_same_batch(a, b):
    for k in FIELDS:
        assert torch.equal(getattr(a, k), getattr(b, k)), k
        # the same layout too: it decides the order of later float reductions (returns, baseline fits)
        assert getattr(a, k).stride() == getattr(b, k).stride(), k
    np.testing.assert_array_equal(a.tasks, b.tasks)


# ---- the same episodes ----------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_ray_sampler_gives_the_local_episodes_for_any_number_of_workers(ray_session, workers):
    cfg, env, policy, shared, batched, tasks = sampling_problem(SMOKE_NAV, ["sampler.backend=ray", f"sampler.workers={workers}"])
    local = Sampler(env, policy, 4, 4)
    remote = RaySampler(cfg, policy)
    try:
        assert remote.blocks == {1: [(0, 4)], 2: [(0, 2), (2, 4)], 3: [(0, 2), (2, 3), (3, 4)]}[workers]
        g_local, g_ray = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
        for params, seed in ((shared, 11), (batched, 12), (shared, 13)):
            assert_same_batch(local.sample(params, tasks, seed, g_local), remote.sample(params, tasks, seed, g_ray))
        assert torch.equal(g_local.get_state(), g_ray.get_state())
        assert remote.bytes_received > 0 and remote.bytes_sent > 0
    finally:
        remote.close()
    assert ray.is_initialized()  # the session the test started is left alone


def run_trainer(tmp_path, name, cfg_path, overrides):
    trainer = Trainer(load_config(cfg_path, list(overrides)), str(tmp_path / name))
    return trainer, trainer.train()


def progress_without_timings(path):
    rows = [r.split(",") for r in path.read_text().splitlines()]
    keep = [i for i, name in enumerate(rows[0]) if not name.startswith("time/")]
    return [[r[i] for i in keep] for r in rows]


@pytest.mark.parametrize("cfg_path,workers", [(SMOKE_NAV, 1), (SMOKE_NAV, 2), (SMOKE_NAV, 3), (SMOKE_CHEETAH, 2)])
def test_training_on_ray_equals_training_locally(ray_session, tmp_path, cfg_path, workers):
    _, local = run_trainer(tmp_path, "local", cfg_path, [])
    trainer, remote = run_trainer(tmp_path, "ray", cfg_path, ["sampler.backend=ray", f"sampler.workers={workers}"])
    assert trainer.env.num_envs == 1  # the learner's env only gives sizes and tasks; the workers sample
    assert trainer.sampler.workers == []  # closed at the end of train()
    for k in local.params:
        assert torch.equal(local.params[k], remote.params[k]), k
    assert local.env_steps == remote.env_steps
    assert progress_without_timings(tmp_path / "local" / "progress.csv") == \
        progress_without_timings(tmp_path / "ray" / "progress.csv")
    a = load_checkpoint(tmp_path / "local" / "checkpoints" / "latest.pt")
    b = load_checkpoint(tmp_path / "ray" / "checkpoints" / "latest.pt")
    assert torch.equal(a["torch_rng"], b["torch_rng"]) and a["np_rng"] == b["np_rng"]


def test_a_resumed_ray_run_equals_an_uninterrupted_local_run(ray_session, tmp_path):
    ray_set = ["sampler.backend=ray", "sampler.workers=2"]
    _, full = run_trainer(tmp_path, "local", SMOKE_NAV, ["iterations=4"])
    run_trainer(tmp_path, "split", SMOKE_NAV, ray_set + ["iterations=2"])
    trainer = Trainer(load_config(SMOKE_NAV, ray_set + ["iterations=4"]), str(tmp_path / "split"), resume=True)
    resumed = trainer.train()
    assert resumed.iteration == 4
    for k in full.params:
        assert torch.equal(full.params[k], resumed.params[k]), k
    assert progress_without_timings(tmp_path / "local" / "progress.csv") == \
        progress_without_timings(tmp_path / "split" / "progress.csv")


# ---- faults ---------------------------------------------------------------------------------------
def wait_for(condition, timeout=60.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def kill_when_stepping(marker_dir, pid, how, sampler, worker):
    """Once worker ``pid`` has started a rollout (its marker file exists), kill it ``how``."""
    wait_for(lambda: any(f.startswith(f"step-{pid}-") for f in os.listdir(marker_dir)), what="the worker to step")
    if how == "ray.kill":
        ray.kill(sampler.workers[worker])
    else:
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("how", ["ray.kill", "SIGKILL"])
def test_a_worker_killed_mid_sample_is_replaced_and_its_tasks_sampled_again(ray_session, tmp_path, how, capfd):
    markers = tmp_path / "markers"
    markers.mkdir()
    overrides = SLOW_NAV + [f"env.kwargs={{horizon: 20, delay: 0.05, marker_dir: {markers}}}",
                            "sampler.backend=ray", "sampler.workers=2", "sampler.max_failures=1"]
    cfg, env, policy, shared, batched, tasks = sampling_problem(SMOKE_NAV, overrides)
    expected = Sampler(env, policy, 4, 4).sample(batched, tasks, 5, torch.Generator().manual_seed(2))
    remote = RaySampler(cfg, policy)
    try:
        old_pid = remote.infos[1]["pid"]
        killer = threading.Thread(target=kill_when_stepping, args=(str(markers), old_pid, how, remote, 1))
        killer.start()
        got = remote.sample(batched, tasks, 5, torch.Generator().manual_seed(2))
        killer.join()
        assert remote.failures == 1 and remote.infos[1]["pid"] != old_pid
        assert_same_batch(expected, got)
        # the replacement keeps working, and a second death is one too many
        assert_same_batch(expected, remote.sample(batched, tasks, 5, torch.Generator().manual_seed(2)))
        ray.kill(remote.workers[0])
        with pytest.raises(SamplerError) as info:
            remote.sample(batched, tasks, 5, torch.Generator().manual_seed(2))
        msg = str(info.value)
        assert "Ray sampler worker 0 (tasks 0-1" in msg and "2 worker failures" in msg
        assert "sampler.max_failures = 1" in msg and "--resume" in msg
    finally:
        remote.close()
    assert "Ray sampler worker 1 (tasks 2-3" in capfd.readouterr().err


def test_a_run_stops_after_max_failures_with_its_last_checkpoint_intact(ray_session, tmp_path):
    overrides = SLOW_NAV + ["env.kwargs={horizon: 20, delay: 0.05}", "sampler.backend=ray", "sampler.workers=2",
                            "sampler.max_failures=0", "iterations=5"]
    trainer = Trainer(load_config(SMOKE_NAV, overrides), str(tmp_path / "run"))
    latest = tmp_path / "run" / "checkpoints" / "latest.pt"
    pid = trainer.sampler.infos[0]["pid"]

    def kill_after_first_iteration():
        wait_for(latest.exists, what="the first checkpoint")
        os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_after_first_iteration)
    killer.start()
    with pytest.raises(SamplerError, match=r"sampler.max_failures = 0. The run stops here; its last checkpoint is intact"):
        trainer.train()
    killer.join()
    saved = load_checkpoint(latest)
    assert saved["iteration"] >= 1 and saved["iteration"] == trainer.state.iteration
    assert len((tmp_path / "run" / "progress.csv").read_text().splitlines()) == saved["iteration"] + 1
    assert trainer.sampler.workers == []


def test_a_worker_exception_reaches_the_caller_as_itself(ray_session):
    cfg, env, policy, shared, _, tasks = sampling_problem(
        SMOKE_NAV, SLOW_NAV + ["env.kwargs={horizon: 20, fail_at_step: 3}", "sampler.backend=ray", "sampler.workers=2"])
    remote = RaySampler(cfg, policy)
    try:
        with pytest.raises(ValueError) as info:
            remote.sample(shared, tasks, 0, torch.Generator().manual_seed(0))
        assert str(info.value) == "SlowNavigation2D: asked to fail at step 3"
        note = "\n".join(getattr(info.value, "__notes__", []))
        assert "raised by Ray sampler worker" in note and "_step_slots" in note  # where, and the worker's traceback
        assert "\x1b[" not in note  # no terminal colour codes
        assert remote.failures == 0
    finally:
        remote.close()


def test_a_worker_that_cannot_build_its_env_reports_the_config_error(ray_session):
    cfg = load_config(SMOKE_NAV, ["sampler.backend=ray", "sampler.workers=2"])
    policy = GaussianMLPPolicy(2, 2, cfg.policy.hidden_sizes)
    cfg.env.kwargs = {"horizon": 20, "no_such_option": 1}  # the learner never builds this env
    with pytest.raises(ConfigError, match=r"config field 'env.kwargs': metarl/Navigation2D-v0 does not take"):
        RaySampler(cfg, policy)
    wait_for(lambda: ray.available_resources().get("CPU", 0) == 3, what="the workers to be gone")


# ---- starting, joining and leaving Ray -------------------------------------------------------------
def start_cli(tmp_path, name, extra_env):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PYTHONPATH=ROOT, **extra_env)
    cmd = [sys.executable, "-m", "metarl.cli", "train", "--config", SMOKE_NAV, "--output", str(tmp_path / name),
           "--set", "sampler.backend=ray", "--set", "sampler.workers=2", "--set", "iterations=100000",
           "--set", "checkpoint_every=100000"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_cli(proc, run_dir, signum):
    wait_for(lambda: (run_dir / "checkpoints" / "latest.pt").exists() or proc.poll() is not None, timeout=180,
             what="the run's first checkpoint")
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, err


def processes_of(session_dir):
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if session_dir in line]


def test_a_run_that_started_ray_stops_it_on_sigterm(ray_session, tmp_path):
    proc = start_cli(tmp_path, "own", {})
    code, err = stop_cli(proc, tmp_path / "own", signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, err
    assert "metarl: started a local Ray with 2 CPUs for 2 sampler workers" in err
    session = err.split("(session ")[1].split(")")[0]
    assert session.startswith("/tmp/ray/session_") or "session_" in session
    wait_for(lambda: not processes_of(session), timeout=60, what=f"the processes of {session} to stop")
    assert load_checkpoint(tmp_path / "own" / "checkpoints" / "latest.pt")["iteration"] >= 1


def test_a_run_that_joined_a_cluster_leaves_it_running_on_sigint(ray_session, tmp_path):
    proc = start_cli(tmp_path, "joined", {"RAY_ADDRESS": ray_session})
    code, err = stop_cli(proc, tmp_path / "joined", signal.SIGINT)
    assert code == 128 + signal.SIGINT, err
    assert f"metarl: joined the Ray cluster at {ray_session} with 2 sampler workers" in err
    # the cluster is still up, and the run's workers are gone from it
    assert ray.get(ray.remote(lambda: 42).remote()) == 42
    wait_for(lambda: ray.available_resources().get("CPU", 0) == 3, what="the run's workers to leave the cluster")
