"""The two kinds of error a user meets, so that every entry point reports them the same way.

:class:`UsageError`: the input is wrong (a config value, a flag, a path that is a file, a checkpoint that
does not fit); fixing the command fixes it.  The command line exits with status 2.

:class:`RunError`: the input was fine but the run could not go on (the disk is full, a directory is not
writable, another process holds the run).  The command line exits with status 1.

Both carry one message that names what is wrong, the value and what to do next.
"""

from __future__ import annotations

import errno


class UsageError(ValueError):
    """Bad input: a field, flag, file or value the user can correct."""


class EnvError(UsageError):
    """A task env that broke its contract (a plug-in's code to fix): names the env, what it returned and the fix.
    ``non_finite``: what it returned was NaN or inf, which metarl's own envs give only for tasks far outside
    their distribution (so :meth:`metarl.api.Run.adapt` can name the tasks instead)."""

    def __init__(self, env_name: str, problem: str, fix: str, non_finite: bool = False) -> None:
        super().__init__(f"env {env_name!r}: {problem}; {fix}")
        self.env_name, self.problem, self.fix, self.non_finite = env_name, problem, fix, non_finite

    def __reduce__(self) -> tuple:  # pickled whole (a Ray worker's error reaches the trainer this way)
        return type(self), (self.env_name, self.problem, self.fix, self.non_finite)


class RunError(RuntimeError):
    """The run cannot go on for a reason outside the input (disk, permissions, another process)."""


def os_error_message(exc: OSError, what: str, resume_hint: str | None = None, verb: str = "write") -> str:
    """One line for an operating-system error while writing ``what``, with the next step."""
    reason = exc.strerror or str(exc)
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free some disk space"
    elif exc.errno == errno.EFBIG:
        fix = "a file reached a size limit (ulimit -f, or the filesystem's largest file): raise it or use another filesystem"
    elif exc.errno == errno.EROFS:
        fix = "the filesystem is read-only: choose a folder on a writable one"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        fix = "fix the permissions, or choose a folder you can write to"
    elif exc.errno == errno.EISDIR:
        fix = "a folder stands where a file belongs: move it away or choose another path"
    elif exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
        fix = "choose a path whose parent folder exists and can hold files"
    else:
        fix = "fix the cause above, or choose another folder"
    if resume_hint:
        fix += f", then {resume_hint}"
    return f"could not {verb} {what}: {reason}{where}; {fix}"
