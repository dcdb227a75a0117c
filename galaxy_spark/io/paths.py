"""Guards on the paths a job reads and writes, checked before any work.

Every galaxy_spark output directory carries a ``_manifest.json`` whose ``kind`` says what it is
(``catalog``, ``quarantine``, ``scores``, ``report``). A job states its inputs and its outputs
with their kinds; `check_job_paths` refuses (``error: …``, exit 2):

- an output equal to, inside, or containing one of the job's inputs;
- two outputs that are equal or nested;
- an output inside any directory galaxy_spark manages (one with a manifest), e.g. scores
  written into a catalogue, which the next ingest would delete and Spark would misread;
- an output that exists and is a regular file, or a directory of another kind, or a non-empty
  directory with no manifest (galaxy_spark did not write it, so it will not replace it).
"""
from __future__ import annotations

import fnmatch
import glob as _glob
import os
from pathlib import Path

from galaxy_spark.errors import InputError
from galaxy_spark.io.fs import UriPath, is_uri, location, store
from galaxy_spark.io.manifest import MANIFEST, read_manifest

KINDS = ("catalog", "quarantine", "scores", "report")
KIND_WORDS = {"catalog": "catalogue", "quarantine": "quarantine", "scores": "scores directory",
              "report": "report directory", "file": "file",
              "rawdir": "directory"}


def manifest_kind(directory: str | os.PathLike) -> str | None:
    """The kind of a galaxy_spark output directory, or None when it has no readable manifest.

    Manifests written before the ``kind`` key existed are recognised by their keys. A manifest
    that exists but cannot be read is ``"unreadable"`` (not an error here: the guard then refuses
    to replace the directory, whose owner is unknown)."""
    d = location(directory)
    fs = store(d)
    try:
        m = read_manifest(d)
    except InputError:
        return "unreadable"
    if m is None:
        if fs.is_file(d / "report.html") and fs.is_file(d / "metrics.json"):
            return "report"
        return None
    if m.get("kind") in KINDS:
        return m["kind"]
    if "schema" in m and "inputs" in m:
        return "catalog"
    if "rows" in m and "fields" not in m:
        return "quarantine"
    if "quality_flags" in m or "last_job" in m or any(
            isinstance(v, dict) and "model" in v for v in (m.get("fields") or {}).values()):
        return "scores"
    return "unreadable"


def _abs(p: str | os.PathLike) -> Path | UriPath:
    if is_uri(p):
        u = UriPath(str(p))
        return UriPath("file://" + os.path.realpath(u.path)) if u.scheme == "file" else u
    return Path(os.path.realpath(os.path.expanduser(str(p))))


def _key(a: Path | UriPath) -> Path | UriPath:
    """What `a` is compared as: a ``file:`` URI is the local path it names."""
    return Path(a.path) if isinstance(a, UriPath) and a.scheme == "file" else a


def _same(a, b) -> bool:
    return _key(a) == _key(b)


def _inside(a, b) -> bool:
    """True when a is b or lies under b."""
    a, b = _key(a), _key(b)
    return a == b or b in a.parents


def managed_ancestor(path: str | os.PathLike) -> tuple[Path, str] | None:
    """The nearest existing ancestor of `path` (not `path` itself) that is a galaxy_spark output
    directory, with its kind."""
    p = _abs(path)
    fs = store(p)
    for a in p.parents:
        if fs.is_dir(a):
            k = manifest_kind(a)
            if k in KINDS:           # someone else's _manifest.json higher up is not ours to guard
                return a, k
    return None


def check_job_paths(inputs: dict[str, str | os.PathLike | list | None],
                    outputs: dict[str, tuple[str | os.PathLike | None, str]]) -> None:
    """Refuse overlapping, nested or foreign paths before any work (see the module docstring).

    inputs: option name -> path (file, directory, glob, or a list of them; None = not used); a glob
    counts as the paths it matches, and an output it would match is refused too.
    outputs: option name -> (path, kind) with kind in KINDS, ``"file"`` or ``"rawdir"``."""
    ins: list[tuple[str, Path]] = []
    patterns: list[tuple[str, str]] = []
    for name, value in inputs.items():
        for v in ([] if value is None else value if isinstance(value, (list, tuple)) else [value]):
            s = str(v)
            if any(ch in s for ch in "*?["):
                # a glob: what it matches now, and what it would match (an output named by it)
                patterns.append((name, str(_abs(os.path.dirname(s) or ".") / os.path.basename(s))))
                ins += [(name, _abs(h)) for h in _glob.glob(s)]
            else:
                ins.append((name, _abs(s)))
    outs = [(name, _abs(p), kind) for name, (p, kind) in outputs.items() if p is not None]
    for oname, o, _ in outs:
        for iname, pat in patterns:
            if fnmatch.fnmatch(str(o), pat):
                raise InputError(f"{oname} {o} matches --input's pattern {pat}: the next run would read it as input")

    for oname, o, okind in outs:
        for iname, i in ins:
            if _same(o, i):
                raise InputError(f"{oname} {o} is the same path as {iname}: refusing to overwrite an input")
            if _inside(o, i):
                raise InputError(f"{oname} {o} lies inside {iname} {i}: an output must not be written into an input")
            if _inside(i, o):
                raise InputError(f"{iname} {i} lies inside {oname} {o}: writing {oname} would replace the input")
    for k, (aname, a, _) in enumerate(outs):
        for bname, b, _ in outs[k + 1:]:
            if _same(a, b):
                raise InputError(f"{aname} and {bname} are the same path ({a}): they must be different directories")
            if _inside(a, b) or _inside(b, a):
                inner, outer = ((aname, a), (bname, b)) if _inside(a, b) else ((bname, b), (aname, a))
                raise InputError(f"{inner[0]} {inner[1]} lies inside {outer[0]} {outer[1]}: outputs must not overlap")
    for oname, o, okind in outs:
        anc = managed_ancestor(o)
        if anc is not None:
            d, k = anc
            raise InputError(f"{oname} {o} lies inside the {KIND_WORDS.get(k, k)} {d}: galaxy_spark "
                             f"would read or replace it; choose a path outside it")
        fs = store(o)
        if not fs.exists(o):
            continue
        if okind == "file":
            if fs.is_dir(o):
                raise InputError(f"{oname} {o} is a directory; a file path is expected")
            continue
        if okind == "rawdir":        # a directory of raw files (the mock's ASCII layout)
            if not fs.is_dir(o):
                raise InputError(f"{oname} {o} exists and is not a directory")
            continue
        if not fs.is_dir(o):
            raise InputError(f"{oname} {o} exists and is not a directory (a regular file?); "
                             f"refusing to replace it with a {KIND_WORDS[okind]}")
        k = manifest_kind(o)
        if k == okind:
            continue
        if k is None:
            if fs.list(o):
                raise InputError(f"{oname} {o} exists, is not empty and is not a galaxy_spark "
                                 f"{KIND_WORDS[okind]} (no {MANIFEST}); refusing to replace it")
            continue
        if k == "unreadable":
            raise InputError(f"{oname} {o}: its {MANIFEST} is unreadable or of an unknown kind; "
                             f"refusing to replace it (move it away or repair the manifest)")
        raise InputError(f"{oname} {o} is a {KIND_WORDS.get(k, k)}, not a {KIND_WORDS[okind]}; "
                         f"refusing to replace it")
