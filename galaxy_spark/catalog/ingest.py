"""Ingest: read -> clean -> split good / quarantine -> atomic partitioned write -> manifest.

`run_ingest()` is what `jobs/ingest.py` calls. The commit protocol (plain Parquet, no table
format available):

0. before any work, the paths are checked (`galaxy_spark.io.paths`: no output inside an input,
   no overlapping outputs, no replacing a file or a directory of another kind), and every input
   is checked to be text (`galaxy_spark.catalog.readers.check_text`);
1. both outputs are written by Spark into staging directories next to their targets
   (``<name>.staging-<pid>-<token>``, same parent, so same file system);
2. the row accounting is checked (rows read == written + quarantined, else nothing is committed),
   and a result far smaller than the catalogue it would replace is refused without ``--replace``;
   ``_manifest.json`` is written into both staged outputs, each naming the other and the commit;
3. catalogue and quarantine are swapped in as one unit (`galaxy_spark.io.commit`): a crash leaves
   both old or, once the commit journal is written, both new.

Row accounting, per-reason counts and the per-Field content fingerprints are computed by reading
the staged Parquet back (columnar, cheap), so they describe exactly what is committed.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import sys
import time
import uuid
from pathlib import Path

from galaxy_spark.catalog import cleaning as C
from galaxy_spark.catalog import readers as R
from galaxy_spark.catalog import scan as Sc
from galaxy_spark.catalog import schema as S
from galaxy_spark.errors import GalaxySparkError, InputError
from galaxy_spark.io.commit import commit_together, recover, staging_dir
from galaxy_spark.io.fs import location, store
from galaxy_spark.io.manifest import read_manifest, write_manifest
from galaxy_spark.io.paths import check_job_paths
from galaxy_spark.survey import Survey, load_survey
from galaxy_spark.log import get_logger

log = get_logger(__name__)

MANIFEST_VERSION = 1
DEFAULT_MAX_ROW_DROP = 0.5     # a new catalogue may hold at most this fraction fewer rows
# Parquet row groups of the catalogue: about 16 MB (~18,000 ALHAMBRA rows), so a scoring task can
# take a few row groups and two cores get equal shares without decoding any row group twice
# (estimate/tasks.py); Spark's default (128 MB) made one row group per Field.
CATALOG_ROW_GROUP_BYTES = 16 << 20


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
               spark=None, one_file_per_field: bool = True, echo=log.info, replace: bool = False,
               max_row_drop: float = DEFAULT_MAX_ROW_DROP) -> dict:
    """Ingest `input` (file, directory or glob) into `out` (Parquet by Field) and `quarantine`.

    `replace`: commit even when the result has no valid row, or fewer than (1 − `max_row_drop`)
    times the rows of the catalogue it replaces (otherwise `ShrinkRefused`, nothing committed).
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
    out, quarantine = location(out).absolute(), location(quarantine).absolute()   # a path or a URI
    check_job_paths({"--input": input}, {"--out": (out, "catalog"), "--quarantine": (quarantine, "quarantine")})

    t0 = time.perf_counter()
    files = R.resolve_inputs(input)
    check_job_paths({"--input": files}, {"--out": (out, "catalog"), "--quarantine": (quarantine, "quarantine")})
    for p in files:
        R.check_text(p)
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
        store(target).mkdirs(target.parent)
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
        groups = Sc.group_layouts(layouts)
        saved_split = _balance_splits(spark, [lay.path for lay in layouts])
        index = Sc.scan_index(spark, groups, sv)
        rows_read = sum(s["data_lines"] for s in index.stats.values())
        lap("line_index_duplicates", t0)

        # -- read + validate, one scan per file layout -----------------------------------
        validated = None
        for group in groups:
            raw, _ = Sc.read_group(spark, group, sv, index)
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
        (good.write.mode("errorifexists").option("parquet.block.size", CATALOG_ROW_GROUP_BYTES)
         .partitionBy(S.PARTITION_COLUMN).parquet(str(st_out)))
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

    try:
        _check_shrink(out, rows_read, written, quarantined, qm, replace, max_row_drop)
    except (ShrinkRefused, InputError):        # InputError: its manifest became unreadable meanwhile
        _cleanup(st_out, st_q)
        raise

    fields = {}
    for f in sv.fields:
        n = int(gm[f"rows_{f}"])
        if n:
            fields[str(f)] = {"rows": n, "fingerprint": _fingerprint(schema_ddl, n, gm[f"hash_{f}"])}
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "kind": "catalog",
        "commit": token,
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
        write_manifest(st_q, {**{k: manifest[k] for k in ("manifest_version", "created_utc", "survey", "options",
                                                          "rows")},
                              "commit": token, "catalog": str(out)}, "quarantine")
        manifest["timings_s"]["total"] = round(time.perf_counter() - t_start, 3)
        write_manifest(st_out, manifest, "catalog")
        commit_together([(st_out, out), (st_q, quarantine)], token)
    except OSError as e:
        _cleanup(st_out, st_q)
        raise IngestError(f"could not commit the ingest output: {e}") from None
    lap("commit", t0)
    echo(summary(manifest))
    return manifest


class ShrinkRefused(GalaxySparkError):
    """The ingest would replace a catalogue with far fewer rows (or none) without --replace."""


def _previous_rows(out: Path) -> tuple[int, dict] | None:
    """Rows of the catalogue now at `out` (from its manifest) and the manifest."""
    m = read_manifest(out, "catalogue manifest")      # unreadable: an InputError, never "no catalogue"
    if m is None:
        return None
    try:
        return int(m["rows"]["written"]), m
    except (ValueError, KeyError, TypeError):
        return None


def _check_shrink(out: Path, read: int, written: int, quarantined: int, by_reason: dict,
                  replace: bool, max_row_drop: float) -> None:
    """Refuse a result with no valid row, or one that would shrink the existing catalogue by more
    than `max_row_drop`, unless `replace`. The message says what would be lost and why."""
    if replace:
        return
    reasons = ", ".join(f"{r} {n}" for r, n in sorted(by_reason.items(), key=lambda kv: -kv[1])
                        if r != "rows" and n)
    why = f" (quarantine reasons: {reasons})" if reasons else ""
    prev = _previous_rows(out)
    if written == 0:
        lost = (f"; the catalogue {out} now holds {prev[0]} rows (ingested "
                f"{prev[1].get('created_utc', '?')} from {prev[1].get('options', {}).get('input')!r}) "
                f"and would be emptied") if prev else ""
        raise ShrinkRefused(f"no valid row: {read} rows read, 0 would be written, {quarantined} quarantined"
                            f"{why}{lost}. Nothing was committed; pass --replace to commit it anyway")
    if prev and prev[0] > 0 and written < (1.0 - max_row_drop) * prev[0]:
        raise ShrinkRefused(
            f"the new catalogue would hold {written} rows but {out} now holds {prev[0]} (ingested "
            f"{prev[1].get('created_utc', '?')} from {prev[1].get('options', {}).get('input')!r}): "
            f"{prev[0] - written} rows ({(prev[0] - written) / prev[0]:.0%}) would be lost, more than the "
            f"{max_row_drop:.0%} allowed{why}. Nothing was committed; pass --replace to commit it anyway")


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


def _cleanup(*dirs) -> None:
    for d in dirs:
        store(d).delete(d)


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

    from galaxy_spark.cli import HelpFormatter
    from galaxy_spark.config import load_pipeline_config

    cfg = load_pipeline_config()
    ic = cfg.get("ingest") or {}
    p = argparse.ArgumentParser(prog="ingest", formatter_class=HelpFormatter, description=(
        "Read a raw ALHAMBRA-style catalogue (public ASCII, CSV or VizieR CSV), decode the "
        "sentinels, quarantine invalid rows and write Parquet partitioned by Field."))
    p.add_argument("--input", default=cfg["paths"].get("raw"),
                   help="raw catalogue: a file, a directory of files or a glob (quote it)")
    p.add_argument("--format", default="auto", choices=("auto",) + R.FORMATS,
                   help="input format; auto detects it from the first lines of each file")
    p.add_argument("--out", default=cfg["paths"].get("catalog"),
                   help="catalogue directory (Parquet by Field + _manifest.json), replaced atomically")
    p.add_argument("--quarantine", default=cfg["paths"].get("quarantine"),
                   help="directory for rejected rows (Parquet, with reason, file and line), "
                        "committed together with the catalogue")
    p.add_argument("--thesis-clip", action="store_true",
                   help="also write B_thesis: magnitudes clipped to the thesis' range")
    p.add_argument("--survey", default=cfg.get("survey", "alhambra"),
                   help="survey definition: a name in conf/surveys/ or a path to a YAML file")
    p.add_argument("--replace", action="store_true",
                   help="commit even when the result has no valid row or far fewer rows than the "
                        "catalogue it replaces (see --max-row-drop)")
    p.add_argument("--max-row-drop", type=float, default=float(ic.get("max_row_drop", DEFAULT_MAX_ROW_DROP)),
                   help="largest fraction of the existing catalogue's rows a new ingest may lose "
                        "without --replace")
    p.add_argument("--quiet", action="store_true", help="print the summary without the JSON")
    a = p.parse_args(argv)
    if not a.input:
        raise InputError("no --input given")
    if not 0.0 <= a.max_row_drop <= 1.0:
        raise InputError(f"--max-row-drop must be in [0, 1], got {a.max_row_drop}")
    echo = (lambda s: log.info(s.split("\n{", 1)[0])) if a.quiet else log.info
    run_ingest(a.input, a.out, a.quarantine, fmt=a.format, thesis_clip=a.thesis_clip,
               survey=a.survey, echo=echo, replace=a.replace, max_row_drop=a.max_row_drop)
    sys.stdout.flush()
    return 0
