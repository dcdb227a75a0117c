"""The ``_manifest.json`` every galaxy_spark output directory carries: one reader, one writer.

Policy (one for every job): a missing manifest is ``None``; a manifest that exists but cannot be
read or is not a JSON object is an `InputError` naming the file — a job must never fall back to
guessing (skipping the survey check, or rescoring everything) because a file it relies on is
corrupt. `kind` (catalog / quarantine / scores / report) says what the directory is
(`galaxy_spark.io.paths` uses it to refuse overwriting one kind with another).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path

from galaxy_spark.errors import InputError

MANIFEST = "_manifest.json"


def manifest_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / MANIFEST


def read_manifest(directory: str | os.PathLike, what: str = "manifest") -> dict | None:
    """The manifest of `directory` as a dict; None when absent; `InputError` when unreadable."""
    p = manifest_path(directory)
    if not p.is_file():
        return None
    try:
        m = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{what} {p} is unreadable ({e}); re-run the job that wrote it, or remove it") from None
    if not isinstance(m, dict):
        raise InputError(f"{what} {p} is not a JSON object; re-run the job that wrote it, or remove it")
    return m


def write_manifest(directory: str | os.PathLike, manifest: dict, kind: str) -> Path:
    """Write `manifest` (with ``kind``) atomically: readers see the old or the new one, never half."""
    d = Path(directory)
    doc = {**manifest, "kind": kind}
    tmp = d / f"{MANIFEST}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, d / MANIFEST)
    return d / MANIFEST


def manifest_sha256(directory: str | os.PathLike) -> str | None:
    """First 16 hex digits of the manifest's SHA-256 (provenance of what a job read); None if absent."""
    p = manifest_path(directory)
    return hashlib.sha256(p.read_bytes()).hexdigest()[:16] if p.is_file() else None


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
