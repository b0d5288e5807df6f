"""The package as a user meets it: install layout, imports, plug-ins end to end, safe loading, clean working directories."""

from __future__ import annotations

import ast
import os
import pickle
import re
import subprocess
import sys
import textwrap

import gymnasium
import numpy as np
import pytest
import torch

from metarl.checkpoint import CheckpointError, FORMAT, VERSION, load_checkpoint

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CONSOLE = os.path.join(os.path.dirname(sys.executable), "metarl")


def run(cmd, cwd, **kw):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, **kw)


# ---- install layout and imports ------------------------------------------------------------------------------
def test_envs_install_as_metarl_envs_and_no_top_level_envs_module(tmp_path):
    (tmp_path / "envs.py").write_text("raise SystemExit('the user file was imported')\n")
    code = textwrap.dedent("""
        import importlib.util, sys
        sys.path.remove('') if '' in sys.path else None
        assert importlib.util.find_spec('envs') is None, 'a top-level envs module is installed'
        import gymnasium, metarl.envs
        assert 'metarl/AntVel-v0' in gymnasium.registry
        assert metarl.envs.__name__ == 'metarl.envs'
        print('ok')
    """)
    res = run([sys.executable, "-c", code], cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
    # with the user's envs.py importable, metarl still imports its own envs
    res = run([sys.executable, "-c", "import metarl.envs, gymnasium; print('metarl/AntDir-v0' in gymnasium.registry)"],
              cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == "True", res.stderr


# Imports flow one way: a module may import only modules on its own floor or below (ARCHITECTURE's layers).
LAYERS = [
    {"metarl.errors", "metarl.memory", "metarl.threads"},
    {"metarl.config", "metarl.checkpoint", "metarl.data"},
    {"metarl.envs", "metarl.environment", "metarl.rundir"},
    {"metarl.policy", "metarl.baseline", "metarl.episodes", "metarl.logger"},
    {"metarl.adaptation", "metarl.trpo", "metarl.surrogates", "metarl.curvature"},
    {"metarl.sampler", "metarl.ray_sampler", "metarl.maml", "metarl.meta_sgd", "metarl.maml_ppo", "metarl.promp",
     "metarl.algorithms"},
    {"metarl.evaluation", "metarl.plotting", "metarl.sb3"},
    {"metarl.trainer"},
    {"metarl.api"},
    {"metarl.cli"},
]


def _floor(module: str) -> int | None:
    for i, floor in enumerate(LAYERS):
        if module in floor or any(module.startswith(m + ".") for m in floor):
            return i
    return None


def _imports(path: str, module: str) -> set[str]:
    tree = ast.parse(open(path).read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside metarl.envs
                found.add("metarl.envs")
            elif node.module:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m.startswith("metarl") and m != module}


def test_imports_flow_one_way_and_form_no_cycle():
    modules = {}
    for name in sorted(os.listdir(os.path.join(ROOT, "metarl"))):
        if name.endswith(".py") and name != "__init__.py":
            modules[f"metarl.{name[:-3]}"] = os.path.join(ROOT, "metarl", name)
    unplaced = [m for m in modules if _floor(m) is None]
    assert not unplaced, f"place these modules on a floor of LAYERS: {unplaced}"
    for module, path in modules.items():
        for imported in _imports(path, module):
            target = _floor(imported)
            if target is None or imported == "metarl":
                continue
            assert target <= _floor(module), f"{module} (floor {_floor(module)}) imports {imported} (floor {target})"
    # the env package imports nothing of the library
    for name in os.listdir(os.path.join(ROOT, "envs")):
        if name.endswith(".py"):
            imported = _imports(os.path.join(ROOT, "envs", name), "metarl.envs") - {"metarl.envs"}
            assert not imported, (name, imported)


def test_every_module_imports_on_its_own():
    import importlib.util

    names = [f"metarl.{n[:-3]}" for n in sorted(os.listdir(os.path.join(ROOT, "metarl"))) if n.endswith(".py")]
    if importlib.util.find_spec("ray") is None:  # the optional [ray] extra: without it the module says how to install it
        names.remove("metarl.ray_sampler")
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\n    [sys.modules.pop(m) for m in list(sys.modules) if m.startswith('metarl')]\nprint('ok')"
    res = run([sys.executable, "-c", code, *names], cwd=ROOT)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


# ---- gymnasium users -------------------------------------------------------------------------------------------
def test_single_env_task_methods_the_gymnasium_way():
    import metarl.envs  # noqa: F401

    env = gymnasium.make("metarl/HalfCheetahVel-v0")
    tasks = env.unwrapped.sample_tasks(3, np.random.default_rng(0))
    env.unwrapped.set_task(tasks[1])
    np.testing.assert_array_equal(env.unwrapped.get_task(), tasks[1])
    np.testing.assert_array_equal(env.get_wrapper_attr("get_task")(), tasks[1])


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


@pytest.mark.parametrize("doc", ["README.md", "docs/plugins.md", "docs/envs.md"])
def test_python_code_blocks_in_the_docs_run(tmp_path, doc):
    blocks = python_blocks(open(os.path.join(ROOT, doc)).read())
    runnable = [b for b in blocks if "# not run in tests" not in b]
    if not runnable:
        pytest.skip(f"{doc} has no Python block to run")
    script = tmp_path / "blocks.py"
    script.write_text("\n\n".join(runnable))
    # as from the repository root (the blocks name experiments/...), but writing into a scratch folder
    os.symlink(os.path.join(ROOT, "experiments"), tmp_path / "experiments")
    res = run([sys.executable, str(script)], cwd=tmp_path, env={**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": ROOT})
    assert res.returncode == 0, res.stderr[-3000:]


# ---- plug-ins end to end with the installed console script ---------------------------------------------------------
PLUGIN = '''
import gymnasium
import numpy as np

with open("imported.log", "a") as log:  # lets the tests see every time this module's code runs
    log.write("imported\\n")


class LineGoal(gymnasium.Env):
    """A point on a line that should stop at a goal; the task is the goal."""

    def __init__(self):
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (1,), np.float64)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.goal, self.x = 0.5, 0.0

    def sample_tasks(self, n, rng):
        return rng.uniform(-1.0, 1.0, size=(n, 1))

    def set_task(self, task):
        self.goal = float(np.asarray(task).reshape(-1)[0])

    def get_task(self):
        return np.array([self.goal])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = 0.0
        return np.array([self.x]), {}

    def step(self, action):
        self.x += 0.1 * float(np.clip(action[0], -1.0, 1.0))
        return np.array([self.x]), -abs(self.x - self.goal), False, False, {}


gymnasium.register("mylab/LineGoal-v0", entry_point=LineGoal, max_episode_steps=15)
'''

PLUGIN_CONFIG = """
env: {id: mylab/LineGoal-v0, imports: [mylab_tasks]}
policy: {hidden_sizes: [8]}
algo: {num_tasks: 3, episodes_per_task: 2, inner_step_size: 0.5}
iterations: 2
progress_bar: false
"""


def test_plugin_journey_with_the_console_script(tmp_path):
    assert os.path.exists(CONSOLE), "the console script is installed with the package"
    work = tmp_path / "project"
    work.mkdir()
    (work / "mylab_tasks.py").write_text(PLUGIN)
    (work / "line.yaml").write_text(PLUGIN_CONFIG)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    steps = [
        [CONSOLE, "train", "--config", "line.yaml", "--output", "runs/line"],
        [CONSOLE, "train", "--output", "runs/line", "--resume", "--iterations", "3", "--import", "mylab_tasks"],
        [CONSOLE, "evaluate", "runs/line", "--tasks", "4", "--episodes", "2", "--steps", "2", "--import", "mylab_tasks"],
        [CONSOLE, "evaluate", "--random", "--config", "line.yaml", "--output", "runs/random", "--tasks", "4",
         "--episodes", "2", "--steps", "2"],
        [CONSOLE, "plot", "maml=runs/line/evaluation", "random=runs/random", "--output", "line.png"],
    ]
    for cmd in steps:
        res = run(cmd, cwd=work, env=env)
        assert res.returncode == 0, (cmd, res.stderr[-2000:])
        assert "Traceback" not in res.stderr
    assert load_checkpoint(work / "runs" / "line" / "checkpoints" / "latest.pt")["iteration"] == 3
    assert (work / "runs" / "line" / "evaluation" / "summary.csv").exists()
    assert (work / "line.png").stat().st_size > 0
    assert "MUJOCO_LOG.TXT" not in os.listdir(work)
    assert (work / "imported.log").read_text().count("imported") == 4  # one per command
    # the rule, stated in the error: a plug-in module is imported from the working directory
    res = run([CONSOLE, "evaluate", str(work / "runs" / "line"), "--tasks", "2", "--output", "elsewhere",
               "--import", "mylab_tasks"], cwd=tmp_path, env=env)
    assert res.returncode == 2 and "env.imports" in res.stderr and "mylab_tasks" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_saved_run_imports_its_plugin_modules_only_when_the_user_names_them(tmp_path):
    """A received run directory names modules to import; metarl imports none of them unasked."""
    work = tmp_path / "project"
    work.mkdir()
    (work / "mylab_tasks.py").write_text(PLUGIN)
    (work / "line.yaml").write_text(PLUGIN_CONFIG)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = run([CONSOLE, "train", "--config", "line.yaml", "--output", "runs/line"], cwd=work, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    log = work / "imported.log"
    log.unlink()
    progress = (work / "runs" / "line" / "progress.csv").read_bytes()
    config = (work / "runs" / "line" / "config.yaml").read_bytes()
    refused = [
        [CONSOLE, "evaluate", "runs/line", "--tasks", "2", "--episodes", "2", "--steps", "1"],
        [CONSOLE, "evaluate", "runs/line/checkpoints/latest.pt", "--output", "e", "--tasks", "2"],
        [CONSOLE, "train", "--output", "runs/line", "--resume", "--iterations", "3"],
    ]
    for cmd in refused:
        res = run(cmd, cwd=work, env=env)
        assert res.returncode == 2, (cmd, res.stdout, res.stderr)
        assert "env.imports" in res.stderr and "--import mylab_tasks" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
        assert not log.exists(), cmd  # the module's code never ran
    assert (work / "runs" / "line" / "progress.csv").read_bytes() == progress
    assert (work / "runs" / "line" / "config.yaml").read_bytes() == config
    assert not (work / "runs" / "line" / "evaluation").exists() and not (work / "e").exists()
    # a module named that the run does not use is a typo to report, and nothing is imported either
    res = run([CONSOLE, "evaluate", "runs/line", "--tasks", "2", "--import", "mylab_tasks", "--import", "os.path"],
              cwd=work, env=env)
    assert res.returncode == 2 and "--import" in res.stderr and "os.path" in res.stderr and not log.exists()
    # --import where nothing is loaded is a usage error
    for cmd in ([CONSOLE, "train", "--config", "line.yaml", "--output", "runs/b", "--import", "mylab_tasks"],
                [CONSOLE, "evaluate", "--random", "--config", "line.yaml", "--output", "r", "--import", "mylab_tasks"]):
        res = run(cmd, cwd=work, env=env)
        assert res.returncode == 2 and "--import" in res.stderr and "Traceback" not in res.stderr, (cmd, res.stderr)
    assert not log.exists() and not (work / "runs" / "b").exists() and not (work / "r").exists()


def test_the_docs_plugin_example_trains_from_the_repository_root(tmp_path):
    res = run([CONSOLE, "train", "--config", "experiments/configs/smoke_navigation2d.yaml", "--output",
               str(tmp_path / "r"), "--set", "env.id=mylab/PointGoal-v0", "--set",
               "env.imports=[experiments.plugins.cheetah_goal_position]", "--set", "env.kwargs={}", "--iterations", "1"],
              cwd=ROOT, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert res.returncode == 0, res.stderr[-2000:]


# ---- loading never runs code -------------------------------------------------------------------------------------
class _Evil:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "version": VERSION, "params": {"w0": _Evil(str(marker))}}, path)
    with pytest.raises(CheckpointError, match="nothing in it was run"):
        load_checkpoint(path)
    assert not marker.exists()
    res = run([sys.executable, "-m", "metarl.cli", "evaluate", str(path), "--output", str(tmp_path / "e")], cwd=tmp_path)
    assert res.returncode == 2 and "not loaded" in res.stderr and "Traceback" not in res.stderr
    assert not marker.exists() and not (tmp_path / "e").exists()
    # and a plain pickle file named .pt
    with open(tmp_path / "plain.pt", "wb") as fh:
        pickle.dump(_Evil(str(marker)), fh)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "plain.pt")
    assert not marker.exists()


# ---- nothing written outside the run directory -------------------------------------------------------------------------
def test_no_mujoco_log_file_appears_in_the_working_directory(tmp_path):
    code = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {ROOT!r})
        import gymnasium, numpy as np, metarl.envs
        import experiments.plugins.cheetah_goal_position
        for env_id in list(metarl.envs.TASK_ENVS) + ['mylab/HalfCheetahGoalPos-v0']:
            for kw in ([{{}}, {{'dynamics': 'gymnasium'}}] if 'Nav' not in env_id and 'mylab' not in env_id else [{{}}]):
                vec = gymnasium.make_vec(env_id, num_envs=2, **kw)
                vec.reset(seed=0)
                vec.step(np.zeros((2, vec.single_action_space.shape[0])))
    """)
    res = run([sys.executable, "-c", code], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert os.listdir(tmp_path) == []


def test_half_cheetah_masses_and_inertias_equal_gymnasiums_compiled_model(tmp_path, monkeypatch):
    import mujoco

    from metarl.envs import models

    monkeypatch.chdir(tmp_path)  # compiling gymnasium's XML as-is makes MuJoCo log its deprecation here
    reference = mujoco.MjModel.from_xml_path(models.gymnasium_asset("half_cheetah.xml"))
    ours = models.half_cheetah("gymnasium").model
    for name in ("body_mass", "body_inertia", "body_ipos", "body_iquat", "body_subtreemass", "dof_invweight0",
                 "body_invweight0"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(reference, name), err_msg=name)
    assert abs(ours.body_mass.sum() - 14.0) < 1e-12


# ---- the general plug-in path keeps per-slot episode rules --------------------------------------------------------------
def _line_sync(n, horizon):
    from metarl import envs

    sys.path.insert(0, ROOT)
    import experiments.plugins.cheetah_goal_position  # noqa: F401  (registers mylab/PointGoal-v0)

    return envs.TaskSyncVectorEnv([lambda: gymnasium.make("mylab/PointGoal-v0") for _ in range(n)], horizon=horizon)


def test_masked_reset_on_the_general_path_keeps_a_clock_per_slot():
    vec = _line_sync(3, 50)
    vec.set_tasks(np.array([[9.0], [9.0], [9.0]]))  # out of reach in 80 steps of 0.1: no slot terminates
    vec.reset(seed=0)
    for _ in range(30):
        vec.step(np.ones((3, 1)))
    obs, _ = vec.reset(options={"reset_mask": np.array([True, False, False])})
    assert vec.elapsed_steps.tolist() == [0, 30, 30] and abs(obs[0, 0]) <= 0.05 and obs[1, 0] > 2.0
    for _ in range(20):
        _, _, term, trunc, _ = vec.step(np.ones((3, 1)))
        assert not term.any()
    assert trunc.tolist() == [False, True, True]  # slots 1 and 2 reached the horizon (50 steps), slot 0 has 20
    with pytest.raises(RuntimeError, match=r"slot\(s\) 1, 2 reached the horizon"):
        vec.step(np.ones((3, 1)))
    vec.reset(options={"reset_mask": np.array([False, True, True])})
    for _ in range(30):
        _, _, _, trunc, _ = vec.step(np.ones((3, 1)))
    assert trunc.tolist() == [True, False, False]  # slot 0: 20 + 30 = 50 steps, not 80
    assert vec.elapsed_steps.tolist() == [50, 30, 30]


def test_sb3_adapter_on_the_general_path_gives_horizon_long_episodes():
    from metarl.sb3 import SB3TaskVecEnv

    vec = SB3TaskVecEnv(_line_sync(4, 12), seed=0)
    vec.reset()
    lengths = []
    for _ in range(60):
        vec.step_async(np.full((4, 1), -1.0))  # away from every goal in [0, 1]... most never terminate early
        _, _, dones, infos = vec.step_wait()
        lengths += [info["episode"]["l"] for info, done in zip(infos, dones) if done]
    assert lengths and all(1 <= n <= 12 for n in lengths)
    assert lengths.count(12) >= 4
