"""What keeps a run's work directory whole: an exclusive lock, atomic writes, and the
comparison that refuses to resume a run under settings that change its result.

* ``WorkdirLock``: ``<workdir>/.lock`` (JSON: pid, host, start time), written whole to a
  temporary file and linked into place before anything else is written. A second run on
  the same folder fails at once naming the holder and how to check it; a lock no live run
  holds (its process is gone, or the file is empty or garbage) is taken over with a
  warning, so a folder is never stranded.
* ``atomic_write``: write a temporary file beside the target, fsync, rename: a kill during
  a write leaves the old file or the new one, never an empty or partial one.
* ``result_settings`` / ``compare_settings``: the flattened config fields that change what
  a run computes, and the fields by which two runs differ.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

from absl import logging

__all__ = [
    "RunLockedError",
    "WorkdirLock",
    "atomic_write",
    "EXTEND_ONLY",
    "flatten",
    "result_settings",
    "compare_settings",
]


class RunLockedError(RuntimeError):
    """Another live run holds the work directory; the message says how to check it and
    when the lock file may be deleted."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OverflowError:  # not a possible process id
        return False
    return True


def _process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux ``/proc``); None
    where that cannot be read. With the pid it names one process for good: a pid reused
    by a later process has a later start."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        # Field 2, the command name, may hold spaces and ')': count from the last ')'.
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _command_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:120]
    except OSError:
        return ""


def _when(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return "at an unknown time"
    return time.strftime("at %Y-%m-%d %H:%M:%S", time.localtime(seconds))


class WorkdirLock:
    """An exclusive lock on a work directory, held from ``acquire`` to ``release``.

    The lock file ``<workdir>/.lock`` appears whole or not at all: its record (pid, host,
    start time, the process's own start tick, the command) is written to a temporary file
    that is then hard-linked into place, which fails if a lock exists. A lock whose
    holder is gone is taken over with a warning naming what was found: a dead process on
    this host, a pid now reused by another process, or a file that is empty or holds no
    record (no live run ever leaves one). A live holder, here or on another host, is a
    ``RunLockedError`` naming it, the command that checks it, and when the file is safe
    to delete.
    """

    def __init__(self, workdir: str):
        self.path = os.path.join(os.path.abspath(workdir), ".lock")
        self.held = False
        self._record: dict[str, Any] = {}

    def _read(self) -> bytes | None:
        """The lock file's bytes; None when there is none."""
        try:
            with open(self.path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise RunLockedError(
                f"{self.path} is a folder, not a lock file; remove or rename it and rerun."
            ) from None
        except OSError as err:  # unreadable: no run's record can be checked
            return f"<unreadable: {err.strerror or err}>".encode()

    def _stale_because(self, content: bytes) -> str:
        """Why the lock holding ``content`` is stale; raises ``RunLockedError`` when its
        holder may be alive."""
        shown = content[:80].decode(errors="replace")
        if not content.strip():
            return "the lock file is empty (a run stopped while creating it, e.g. on a full disk)"
        try:
            holder = json.loads(content)
        except ValueError:
            holder = None
        if not (
            isinstance(holder, dict)
            and isinstance(holder.get("pid"), int)
            and isinstance(holder.get("host"), str)
        ):
            return f"the lock file holds no run's record (found {shown!r})"
        pid, host = holder["pid"], holder["host"]
        when, folder = _when(holder.get("started")), os.path.dirname(self.path)
        if host == socket.gethostname():
            if not _alive(pid):
                return f"process {pid} on {host}, which took it {when}, is no longer running"
            recorded, now = holder.get("pid_start"), _process_start(pid)
            if isinstance(recorded, int) and now is not None and now != recorded:
                return (
                    f"process {pid}, which took it {when}, is gone; the pid now belongs to "
                    f"another process ({_command_of(pid) or 'unknown command'})"
                )
            running = _command_of(pid)
            raise RunLockedError(
                f"{folder} is in use by another run: process {pid} on this host ({host}), "
                f"which took it {when}"
                + (f", now running `{running}`" if running else "")
                + f". Check it with `ps -p {pid} -o pid,lstart,args`. If it is a run on this "
                f"folder, wait for it, stop it (`kill {pid}` makes a run checkpoint and exit), or use "
                f"another --workdir. If it is not, the lock is stale: delete {self.path} and "
                "rerun."
            )
        raise RunLockedError(
            f"{folder} is in use by another run: process {pid} on host {host}, which took it "
            f"{when}. Check it there with `ps -p {pid} -o pid,lstart,args`. While it runs, "
            "wait for it, stop it, or use another --workdir. Once it is gone (or that host is "
            f"down), the lock is stale: delete {self.path} and rerun."
        )

    def _link(self, tmp: str) -> bool:
        """Put ``tmp`` in place as the lock unless one exists; whether it was put."""
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
        # No hard links on this file system: an exclusive create, written at once.
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(self._record, f)
        return True

    def acquire(self) -> None:
        """Take the lock or raise ``RunLockedError`` naming its holder. Creates the work
        directory; ``OSError`` (full disk, read-only folder, a file in the way) leaves no
        lock file behind."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
            "pid_start": _process_start(os.getpid()),
            "command": " ".join(sys.argv)[:300],
        }
        tmp = f"{self.path}.tmp-{os.getpid()}"
        try:
            with open(tmp, "w") as f:
                json.dump(self._record, f)
                f.flush()
                os.fsync(f.fileno())
            for _ in range(3):
                if self._link(tmp):
                    self.held = True
                    return
                content = self._read()
                if content is None:  # released meanwhile
                    continue
                why = self._stale_because(content)
                logging.warning("Taking over the stale lock %s: %s.", self.path, why)
                if self._read() == content:  # not replaced by a run starting meanwhile
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        raise RunLockedError(
            f"Could not take the lock {self.path}: it changed three times while being taken "
            "(several runs starting on this folder at once?). Start one run per --workdir; "
            f"if none is running, delete {self.path} and rerun."
        )

    def release(self) -> None:
        """Remove the lock file if it still holds this lock's record."""
        if self.held:
            content = self._read()
            try:
                ours = content is not None and json.loads(content) == self._record
            except ValueError:
                ours = False
            if ours:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.path)
            self.held = False

    def __enter__(self) -> WorkdirLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w") -> Iterator[Any]:
    """Open a temporary file for writing; on success fsync it and rename it to ``path``."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


# Fields that only extend a run or choose how it runs, without changing what it computes:
# they may differ when a run resumes (the change is logged). Data fields saying where data
# lives are added by the caller (``tclif_jax.data.PLACEMENT_FIELDS``).
EXTEND_ONLY = (
    "run_name",
    "paper_accuracy",
    "train.num_epochs",
    "train.max_steps",
    "train.progress",
    "train.checkpoint_every_steps",
    "train.keep_checkpoints",
    "train.eval_batch_size",
    "train.skip_nonfinite",
    "mesh.",
    "distributed.",
)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": value}`` for a nested dict (ConfigDicts via ``to_dict()``); tuples as lists."""
    if hasattr(tree, "to_dict"):
        tree = tree.to_dict()
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if hasattr(value, "to_dict") or isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def _matches(name: str, fields) -> bool:
    return any(name == f or (f.endswith(".") and name.startswith(f)) for f in fields)


def result_settings(config, extend_only=()) -> dict[str, Any]:
    """The flattened config fields that change a run's result (JSON-safe values): all but
    ``EXTEND_ONLY`` and the dotted names in ``extend_only``."""
    skip = EXTEND_ONLY + tuple(extend_only)
    flat = flatten(config)
    return {
        k: json.loads(json.dumps(v, default=str))
        for k, v in sorted(flat.items())
        if not _matches(k, skip)
    }


def compare_settings(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``["field: saved -> now", ...]`` for every result-changing field that differs."""
    keys = sorted(set(saved) | set(now))
    missing = "(absent)"
    return [
        f"{k}: {saved.get(k, missing)!r} -> {now.get(k, missing)!r}"
        for k in keys
        if saved.get(k, missing) != now.get(k, missing)
    ]
