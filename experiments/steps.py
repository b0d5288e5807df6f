"""What the scripts that chain ``metarl`` commands share (``reproduce.py``, ``compare_subsample.py``).

Each such script runs ``metarl train``, ``baseline`` and ``evaluate`` one after another and skips a step
whose result exists, so that an interrupted chain picks up where it stopped.  "Exists" has to mean
"finished, and made from what is there now": a baseline stopped half-way, an evaluation killed while it wrote
its files, or one of a checkpoint that training has since replaced, is done again, not reused.

:func:`run_metarl` runs one command in a session of its own and passes on SIGINT and SIGTERM (SIGHUP as SIGTERM,
which the commands handle), so a signal to the script stops the command the way the command stops (saving), the
script waits for it and then stops too, even where the command had finished its work as the signal came.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_metarl(*args: str, capture: bool = False) -> str:
    """``python -m metarl.cli ARGS``; its stdout if ``capture``.  A failure ends the script with the command's exit
    status, its message (on stderr) being the command's own.

    The command runs in its own session: a Ctrl-C at the terminal, or a SIGTERM or SIGHUP sent to the script,
    reaches it once, from here, and the script waits while it saves and stops (``subprocess.run`` would kill it
    a quarter of a second after a Ctrl-C)."""
    print("+ metarl " + " ".join(args), flush=True)
    proc = subprocess.Popen([sys.executable, "-m", "metarl.cli", *args], text=True, start_new_session=True,
                            stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None)
    received: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        # metarl's commands save on SIGINT and SIGTERM; a hang-up is passed on as SIGTERM
        proc.send_signal(signal.SIGTERM if signum == signal.SIGHUP else signum)

    # a signal the script was started with ignored (SIGHUP under nohup, SIGINT in a shell's background job) stays so
    previous = {s: signal.signal(s, forward) for s in STOPPING if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        out, err = proc.communicate()
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)  # None: a handler not set from Python
    if received and proc.returncode == 0:  # the command finished as the signal came: the chain stops all the same
        print(f"stopped by {signal.Signals(received[0]).name} after `metarl {args[0]}` finished; run the same command "
              "again to continue", file=sys.stderr)
        sys.exit(128 + received[0])
    if proc.returncode != 0:
        if capture and err:
            sys.stderr.write(err)
        code = proc.returncode
        sys.exit(code if code > 0 else 128 - code)  # killed by signal N: 128 + N, as a shell reports it
    return out if capture else ""


def saved_env_id(folder: str) -> str | None:
    """The env id in a run's or baseline's ``config.yaml``, or None where there is none to read."""
    from metarl.config import ConfigError, load_config

    path = os.path.join(folder, "config.yaml")
    if not os.path.isfile(path):
        return None
    try:
        return load_config(path).env.id
    except ConfigError:
        return None


def check_same_task(folder: str, env_id: str, flag: str = "--output") -> None:
    """Exit with a usage error if ``folder`` holds a run or baseline of another env than ``env_id``."""
    saved = saved_env_id(folder)
    if saved is not None and saved != env_id:
        print(f"{os.path.basename(sys.argv[0])}: error: {flag}: {folder!r} holds a run of {saved}, not of {env_id}; "
              f"give another {flag} for this task (or move that folder away)", file=sys.stderr)
        sys.exit(2)


def baseline_steps_done(folder: str) -> int | None:
    """Env steps a baseline in ``folder`` has trained (its ``checkpoints/best.pt``), or None if it has none."""
    from metarl.checkpoint import CheckpointError, load_checkpoint

    path = os.path.join(folder, "checkpoints", "best.pt")
    if not os.path.isfile(path):
        return None
    try:
        steps = load_checkpoint(path).get("sb3_timesteps")
    except CheckpointError as exc:
        sys.exit(f"{path!r}: {exc}")
    if not isinstance(steps, int):
        sys.exit(f"{path!r} is not a metarl baseline's checkpoint (no env step count); move {folder!r} away")
    return steps


def stale_evaluation(eval_dir: str, checkpoint: str | None, **settings: Any) -> str | None:
    """Why the evaluation in ``eval_dir`` must be made (again), or None if it is finished and current.

    Current means: its ``results.json`` is complete and readable, newer than ``checkpoint`` (the file it
    evaluated, when training or a baseline may have replaced it since), and its saved settings equal
    ``settings`` (for example ``seed=0, batch_steps=None``)."""
    from metarl.errors import UsageError
    from metarl.evaluation import load_results

    results = os.path.join(eval_dir, "results.json")
    if not os.path.isfile(results):
        return "not evaluated yet"
    try:
        saved = load_results(eval_dir)["settings"]
    except UsageError:
        return "its evaluation is unfinished or unreadable"
    if checkpoint is not None and os.path.isfile(checkpoint) and os.path.getmtime(checkpoint) > os.path.getmtime(results):
        return f"{os.path.basename(checkpoint)} is newer than its evaluation"
    for name, want in settings.items():
        if saved.get(name) != want:
            return f"its evaluation has {name} {json.dumps(saved.get(name))}, this comparison {json.dumps(want)}"
    return None


def evaluate_unless_current(eval_dir: str, checkpoint: str | None, command: list[str], **settings: Any) -> None:
    """Run ``metarl evaluate COMMAND`` (whose output is ``eval_dir``) unless :func:`stale_evaluation` finds the
    evaluation there finished and current; an earlier one is replaced (``--overwrite``), saying why."""
    why = stale_evaluation(eval_dir, checkpoint, **settings)
    if why is None:
        return
    print(f"{eval_dir}: {why}", flush=True)
    earlier = os.path.exists(os.path.join(eval_dir, "results.json"))
    run_metarl("evaluate", *command, *(["--overwrite"] if earlier else []))
