"""A run lock and an append-only ledger: what keeps two scheduled runs of a job apart and what
records, durably, what each run did. Generic: the caller names the files and the job.

`RunLock(path, run_id)`: the lock file is created with ``O_CREAT|O_EXCL`` and holds pid, host,
process start time, run id and start time. A lock whose process is gone (same host: pid dead, or
the pid now belongs to another process) or, for a lock taken on another host, older than
`max_age_s`, is stale and is broken under an `flock` on ``<path>.guard`` (so two runs can never
both break it). A live lock → `LockHeldError` (exit 75, EX_TEMPFAIL), or poll for `wait_s`
seconds first. `RunLock.hold()` also turns SIGTERM (what schedulers send on a timeout) into
KeyboardInterrupt while the lock is held, so the lock is released on SIGTERM as on SIGINT; only
a SIGKILL leaves it behind (and the next run finds it stale).

`Ledger(path)`: JSON lines, one record per append, each one ``write`` on an ``O_APPEND``
descriptor followed by ``fsync``; reading validates every line (`LedgerError`, exit 2, on the
first bad one) so that a job never mistakes an unreadable history for an empty one.

Both work on a URI too, through `galaxy_spark.io.fs`: there the lock is ``create(overwrite=false)``
(atomic on HDFS, not on S3), the guard an exclusively created ``<path>.guard`` file, and an
append rewrites the ledger atomically (S3 cannot append); docs/storage.md says what holds where.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import signal
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from galaxy_spark.errors import GalaxySparkError, InputError
from galaxy_spark.io.fs import location, store
from galaxy_spark.io.procs import pid_alive
from galaxy_spark.log import get_logger

log = get_logger(__name__)

EXIT_LOCKED = 75                 # EX_TEMPFAIL (sysexits.h): try again later
UNREADABLE_LOCK_GRACE_S = 30.0   # an empty/unparseable lock younger than this may be being written


class LockHeldError(GalaxySparkError):
    """Another live run holds the lock."""

    exit_code = EXIT_LOCKED


class LedgerError(InputError):
    """A ledger line is not a JSON record with the required keys."""


# =============================================================================================
# ledger
# =============================================================================================
class Ledger:
    """Append-only JSON lines at `path`; each append is one write + fsync.

    `on_corrupt`: a sentence added to the `LedgerError` message saying what the job did (not)
    do because of it."""

    REQUIRED = ("run_id", "field", "action")

    def __init__(self, path: str | Path, on_corrupt: str = ""):
        self.path = location(path)
        self.fs = store(self.path)
        self.on_corrupt = on_corrupt

    def read(self) -> list[dict]:
        """Every record, in file order; any line that is not a JSON object with every key of
        `REQUIRED` → `LedgerError` naming the line (a missing file is an empty ledger)."""
        if not self.fs.exists(self.path):
            return []
        try:
            raw = self.fs.read_bytes(self.path)
        except OSError as e:
            raise LedgerError(f"ledger {self.path} cannot be read: {e}") from None
        out = []
        for n, line in enumerate(raw.split(b"\n"), 1):
            if not line.strip():
                continue
            problem = None
            try:
                rec = json.loads(line.decode("utf-8"))
                if not isinstance(rec, dict):
                    problem = "not a JSON object"
                else:
                    miss = [k for k in self.REQUIRED if k not in rec]
                    if miss:
                        problem = f"missing {', '.join(miss)}"
            except (UnicodeDecodeError, ValueError) as e:
                problem = f"not valid JSON ({e})"
            if problem:
                snippet = line[:80].decode("utf-8", "replace")
                raise LedgerError(
                    f"ledger {self.path} is corrupt: line {n} is {problem}: {snippet!r}. "
                    f"{self.on_corrupt + ' ' if self.on_corrupt else ''}Inspect that line and fix or "
                    f"delete it, or move the ledger aside to start a new one, then rerun.")
            out.append(rec)
        return out

    def append(self, rec: dict) -> None:
        """Append one record as a whole line, durably (`io.fs`: a local file gets one O_APPEND
        write + fsync; a Hadoop one is rewritten atomically)."""
        self.fs.append(self.path, (json.dumps(rec, sort_keys=True, default=str) + "\n").encode("utf-8"))


# =============================================================================================
# lock
# =============================================================================================
def _proc_start(pid: int) -> str | None:
    """Start time of `pid` in clock ticks since boot (Linux /proc), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class RunLock:
    """Exclusive lock file at `path` for the run `run_id` of `job` (see the module docstring).

    `max_age_s`: a lock taken on another host older than this (seconds) is stale; None or 0:
    never. Messages go through `echo`, prefixed with ``<job>:``."""

    def __init__(self, path: str | Path, run_id: str, max_age_s: float | None = None, echo=log.info,
                 job: str = "job"):
        self.path = location(path)
        self.fs = store(self.path)
        self.dir = self.path.parent
        self.guard = self.path.with_name(self.path.name + ".guard")
        self.run_id = run_id
        self.max_age_s = max_age_s if max_age_s and max_age_s > 0 else None
        self.echo = echo
        self.job = job
        self.held = False

    def _content(self) -> bytes:
        now = _dt.datetime.now(_dt.timezone.utc)
        pid = os.getpid()
        return (json.dumps({"pid": pid, "host": socket.gethostname(), "proc_start": _proc_start(pid),
                            "run_id": self.run_id, "started_at": now.isoformat(timespec="milliseconds"),
                            "started_unix": now.timestamp()}, sort_keys=True) + "\n").encode()

    def _try_create(self) -> bool:
        if not self.fs.create_exclusive(self.path, self._content()):
            return False
        self.held = True
        return True

    def read(self) -> tuple[dict | None, float | None]:
        """(the lock's JSON or None when unreadable, its age in seconds) — (None, None) when absent."""
        try:
            mtime = self.fs.mtime(self.path)
            data = self.fs.read_bytes(self.path)
        except FileNotFoundError:
            return None, None
        age = time.time() - mtime
        try:
            info = json.loads(data.decode())
            if not isinstance(info, dict):
                info = None
        except (UnicodeDecodeError, ValueError):
            info = None
        if info and isinstance(info.get("started_unix"), (int, float)):
            age = time.time() - info["started_unix"]
        return info, age

    def stale_reason(self, info: dict | None, age: float) -> str | None:
        """Why this lock is stale, or None when it must be respected."""
        if info is None:
            if age > UNREADABLE_LOCK_GRACE_S:
                return f"the lock file is unreadable and {age:.0f} s old"
            return None
        pid, host = info.get("pid"), info.get("host")
        if host == socket.gethostname() and isinstance(pid, int):
            if not pid_alive(pid):
                return f"its process (pid {pid} on {host}) is not running"
            if info.get("proc_start") and _proc_start(pid) not in (None, info["proc_start"]):
                return f"pid {pid} on {host} now belongs to another process"
            return None          # a live process on this host: never broken, whatever its age
        if self.max_age_s is not None and age > self.max_age_s:
            return (f"it was taken on another host ({host}) {age:.0f} s ago, more than the "
                    f"{self.max_age_s:.0f} s maximum age")
        return None

    def _break_stale(self) -> bool:
        """Under the guard (`io.fs`: an flock locally): re-read, re-check, remove a stale lock and
        take it. True if taken."""
        with self.fs.guard(self.guard) as guarded:
            if not guarded:                      # another run is breaking it right now
                return False
            info, age = self.read()
            if age is None:                      # released meanwhile
                return self._try_create()
            reason = self.stale_reason(info, age)
            if reason is None:
                return False
            self.fs.delete(self.path)
            who = f"run {info.get('run_id')} (pid {info.get('pid')} on {info.get('host')}, " \
                  f"started {info.get('started_at')})" if info else "an unknown run"
            self.echo(f"{self.job}: recovered a stale lock {self.path.name} from {who}: {reason}")
            return self._try_create()

    def describe(self) -> str:
        """One line on the lock's holder and age, for messages."""
        info, age = self.read()
        if age is None:
            return "no lock"
        if not info:
            return f"{self.path} (unreadable, {age:.0f} s old)"
        return (f"{self.path} held by run {info.get('run_id')} (pid {info.get('pid')} on {info.get('host')}, "
                f"started {info.get('started_at')}, {age:.0f} s ago)")

    def acquire(self, wait_s: float = 0.0, poll_s: float = 1.0) -> None:
        """Take the lock, breaking a stale one; a live holder → wait up to `wait_s` seconds
        (polling every `poll_s`), then `LockHeldError`."""
        self.fs.mkdirs(self.dir)
        deadline = time.monotonic() + max(0.0, wait_s)
        announced = False
        while True:
            if self._try_create() or self._break_stale():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockHeldError(f"another {self.job} run holds the lock: {self.describe()}"
                                    f"{f' (waited {wait_s:g} s)' if wait_s else ''}; try again later "
                                    f"(exit {EXIT_LOCKED})")
            if not announced:
                self.echo(f"{self.job}: waiting up to {wait_s:g} s for the lock: {self.describe()}")
                announced = True
            time.sleep(min(poll_s, remaining))

    def release(self) -> None:
        """Remove the lock file if this run still owns it (a broken-and-retaken lock is left)."""
        if not self.held:
            return
        info, _ = self.read()
        if info and info.get("run_id") == self.run_id:
            self.fs.delete(self.path)
        self.held = False

    @contextmanager
    def hold(self, wait_s: float = 0.0) -> Iterator["RunLock"]:
        """``with lock.hold(wait_s):`` acquire, run the body, release — on return, on an
        exception, on SIGINT and on SIGTERM (turned into KeyboardInterrupt meanwhile)."""
        with sigterm_as_interrupt():
            self.acquire(wait_s)
            try:
                yield self
            finally:
                self.release()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM → KeyboardInterrupt inside the block (main thread only: elsewhere Python cannot
    install a handler, and the block runs unchanged), so `finally` clauses run on a scheduler's
    timeout. The previous handler is restored on exit."""
    prev = None
    if threading.current_thread() is threading.main_thread():
        def handler(signum, frame):
            raise KeyboardInterrupt("SIGTERM")
        prev = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if prev is not None:
            signal.signal(signal.SIGTERM, prev)
