"""What a reprocess run has to do, worked out on the driver from file metadata alone (no Spark,
no model download): for each catalogue Field, compare the scores manifest's entry with now.

A Field is rescored when it has no scores, its input changed (the ingest manifest's content
fingerprint, else a fingerprint of its files' names, sizes and mtimes), the model the URI resolves
to now differs from the one that scored it, the scoring options changed, the row counts differ
(Parquet footers of the catalogue and of the scores, and the manifest), or ``--force``. Fields with
scores but gone from the catalogue are kept, or pruned with ``--prune``. See docs/reprocess.md.
"""
from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass
from pathlib import Path

from galaxy_spark.errors import InputError
from galaxy_spark.estimate import job as J
from galaxy_spark.estimate.batch import PARTITION
from galaxy_spark.io.arrow import arrow_data_files
from galaxy_spark.io.fs import store
from galaxy_spark.io.manifest import read_manifest
from galaxy_spark.model.registry import ModelRef, ResolvedModel, pin_model, resolve_model

# =============================================================================================
# fingerprints and row counts (driver, file metadata only)
# =============================================================================================
def files_fingerprint(field_dir) -> str:
    """Fingerprint of a Field's files without reading them: relative name, size and mtime (ns).
    Any rewrite changes it (a rewrite with identical bytes too: that only costs a rescore)."""
    h = hashlib.sha256()
    _, root, infos = arrow_data_files(field_dir)
    for i in infos:
        h.update(f"{posixpath.relpath(i.path, root)}|{i.size}|{i.mtime_ns}\n".encode())
    return "files:" + h.hexdigest()[:32]


def parquet_rows(field_dir) -> int:
    """Rows under a partition directory, from the Parquet footers alone (no data read)."""
    import pyarrow.parquet as pq

    n = 0
    fs, _, infos = arrow_data_files(field_dir)
    for i in infos:
        try:
            n += pq.ParquetFile(fs.open_input_file(i.path)).metadata.num_rows
        except Exception as e:  # noqa: BLE001 - any unreadable footer is an input error
            raise InputError(f"{i.path} is not readable Parquet: {e}") from None
    return n


def input_fingerprint(catalog: Path, f: int, cat_manifest: dict | None) -> str:
    """What Field `f` of the catalogue is now: ``ingest:<content fingerprint>`` from the ingest
    manifest, else ``files:<…>`` (`files_fingerprint`)."""
    fp = ((cat_manifest or {}).get("fields") or {}).get(str(f), {}).get("fingerprint")
    if fp:
        return f"ingest:{fp}"
    return files_fingerprint(catalog / f"{PARTITION}={f}")


def recorded_fingerprint(entry: dict) -> str | None:
    """The input fingerprint a scores-manifest entry was made from (None when not recorded)."""
    if entry.get("input_fingerprint"):
        return entry["input_fingerprint"]
    if entry.get("catalog_fingerprint"):            # written by jobs/score.py
        return f"ingest:{entry['catalog_fingerprint']}"
    return None


def scores_fields(scores: Path, manifest: dict) -> list[int]:
    """Fields that have scores: a ``Field=N`` directory or an entry in the scores manifest."""
    out = set(J.catalogue_fields(scores)) if store(scores).exists(scores) else set()
    for k in (manifest.get("fields") or {}):
        try:
            out.add(int(k))
        except ValueError:
            continue
    return sorted(out)


def resolve_ref(uri: str) -> tuple[ModelRef, ResolvedModel | None]:
    """Pin the model (registry URIs without a download); other URI forms are resolved in full."""
    ref = pin_model(uri)
    if ref is not None:
        return ref, None
    m = resolve_model(uri)
    return ModelRef(uri, m.name, str(m.version), m.run_id), m


# =============================================================================================
# plan
# =============================================================================================
@dataclass
class FieldPlan:
    """What a run does with one Field, and why (fingerprints, row counts, the model that scored it)."""

    field: int
    action: str                    # rescore | skip | keep (gone from the catalogue) | prune
    reason: str
    fingerprint: str | None = None
    recorded_fingerprint: str | None = None
    rows_catalog: int | None = None
    rows_scores: int | None = None
    scored_by: dict | None = None


@dataclass
class Plan:
    """The pinned model and a `FieldPlan` per Field, in Field order."""

    model: ModelRef
    fields: list[FieldPlan]

    def by_action(self, action: str) -> list[FieldPlan]:
        return [p for p in self.fields if p.action == action]

    def lines(self) -> list[str]:
        out = []
        for p in self.fields:
            rows = f", {p.rows_catalog} rows" if p.rows_catalog is not None else ""
            out.append(f"  Field {p.field}: {p.action.upper()} — {p.reason}{rows}")
        return out


def _short(fp: str | None) -> str:
    return "none" if not fp else (fp.split(":", 1)[0] + ":" + fp.split(":", 1)[-1][:10])


def make_plan(catalog: Path, scores: Path, ref: ModelRef, opts) -> Plan:
    """Compare each Field's scores-manifest entry with now (model, options, input fingerprint, row
    counts) — see the module docstring. `opts`: the run's options (`reprocess.ReprocessOptions`:
    force, prune, mc_samples, mc_seed, min_bands)."""
    cat_manifest = read_manifest(catalog, "catalogue manifest")   # unreadable: an error, not file fingerprints
    manifest = J.read_scores_manifest(scores)
    entries = manifest.get("fields") or {}
    cat_fields = J.catalogue_fields(catalog)
    is_dir = store(scores).is_dir
    plans = []
    for f in cat_fields:
        fp = input_fingerprint(catalog, f, cat_manifest)
        n_cat = parquet_rows(catalog / f"{PARTITION}={f}")
        entry = entries.get(str(f))
        sdir = scores / f"{PARTITION}={f}"
        p = FieldPlan(f, "skip", "up to date", fp, None, n_cat)
        reasons = []
        if opts.force:
            reasons.append("forced (--force)")
        if entry is None or not is_dir(sdir):
            reasons.append("no scores" if entry is None and not is_dir(sdir) else
                           "scores directory present but not in the scores manifest" if entry is None else
                           "in the scores manifest but its directory is missing")
        else:
            m = entry.get("model") or {}
            p.scored_by = {k: m.get(k) for k in ("name", "version", "run_id")}
            p.recorded_fingerprint = recorded_fingerprint(entry)
            p.rows_scores = parquet_rows(sdir)
            if (m.get("name"), str(m.get("version"))) != (ref.name, ref.version) or \
                    (m.get("run_id") and ref.run_id and m["run_id"] != ref.run_id):
                reasons.append(f"model changed: {m.get('name')} v{m.get('version')} → {ref.name} v{ref.version}")
            opt_now = {"mc_samples": opts.mc_samples, "mc_seed": opts.mc_seed, "min_bands": opts.min_bands}
            opt_then = {k: entry.get(k) for k in opt_now}
            if opt_then != opt_now:
                diff = ", ".join(f"{k} {opt_then[k]} → {v}" for k, v in opt_now.items() if opt_then[k] != v)
                reasons.append(f"scoring options changed: {diff}")
            if p.recorded_fingerprint is None:
                reasons.append("no input fingerprint recorded with the scores")
            elif p.recorded_fingerprint != fp:
                reasons.append(f"input changed: {_short(p.recorded_fingerprint)} → {_short(fp)}")
            if p.rows_scores != n_cat or entry.get("rows") != n_cat:
                reasons.append(f"row counts differ: catalogue {n_cat}, scores {p.rows_scores} "
                               f"(manifest {entry.get('rows')})")
        if reasons:
            p.action, p.reason = "rescore", "; ".join(reasons)
        plans.append(p)
    for f in scores_fields(scores, manifest):
        if f in cat_fields:
            continue
        sdir = scores / f"{PARTITION}={f}"
        rows = parquet_rows(sdir) if is_dir(sdir) else None
        if opts.prune:
            plans.append(FieldPlan(f, "prune", "not in the catalogue any more: removed (--prune)", rows_scores=rows))
        else:
            plans.append(FieldPlan(f, "keep", "not in the catalogue any more: scores kept (--prune removes them)",
                                   rows_scores=rows))
    return Plan(ref, sorted(plans, key=lambda p: p.field))
