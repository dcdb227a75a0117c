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

Every file operation goes through `galaxy_spark.io.fs.store`: a plain path is the local file
system, a URI (``hdfs://``, ``s3a://``, ``file://``…) the Spark session's Hadoop FileSystem. What
each store makes atomic, and so what this protocol guarantees there: docs/storage.md.
"""
from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from galaxy_spark.io.fs import StorageError, UriPath, glob, is_uri, location, store
from galaxy_spark.io.procs import pid_alive

JOURNAL_PREFIX = "_commit-"


def staging_dir(target, token: str) -> Path | UriPath:
    """Where a job stages `target` (a sibling named after the process and the commit token)."""
    target = location(target)
    return target.parent / f"{target.name}.staging-{os.getpid()}-{token}"


def _old(target, token: str):
    return target.parent / f"_old-{token}-{target.name}"


def _journal(target, token: str):
    return target.parent / f"{JOURNAL_PREFIX}{target.name}-{token}.json"


def _roll_forward(doc: dict) -> list[str]:
    """Bring every pair of a journaled commit to its new state; never delete the only copy."""
    notes = []
    token = doc["token"]
    for pair in doc["pairs"]:
        staging, target = location(pair["staging"]), location(pair["target"])
        fs = store(target)
        old = _old(target, token)
        if fs.exists(staging):
            if fs.exists(target):
                if fs.exists(old):
                    raise OSError(f"cannot finish commit {token}: {target} and {old} both exist")
                fs.rename(target, old)
            fs.rename(staging, target)
            notes.append(f"finished the interrupted commit of {target}")
        elif not fs.exists(target) and fs.exists(old):
            # the new copy is gone (removed by hand, or never staged): the old one is all there is
            fs.rename(old, target)
            notes.append(f"restored {target} from {old.name}: its staged replacement {staging} is gone")
    for pair in doc["pairs"]:
        target = location(pair["target"])
        store(target).delete(_old(target, token))
    for pair in doc["pairs"]:
        target = location(pair["target"])
        store(target).delete(_journal(target, token))
    return notes


def commit_together(pairs: list[tuple], token: str) -> None:
    """Swap every staged directory in as its target, as one unit (see the module docstring)."""
    doc = {"token": token, "pairs": [{"staging": str(location(s).absolute()), "target": str(location(t).absolute())}
                                     for s, t in pairs]}
    text = (json.dumps(doc, indent=1) + "\n").encode()
    for _, t in pairs:
        t = location(t)
        store(t).write_atomic(_journal(t, token), text)
    _roll_forward(doc)


@contextmanager
def staged_replace(target) -> Iterator[Path | UriPath]:
    """Write a whole output directory into a staging sibling, then swap it in as `target`.

        with staged_replace(out) as staging:
            (staging / "report.html").write_text(...)

    On a clean exit the staging directory is committed (journaled, `commit_together`); on any
    exception it is removed and `target` is untouched. `target` is a local path: the caller
    writes into the staging directory with Python."""
    if is_uri(target):
        raise StorageError(f"{target}: this output is written by Python on the driver and must be a local path")
    target = location(target)
    fs = store(target)
    fs.mkdirs(target.parent)
    recover(target)
    token = uuid.uuid4().hex[:12]
    staging = staging_dir(target, token)
    fs.mkdir_new(staging)
    try:
        yield staging
    except BaseException:
        fs.delete(staging)
        raise
    commit_together([(staging, target)], token)


def recover(target) -> list[str]:
    """Finish any interrupted commit that involves `target`, then remove dead jobs' staging
    directories and leftovers of the previous protocol (``<name>.old-*``). Returns notes."""
    target = location(target).absolute()
    fs = store(target)
    notes: list[str] = []
    for j in glob(fs, target.parent, f"{JOURNAL_PREFIX}{target.name}-*.json"):
        notes += _recover_journal(j)
    # the protocol before journals renamed the target to <name>.old-<token>
    legacy = glob(fs, target.parent, f"{target.name}.old-*")
    if not fs.exists(target) and legacy:
        newest = max(legacy, key=fs.mtime)
        fs.rename(newest, target)
        legacy.remove(newest)
        notes.append(f"restored {target} from {newest.name} (an earlier run stopped mid-commit)")
    if fs.exists(target):
        for o in legacy:
            fs.delete(o)
    return notes + remove_stale_staging(target)


def recover_children(parent) -> list[str]:
    """Finish every interrupted commit whose targets are children of `parent` (the journals
    ``<parent>/_commit-<name>-<token>.json``), then deal with ``_old-<token>-<name>`` children
    that no journal names, left by the per-partition protocol before journals: restored as
    ``<name>`` when that is missing, else deleted. Used on a directory whose children are
    committed one by one (the scores' ``Field=N``). Returns notes."""
    parent = location(parent).absolute()
    fs = store(parent)
    notes: list[str] = []
    if not fs.is_dir(parent):
        return notes
    for j in glob(fs, parent, f"{JOURNAL_PREFIX}*.json"):
        notes += _recover_journal(j)
    for old in glob(fs, parent, "_old-*-*"):
        if not fs.is_dir(old):
            continue
        target = parent / old.name.split("-", 2)[2]
        if not fs.exists(target):
            fs.rename(old, target)
            notes.append(f"restored {target.name} from {old.name} (an earlier run stopped mid-commit)")
        else:
            fs.delete(old)
    return notes


def _recover_journal(j) -> list[str]:
    try:
        return _roll_forward(json.loads(store(j).read_bytes(j)))
    except (OSError, ValueError, KeyError, TypeError) as e:
        # a StorageError (an OSError too): one line from the job, not a traceback
        raise StorageError(f"cannot finish the interrupted commit recorded in {j}: {e}; "
                           f"see docs/storage.md (what a crash mid-rename leaves)") from None


def remove_stale_staging(target) -> list[str]:
    """Delete `<target>.staging-<pid>-*` siblings whose process is gone (or is this one, which is
    starting afresh). Returns notes. A pid means something only on the host that staged: jobs
    writing one output from drivers on several hosts at once are not supported (docs/storage.md)."""
    target = location(target)
    fs = store(target)
    notes = []
    for st in glob(fs, target.parent, f"{target.name}.staging-*"):
        try:
            pid = int(st.name.rsplit(".staging-", 1)[1].split("-")[0])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid() or not pid_alive(pid):
            fs.delete(st)
            notes.append(f"removed stale staging directory {st.name}")
    return notes
