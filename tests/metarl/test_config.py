import os

import pytest

from metarl.config import ConfigError, load_config

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "configs")


@pytest.mark.parametrize("name", sorted(os.listdir(CONFIGS)))
def test_every_shipped_config_loads(name):
    cfg = load_config(os.path.join(CONFIGS, name))
    assert cfg.iterations > 0


def test_paper_configs_carry_the_released_values():
    vel = load_config(os.path.join(CONFIGS, "halfcheetah_vel.yaml"))
    assert (vel.algo.episodes_per_task, vel.iterations, vel.algo.max_kl) == (10, 475, 0.01)
    hdir = load_config(os.path.join(CONFIGS, "halfcheetah_dir.yaml"))
    assert (hdir.algo.max_kl, hdir.iterations) == (0.02, 100)
    adir = load_config(os.path.join(CONFIGS, "ant_dir.yaml"))
    assert (adir.algo.episodes_per_task, adir.iterations) == (40, 575)
    nav = load_config(os.path.join(CONFIGS, "navigation2d.yaml"))
    assert (nav.algo.inner_step_size, nav.algo.num_tasks) == (0.5, 20)
    for cfg in (vel, hdir, adir, nav):
        assert cfg.policy.hidden_sizes == [100, 100] and cfg.algo.cg_iters == 10 and cfg.algo.cg_damping == 1e-5
        assert cfg.algo.discount == 0.99 and cfg.algo.gae_lambda == 1.0


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    with pytest.raises(ConfigError, match=r"'algo.max_kll' is unknown; did you mean 'algo.max_kl'"):
        load_config(write(tmp_path, "algo: {max_kll: 0.1}\n"))


def test_bad_values_name_field_and_value(tmp_path):
    with pytest.raises(ConfigError, match=r"'algo.num_tasks': expected a positive number, got 0"):
        load_config(write(tmp_path, "algo: {num_tasks: 0}\n"))
    with pytest.raises(ConfigError, match=r"'algo.discount': expected a value in \[0, 1\], got 1.5"):
        load_config(write(tmp_path, "algo: {discount: 1.5}\n"))
    with pytest.raises(ConfigError, match=r"'iterations': expected int, got str 'many'"):
        load_config(write(tmp_path, "iterations: many\n"))
    with pytest.raises(ConfigError, match=r"'device': expected 'cpu' or 'cuda"):
        load_config(write(tmp_path, "device: tpu\n"))


def test_overrides_from_the_command_line(tmp_path):
    cfg = load_config(write(tmp_path, "algo: {max_kl: 0.01}\n"), ["algo.max_kl=0.02", "env.kwargs={dynamics: gymnasium}"])
    assert cfg.algo.max_kl == 0.02 and cfg.env.kwargs == {"dynamics": "gymnasium"}
    with pytest.raises(ConfigError, match="expected FIELD=VALUE"):
        load_config(write(tmp_path, ""), ["algo.max_kl"])
    with pytest.raises(ConfigError, match="'algo.bogus' is unknown"):
        load_config(write(tmp_path, ""), ["algo.bogus=1"])


def test_a_section_given_as_a_mapping_keeps_its_other_fields(tmp_path):
    """``--set algo={max_kl: 0.02}`` or ``overrides={"algo": {...}}`` sets the fields named and keeps the section's
    others (they were reset to the defaults); a mapping for ``env.kwargs`` still replaces the kwargs whole."""
    path = write(tmp_path, "env: {id: metarl/Navigation2D-v0, kwargs: {horizon: 20}}\n"
                           "algo: {num_tasks: 4, episodes_per_task: 3, max_kl: 0.01}\npolicy: {hidden_sizes: [8, 8]}\n")
    for overrides in (["algo={max_kl: 0.02}"], {"algo": {"max_kl": 0.02}}):
        cfg = load_config(path, overrides)
        assert (cfg.algo.max_kl, cfg.algo.num_tasks, cfg.algo.episodes_per_task) == (0.02, 4, 3), overrides
        assert cfg.env.kwargs == {"horizon": 20} and cfg.policy.hidden_sizes == [8, 8]
    cfg = load_config(path, {"env": {"kwargs": {"dynamics": "gymnasium"}}})
    assert cfg.env.id == "metarl/Navigation2D-v0" and cfg.env.kwargs == {"dynamics": "gymnasium"}
    with pytest.raises(ConfigError, match="'algo.max_kll' is unknown; did you mean 'algo.max_kl'"):
        load_config(path, ["algo={max_kll: 0.02}"])


def test_missing_config_file():
    with pytest.raises(ConfigError, match="no such file"):
        load_config("nope.yaml")


@pytest.mark.parametrize("text", ["", "\n# only a comment\n", "{}\n"])
def test_an_empty_config_file_is_an_error_not_every_default(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="is empty; a config names at least its task"):
        load_config(path)


def test_make_vec_parameters_in_env_kwargs_are_refused():
    """A config (or a saved run) cannot make metarl start one process per slot through gymnasium's async vector env."""
    from metarl.environment import make_env

    cfg = load_config(os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "configs",
                                   "smoke_navigation2d.yaml"), ["env.kwargs={vectorization_mode: async}"])
    with pytest.raises(ConfigError, match=r"env.kwargs.*vectorization_mode.*make_vec's own parameters"):
        make_env(cfg.env, 4)


@pytest.mark.parametrize("module", ["mylab_tasks; touch pwned", "../up", "a..b", "1abc", "", "a.", "x²", "a b"])
def test_env_imports_must_be_module_names(tmp_path, module):
    path = tmp_path / "c.yaml"
    path.write_text(f"env: {{id: metarl/Navigation2D-v0, imports: [{module!r}]}}\n")
    with pytest.raises(ConfigError, match="env.imports.*dotted Python identifiers"):
        load_config(path)


def test_a_config_whose_aliases_expand_without_bound_is_refused(tmp_path):
    """Anchors nested in each other: 9 levels of 10 aliases are 10^9 values; refused at once, not expanded."""
    from metarl.config import MAX_VALUES, parse_yaml

    lines = ["env:", "  id: metarl/Navigation2D-v0", "  kwargs:", "    l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=f"bomb.yaml: holds or expands to more than {MAX_VALUES} values"):
        load_config(str(path))
    shared = "a: &a [1, 2, 3]\nb: [*a, *a]\n"  # aliases that expand to little are still read
    assert parse_yaml(shared, "x") == {"a": [1, 2, 3], "b": [[1, 2, 3], [1, 2, 3]]}


def test_settings_the_chosen_algorithm_does_not_read_are_named():
    """``algo.clip_eps`` under ``maml_trpo`` was ignored without a word (a sweep): each field set away from its
    default that the run's algorithm does not read is named, with the algorithms that read it."""
    cfg = load_config(os.path.join(CONFIGS, "navigation2d.yaml"), ["algo.clip_eps=0.2", "algo.hvp_fd_eps=1e-6"])
    assert cfg.validate().algo.unused_settings() == [
        "config field 'algo.hvp_fd_eps' is 1e-06, but algo.hvp is 'exact'; it applies to algo.hvp: finite_difference "
        "only, so the run ignores it",
        "config field 'algo.clip_eps' is 0.2, but algo.name 'maml_trpo' does not use it (it applies to promp and "
        "maml_ppo); the run ignores it"]
    promp = load_config(os.path.join(CONFIGS, "promp_navigation2d.yaml"), ["algo.max_kl=0.05", "algo.target_inner_kl=0.02"])
    assert [s.split(",")[0] for s in promp.algo.unused_settings()] == [
        "config field 'algo.max_kl' is 0.05", "config field 'algo.target_inner_kl' is 0.02"]
    ppo = load_config(os.path.join(CONFIGS, "maml_ppo_navigation2d.yaml"), ["algo.inner_kl_penalty=0.1"])
    assert ppo.algo.unused_settings() == ["config field 'algo.inner_kl_penalty' is 0.1, but algo.name 'maml_ppo' does "
                                          "not use it (it applies to promp); the run ignores it"]
    # what each algorithm reads is silent: the shipped configs, and the same fields under their own algorithm
    for name in sorted(os.listdir(CONFIGS)):
        assert load_config(os.path.join(CONFIGS, name)).algo.unused_settings() == [], name
    assert load_config(os.path.join(CONFIGS, "navigation2d.yaml"),
                       ["algo.hvp=finite_difference", "algo.hvp_fd_eps=1e-6", "algo.max_kl=0.05"]).algo.unused_settings() == []


def test_env_imports_take_every_python_module_name(tmp_path):
    """Python identifiers are not only ASCII: a module named ``é`` or ``mylab.tâches`` can be imported, so the
    config takes its name (a sweep found ``é`` refused)."""
    path = tmp_path / "c.yaml"
    path.write_text("env: {id: metarl/Navigation2D-v0, imports: [é, mylab.tâches, _x.y1]}\n")
    assert load_config(path).env.imports == ["é", "mylab.tâches", "_x.y1"]
