"""Commit several staged directories as one unit: stage → verify → journal → rename → clean.

Plain Parquet has no transactions, so a job writes each output into a staging sibling
(``<name>.staging-<pid>-<token>``, same parent, so the renames stay on one file system), checks
it, and then calls `commit_together`:

1. a journal naming every (staging, target) pair is written atomically next to each target
   (``_commit-<name>-<token>.json``): from this instant the new outputs are the committed ones;
2. each target is renamed away to ``_old-<token>-<name>`` and its staging directory renamed in;
3. the old copies, then the journals, are deleted.

`recover(target)` (run by every job before it touches `target`) finishes a commit that a crash
interrupted after step 1 (roll forward: every pair ends new, never a new catalogue with an old
quarantine), and deletes staging directories of dead processes (a crash before step 1: every
pair stays old). `recover_children(parent)` does the roll-forward for a directory whose children
are committed one at a time (the scores' ``Field=N``: their journals lie inside `parent`). Names
start with ``_`` (ignored by Spark and pyarrow) or carry ``.staging-``.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from galaxy_spark.io.procs import pid_alive

JOURNAL_PREFIX = "_commit-"


def staging_dir(target: Path, token: str) -> Path:
    """Where a job stages `target` (a sibling named after the process and the commit token)."""
    target = Path(target)
    return target.parent / f"{target.name}.staging-{os.getpid()}-{token}"


def _old(target: Path, token: str) -> Path:
    return target.parent / f"_old-{token}-{target.name}"


def _journal(target: Path, token: str) -> Path:
    return target.parent / f"{JOURNAL_PREFIX}{target.name}-{token}.json"


def fsync_dir(d: Path) -> None:
    """Make a rename or file creation in `d` durable (best effort: not every file system can)."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _roll_forward(doc: dict) -> list[str]:
    """Bring every pair of a journaled commit to its new state; never delete the only copy."""
    notes = []
    token = doc["token"]
    for pair in doc["pairs"]:
        staging, target = Path(pair["staging"]), Path(pair["target"])
        old = _old(target, token)
        if staging.exists():
            if target.exists():
                if old.exists():
                    raise OSError(f"cannot finish commit {token}: {target} and {old} both exist")
                os.rename(target, old)
            os.rename(staging, target)
            notes.append(f"finished the interrupted commit of {target}")
        elif not target.exists() and old.exists():
            # the new copy is gone (removed by hand, or never staged): the old one is all there is
            os.rename(old, target)
            notes.append(f"restored {target} from {old.name}: its staged replacement {staging} is gone")
    for pair in doc["pairs"]:
        shutil.rmtree(_old(Path(pair["target"]), token), ignore_errors=True)
    for pair in doc["pairs"]:
        _journal(Path(pair["target"]), token).unlink(missing_ok=True)
    return notes


def commit_together(pairs: list[tuple[Path, Path]], token: str) -> None:
    """Swap every staged directory in as its target, as one unit (see the module docstring)."""
    doc = {"token": token, "pairs": [{"staging": str(Path(s).absolute()), "target": str(Path(t).absolute())}
                                     for s, t in pairs]}
    text = json.dumps(doc, indent=1) + "\n"
    for _, t in pairs:
        _write_atomic(_journal(Path(t), token), text)
    _roll_forward(doc)


@contextmanager
def staged_replace(target: Path) -> Iterator[Path]:
    """Write a whole output directory into a staging sibling, then swap it in as `target`.

        with staged_replace(out) as staging:
            (staging / "report.html").write_text(...)

    On a clean exit the staging directory is committed (journaled, `commit_together`); on any
    exception it is removed and `target` is untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    token = uuid.uuid4().hex[:12]
    staging = staging_dir(target, token)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    commit_together([(staging, target)], token)


def recover(target: Path) -> list[str]:
    """Finish any interrupted commit that involves `target`, then remove dead jobs' staging
    directories and leftovers of the previous protocol (``<name>.old-*``). Returns notes."""
    target = Path(target).absolute()
    notes: list[str] = []
    for j in sorted(target.parent.glob(f"{JOURNAL_PREFIX}{target.name}-*.json")):
        notes += _recover_journal(j)
    # the protocol before journals renamed the target to <name>.old-<token>
    legacy = sorted(target.parent.glob(f"{target.name}.old-*"))
    if not target.exists() and legacy:
        newest = max(legacy, key=lambda p: p.stat().st_mtime)
        os.rename(newest, target)
        legacy.remove(newest)
        notes.append(f"restored {target} from {newest.name} (an earlier run stopped mid-commit)")
    if target.exists():
        for o in legacy:
            shutil.rmtree(o, ignore_errors=True)
    return notes + remove_stale_staging(target)


def recover_children(parent: Path) -> list[str]:
    """Finish every interrupted commit whose targets are children of `parent` (the journals
    ``<parent>/_commit-<name>-<token>.json``), then deal with ``_old-<token>-<name>`` children
    that no journal names, left by the per-partition protocol before journals: restored as
    ``<name>`` when that is missing, else deleted. Used on a directory whose children are
    committed one by one (the scores' ``Field=N``). Returns notes."""
    parent = Path(parent).absolute()
    notes: list[str] = []
    if not parent.is_dir():
        return notes
    for j in sorted(parent.glob(f"{JOURNAL_PREFIX}*.json")):
        notes += _recover_journal(j)
    for old in sorted(parent.glob("_old-*-*")):
        if not old.is_dir():
            continue
        target = parent / old.name.split("-", 2)[2]
        if not target.exists():
            os.rename(old, target)
            notes.append(f"restored {target.name} from {old.name} (an earlier run stopped mid-commit)")
        else:
            shutil.rmtree(old, ignore_errors=True)
    return notes


def _recover_journal(j: Path) -> list[str]:
    try:
        return _roll_forward(json.loads(j.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise OSError(f"cannot finish the interrupted commit recorded in {j}: {e}") from None


def remove_stale_staging(target: Path) -> list[str]:
    """Delete `<target>.staging-<pid>-*` siblings whose process is gone (or is this one, which is
    starting afresh). Returns notes."""
    target = Path(target)
    notes = []
    for st in sorted(target.parent.glob(f"{target.name}.staging-*")):
        try:
            pid = int(st.name.rsplit(".staging-", 1)[1].split("-")[0])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid() or not pid_alive(pid):
            shutil.rmtree(st, ignore_errors=True)
            notes.append(f"removed stale staging directory {st.name}")
    return notes
