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
from galaxy_spark.io.fs import UriPath, location, store
from galaxy_spark.survey import Survey, resolve_survey

MANIFEST = "_manifest.json"


def manifest_path(directory: str | os.PathLike) -> Path | UriPath:
    return location(directory) / MANIFEST


def read_manifest(directory: str | os.PathLike, what: str = "manifest") -> dict | None:
    """The manifest of `directory` as a dict; None when absent; `InputError` when unreadable."""
    p = manifest_path(directory)
    fs = store(p)
    if not fs.is_file(p):
        return None
    try:
        m = json.loads(fs.read_bytes(p))
    except (OSError, ValueError) as e:
        raise InputError(f"{what} {p} is unreadable ({e}); re-run the job that wrote it, or remove it") from None
    if not isinstance(m, dict):
        raise InputError(f"{what} {p} is not a JSON object; re-run the job that wrote it, or remove it")
    return m


def write_manifest(directory: str | os.PathLike, manifest: dict, kind: str) -> Path | UriPath:
    """Write `manifest` (with ``kind``) atomically: readers see the old or the new one, never half."""
    p = manifest_path(directory)
    doc = {**manifest, "kind": kind}
    store(p).write_atomic(p, (json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n").encode())
    return p


def manifest_sha256(directory: str | os.PathLike) -> str | None:
    """First 16 hex digits of the manifest's SHA-256 (provenance of what a job read); None if absent."""
    p = manifest_path(directory)
    fs = store(p)
    return hashlib.sha256(fs.read_bytes(p)).hexdigest()[:16] if fs.is_file(p) else None


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def recorded_survey(catalog: str) -> dict:
    """What the catalogue's manifest records of its survey, as `survey.resolve_survey` takes it:
    {"catalogue": name, "catalogue_file": the file's record} ({} without a manifest)."""
    man = read_manifest(catalog, "catalogue manifest") or {}
    return {"catalogue": man.get("survey"), "catalogue_file": man.get("survey_file")} if man else {}


def catalogue_survey(catalog: str, requested: str | None = None) -> Survey:
    """The survey of the ingested catalogue `catalog` by the one rule (`survey.resolve_survey`)."""
    return resolve_survey(requested, **recorded_survey(catalog))