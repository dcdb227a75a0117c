"""Ingest: read -> clean -> split good / quarantine -> atomic partitioned write -> manifest.

`run_ingest()` is what `jobs/ingest.py` calls. The commit protocol (plain Parquet, no table
format available):

1. both outputs are written by Spark into staging directories next to their targets
   (``<name>.staging-<pid>-<token>``, same parent, so same file system);
2. the row accounting is checked (rows read == written + quarantined, else nothing is committed)
   and ``_manifest.json`` is written inside the staged catalogue;
3. each target is swapped in by rename: target -> ``<name>.old-<token>``, staging -> target,
   then the old copy is deleted. A crash before step 3 leaves the previous outputs untouched; a
   crash between the two renames leaves the previous output under ``<name>.old-*``, which the
   next run puts back before doing anything else (`recover`).

Row accounting, per-reason counts and the per-Field content fingerprints are computed by reading
the staged Parquet back (columnar, cheap), so they describe exactly what is committed.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

from galaxy_spark.procs import pid_alive
from galaxy_spark.catalog import cleaning as C
from galaxy_spark.catalog import readers as R
from galaxy_spark.catalog import schema as S
from galaxy_spark.errors import GalaxySparkError, InputError
from galaxy_spark.survey import Survey, load_survey

MANIFEST = "_manifest.json"
MANIFEST_VERSION = 1


class IngestError(GalaxySparkError):
    """The ingest could not complete (Spark failure, row accounting mismatch)."""


# ---- file fingerprints -----------------------------------------------------------------------
def file_fingerprint(path: str, chunk: int = 8 << 20) -> dict:
    st = os.stat(path)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    mtime = _dt.datetime.fromtimestamp(st.st_mtime, tz=_dt.timezone.utc).isoformat()
    return {"path": path, "size": st.st_size, "mtime": mtime, "sha256": h.hexdigest()}


# ---- commit protocol ---------------------------------------------------------------------------
# Sibling names carry no leading dot or underscore: Spark ignores such paths when reading.
def _siblings(target: Path, kind: str) -> list[Path]:
    return sorted(target.parent.glob(f"{target.name}.{kind}-*"))


def recover(target: Path) -> list[str]:
    """Undo a crash between the two renames of a commit; remove stale staging directories."""
    notes = []
    olds = _siblings(target, "old")
    if not target.exists() and olds:
        newest = max(olds, key=lambda p: p.stat().st_mtime)
        os.rename(newest, target)
        notes.append(f"restored {target} from {newest.name} (an earlier run stopped mid-commit)")
        olds.remove(newest)
    if target.exists():
        for o in olds:
            shutil.rmtree(o, ignore_errors=True)
    for st in _siblings(target, "staging"):
        try:
            pid = int(st.name.rsplit("staging-", 1)[1].split("-")[0])
        except (IndexError, ValueError):
            continue
        if not pid_alive(pid):
            shutil.rmtree(st, ignore_errors=True)
            notes.append(f"removed stale staging directory {st.name}")
    return notes


def staging_dir(target: Path, token: str) -> Path:
    return target.parent / f"{target.name}.staging-{os.getpid()}-{token}"


def commit(staging: Path, target: Path, token: str) -> None:
    """Swap `staging` in as `target` by rename (see the module docstring)."""
    old = target.parent / f"{target.name}.old-{token}"
    if target.exists():
        os.rename(target, old)
    os.rename(staging, target)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


# ---- fingerprints of the written content --------------------------------------------------
def _content_hash(df):
    """Order-independent row hash of every content column (source_file excluded)."""
    from pyspark.sql import functions as F

    cols = [F.col(c) for c in df.columns if c != S.SOURCE_COLUMN]
    return F.xxhash64(*cols).cast("decimal(38,0)")


def _field_aggregates(df, sv: Survey) -> list:
    """Total rows, rows per Field and the per-Field sum of `_content_hash`."""
    from pyspark.sql import functions as F

    h = _content_hash(df)
    fcol = F.col(S.PARTITION_COLUMN)
    agg = [F.count(F.lit(1)).alias("rows")]
    for f in sv.fields:
        agg.append(F.count(F.when(fcol == f, 1)).alias(f"rows_{f}"))
        agg.append(F.sum(F.when(fcol == f, h)).alias(f"hash_{f}"))
    return agg


def _fingerprint(schema_ddl: str, rows: int, hash_sum) -> str:
    return hashlib.sha256(f"{schema_ddl}|{rows}|{hash_sum}".encode()).hexdigest()[:32]


# ---- the job -------------------------------------------------------------------------------
def run_ingest(input: str | list, out: str | os.PathLike, quarantine: str | os.PathLike,
               fmt: str = "auto", thesis_clip: bool = False, survey: str | Survey = "alhambra",
               spark=None, one_file_per_field: bool = True, echo=print) -> dict:
    """Ingest `input` (file, directory or glob) into `out` (Parquet by Field) and `quarantine`.

    Returns the manifest (also written to `out/_manifest.json` and echoed).
    """
    from pyspark.errors import PySparkException
    from py4j.protocol import Py4JJavaError
    from pyspark import StorageLevel
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name, t0):
        timings[name] = round(time.perf_counter() - t0, 3)

    sv = survey if isinstance(survey, Survey) else load_survey(survey)
    if fmt not in ("auto",) + R.FORMATS:
        raise InputError(f"unknown format {fmt!r} (expected auto, {', '.join(R.FORMATS)})")
    out, quarantine = Path(out).absolute(), Path(quarantine).absolute()
    if out == quarantine:
        raise InputError("--out and --quarantine must be different directories")

    t0 = time.perf_counter()
    files = R.resolve_inputs(input)
    layouts = [R.inspect_file(p, sv, fmt) for p in files]
    lap("inspect_inputs", t0)
    t0 = time.perf_counter()
    inputs = []
    for lay in layouts:
        fp = file_fingerprint(lay.path)
        fp.update(format=lay.format, fields_per_line=lay.n_fields,
                  ignored_columns=list(lay.ignored))
        inputs.append(fp)
    lap("fingerprint_inputs", t0)

    for target in (out, quarantine):
        target.parent.mkdir(parents=True, exist_ok=True)
        for note in recover(target):
            echo(f"ingest: {note}")

    t0 = time.perf_counter()
    if spark is None:
        from galaxy_spark.spark import get_spark
        spark = get_spark("galaxy_spark-ingest")
    lap("spark_start", t0)

    token = uuid.uuid4().hex[:12]
    cached: list = []
    saved_split = None
    st_out, st_q = staging_dir(out, token), staging_dir(quarantine, token)
    try:
        # -- one light pass: line offsets, line counts, duplicate IDs -------------------
        t0 = time.perf_counter()
        groups = R.group_layouts(layouts)
        saved_split = _balance_splits(spark, [lay.path for lay in layouts])
        index = R.scan_index(spark, groups, sv)
        rows_read = sum(s["data_lines"] for s in index.stats.values())
        lap("line_index_duplicates", t0)

        # -- read + validate, one scan per file layout -----------------------------------
        validated = None
        for group in groups:
            raw, _ = R.read_group(spark, group, sv, index)
            v = C.validate(raw, sv, C.convention_for(group[0].format))
            validated = v if validated is None else validated.unionByName(v)
        idc = C.typed(sv.id_column)
        if index.duplicate_ids:
            dup_df = spark.createDataFrame([(i,) for i in index.duplicate_ids], f"{idc} long")
            validated = C.mark_duplicates(validated, dup_df, sv)

        # Parse and validate once: keep typed values for every row and raw strings only for
        # rejected rows (null elsewhere, so the cache stays small), then split from the cache.
        slim = C.slim(validated, sv).persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(slim)

        # -- good rows ------------------------------------------------------------------
        good = C.to_canonical(slim.where(F.col(C.REASON).isNull()), sv, thesis_clip)
        good_columns, good_schema = good.columns, good.schema
        if one_file_per_field:
            good = good.repartition(S.PARTITION_COLUMN).sortWithinPartitions(sv.id_column)
        # Per-Field row counts and content hashes are observed while the catalogue is written
        # (same columns, same order, same values as the Parquet holds), so no data is re-read.
        obs = Observation("ingest_catalog")
        good = good.observe(obs, *_field_aggregates(good, sv))
        t0 = time.perf_counter()
        good.write.mode("errorifexists").partitionBy(S.PARTITION_COLUMN).parquet(str(st_out))
        lap("parse_validate_write_catalog", t0)

        # -- quarantine -----------------------------------------------------------------
        bad = C.to_quarantine(slim.where(F.col(C.REASON).isNotNull()), sv)
        t0 = time.perf_counter()
        (bad.repartition(1).sortWithinPartitions(R.SOURCE_FILE, R.LINE_NUMBER)
         .write.mode("errorifexists").parquet(str(st_q)))
        lap("write_quarantine", t0)

        # -- accounting from what was written --------------------------------------------
        # Row counts come from the staged Parquet itself (per-Field counts need no column data);
        # they must agree with what the write observed, else the hashes are taken from a full
        # read-back of the staged files.
        t0 = time.perf_counter()
        schema_ddl = good_schema.simpleString()
        on_disk = {int(r[0]): int(r[1]) for r in
                   spark.read.schema(good_schema).parquet(str(st_out))
                   .groupBy(S.PARTITION_COLUMN).count().collect()}
        try:
            gm = dict(obs.get)
        except Exception:  # noqa: BLE001 - no observed metrics: fall back to the read-back
            gm = {}
        if not gm or any(int(gm.get(f"rows_{f}") or 0) != on_disk.get(f, 0) for f in sv.fields) \
                or sum(on_disk.values()) != int(gm.get("rows") or 0):
            back = spark.read.schema(good_schema).parquet(str(st_out)).select(*good_columns)
            gm = back.agg(*_field_aggregates(back, sv)).first().asDict()
        gm["rows"] = sum(on_disk.values())
        qback = spark.read.parquet(str(st_q))
        qm = {r: 0 for r in C.REASONS}
        qm.update({r[C.REASON]: int(r["count"]) for r in qback.groupBy(C.REASON).count().collect()})
        qm["rows"] = sum(v for k, v in qm.items())
        lap("accounting", t0)
    except (PySparkException, Py4JJavaError) as e:
        _unpersist(cached)
        _cleanup(st_out, st_q)
        text = str(getattr(e, "java_exception", None) or e).strip()
        msg = text.splitlines()[0] if text else type(e).__name__
        raise IngestError(f"Spark failed while ingesting {input!r}: {msg}") from None
    except BaseException:
        _unpersist(cached)
        _cleanup(st_out, st_q)
        raise
    finally:
        _restore_splits(spark, saved_split)
    _unpersist(cached)

    written, quarantined = int(gm["rows"]), int(qm["rows"])
    if rows_read != written + quarantined:
        _cleanup(st_out, st_q)
        raise IngestError(f"row accounting mismatch: {rows_read} rows read but {written} written "
                          f"+ {quarantined} quarantined; nothing was committed")

    fields = {}
    for f in sv.fields:
        n = int(gm[f"rows_{f}"])
        if n:
            fields[str(f)] = {"rows": n, "fingerprint": _fingerprint(schema_ddl, n, gm[f"hash_{f}"])}
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "survey": sv.name,
        "output": str(out),
        "quarantine": str(quarantine),
        "options": {"input": input if isinstance(input, str) else list(input), "format": fmt,
                    "thesis_clip": thesis_clip, "partition_column": S.PARTITION_COLUMN,
                    "one_file_per_field": one_file_per_field},
        "rows": {"read": rows_read, "written": written, "quarantined": quarantined,
                 "quarantined_by_reason": {r: int(qm[r]) for r in C.REASONS if int(qm[r])}},
        "fields": fields,
        "schema": schema_ddl,
        "inputs": inputs,
        "timings_s": timings,
    }
    t0 = time.perf_counter()
    try:
        (st_q / MANIFEST).write_text(json.dumps(
            {k: manifest[k] for k in ("manifest_version", "created_utc", "survey", "options", "rows")},
            indent=2) + "\n")
        manifest["timings_s"]["total"] = round(time.perf_counter() - t_start, 3)
        (st_out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        commit(st_q, quarantine, token)
        commit(st_out, out, token)
    except OSError as e:
        _cleanup(st_out, st_q)
        raise IngestError(f"could not commit the ingest output: {e}") from None
    lap("commit", t0)
    echo(summary(manifest))
    return manifest


_SPLIT_KEY = "spark.sql.files.maxPartitionBytes"


def _balance_splits(spark, paths: list[str], per_core: int = 4, floor: int = 8 << 20):
    """Cut the text into about `per_core` splits per core so that every core stays busy (the
    default 128 MB splits give 3 tasks for a 320 MB file on 2 cores: one core idles a third of
    the time). Returns the previous setting, for `_restore_splits`. Both text scans of a run
    must see the same split size (the line offsets are per split)."""
    try:
        prev = spark.conf.get(_SPLIT_KEY)
        jvm = spark.sparkContext._jvm
        limit = int(jvm.org.apache.spark.network.util.JavaUtils.byteStringAsBytes(prev))
        cores = max(1, spark.sparkContext.defaultParallelism)
    except Exception:  # noqa: BLE001 - unparsable setting or no JVM at hand: leave it alone
        return None
    total = sum(os.path.getsize(p) for p in paths)
    want = max(floor, -(-total // (cores * per_core)))
    if want < limit:
        spark.conf.set(_SPLIT_KEY, str(want))
    return prev


def _restore_splits(spark, prev) -> None:
    if prev is not None:
        try:
            spark.conf.set(_SPLIT_KEY, prev)
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass


def _unpersist(frames: list) -> None:
    for df in frames:
        try:
            df.unpersist()
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass
    frames.clear()


def _cleanup(*dirs: Path) -> None:
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def summary(m: dict) -> str:
    r = m["rows"]
    lines = [f"ingest: {r['read']} rows read = {r['written']} written + {r['quarantined']} quarantined"]
    for reason, n in r["quarantined_by_reason"].items():
        lines.append(f"  quarantined {reason}: {n}")
    for f, info in m["fields"].items():
        lines.append(f"  Field {f}: {info['rows']} rows, fingerprint {info['fingerprint']}")
    lines.append(f"  catalogue: {m['output']}  quarantine: {m['quarantine']}  "
                 f"total {m['timings_s'].get('total', 0):.1f} s")
    lines.append(json.dumps(m, indent=2))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line (see jobs/ingest.py)."""
    import argparse

    from galaxy_spark.config import load_pipeline_config

    cfg = load_pipeline_config()
    p = argparse.ArgumentParser(prog="ingest", description=(
        "Read a raw ALHAMBRA-style catalogue (public ASCII, CSV or VizieR CSV), decode the "
        "sentinels, quarantine invalid rows and write Parquet partitioned by Field."))
    p.add_argument("--input", default=cfg["paths"].get("raw"), help="file, directory or glob")
    p.add_argument("--format", default="auto", choices=("auto",) + R.FORMATS)
    p.add_argument("--out", default=cfg["paths"].get("catalog"))
    p.add_argument("--quarantine", default=cfg["paths"].get("quarantine"))
    p.add_argument("--thesis-clip", action="store_true",
                   help="also write B_thesis: magnitudes clipped to the thesis' range")
    p.add_argument("--survey", default=cfg.get("survey", "alhambra"))
    p.add_argument("--quiet", action="store_true", help="print the summary without the JSON")
    a = p.parse_args(argv)
    if not a.input:
        raise InputError("no --input given")
    echo = (lambda s: print(s.split("\n{", 1)[0])) if a.quiet else print
    run_ingest(a.input, a.out, a.quarantine, fmt=a.format, thesis_clip=a.thesis_clip,
               survey=a.survey, echo=echo)
    sys.stdout.flush()
    return 0
