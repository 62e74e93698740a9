"""What keeps a run's work directory whole: an exclusive lock, atomic writes, and the
comparison that refuses to resume a run under settings that change its result.

* ``WorkdirLock``: ``<workdir>/.lock`` (JSON: pid, host, start time), taken with
  ``O_CREAT | O_EXCL`` before anything else is written. A second run on the same folder
  fails at once naming the holder; a lock left by a dead process on the same host is taken
  over with a warning.
* ``atomic_write``: write a temporary file beside the target, fsync, rename: a kill during
  a write leaves the old file or the new one, never an empty or partial one.
* ``result_settings`` / ``compare_settings``: the flattened config fields that change what
  a run computes, and the fields by which two runs differ.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
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
    """Another live run holds the work directory."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class WorkdirLock:
    """An exclusive lock on a work directory, held from ``acquire`` to ``release``."""

    def __init__(self, workdir: str):
        self.path = os.path.join(os.path.abspath(workdir), ".lock")
        self.held = False

    def _holder(self) -> dict[str, Any]:
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        """Take the lock or raise ``RunLockedError`` naming its holder."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                pid, host = holder.get("pid"), holder.get("host")
                if host == me["host"] and isinstance(pid, int) and not _alive(pid):
                    logging.warning(
                        "Taking over the lock %s left by process %d on %s, which is no longer "
                        "running (a killed run).",
                        self.path,
                        pid,
                        host,
                    )
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(self.path)
                    continue
                if not holder:  # being written right now; look again
                    time.sleep(0.1)
                    continue
                started = time.strftime(
                    "%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0))
                )
                raise RunLockedError(
                    f"{os.path.dirname(self.path)} is in use by another run: process {pid} on "
                    f"{host}, started {started}. Wait for it to finish, stop it, or use another "
                    f"--workdir. (If that process is gone and ran on another host, delete "
                    f"{self.path}.)"
                ) from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
                f.flush()
                os.fsync(f.fileno())
            self.held = True
            return
        raise RunLockedError(f"Could not take the lock {self.path}; try again.")

    def release(self) -> None:
        if self.held:
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
