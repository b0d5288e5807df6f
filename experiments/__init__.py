"""Benchmarks, comparisons and scripts, run as ``python -m experiments.<name>``.

``metarl`` is imported first so that the scripts' OpenMP threads wait as ``metarl train``'s do: its import
sets ``GOMP_SPINCOUNT`` before torch is loaded (``metarl/threads.py``).
"""

import argparse
import os

import metarl  # noqa: F401

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def config_path(parser: argparse.ArgumentParser, name: str, flag: str = "--config") -> str:
    """``experiments/configs/NAME.yaml``, or a usage error (exit 2) that lists the config names there."""
    path = os.path.join(CONFIGS, f"{name}.yaml")
    if not os.path.isfile(path):
        names = sorted(n[:-5] for n in os.listdir(CONFIGS) if n.endswith(".yaml"))
        parser.error(f"{flag}: no experiments/configs/{name}.yaml; give one of {', '.join(names)}")
    return path


def positive(parser: argparse.ArgumentParser, **flags: int | None) -> None:
    """A usage error (exit 2) for the first of ``flags`` (``name=value``, checked as ``--name``) given a number
    below 1; ``None`` (not given) passes.  Checked before a script spends minutes on work it would then throw away."""
    for name, value in flags.items():
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')}: expected a positive integer, got {value}")
