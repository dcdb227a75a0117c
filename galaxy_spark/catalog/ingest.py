"""Ingest: read -> clean -> split good / quarantine -> atomic partitioned write -> manifest.

`run_ingest()` is what `jobs/ingest.py` calls. The commit protocol (plain Parquet, no table
format available):

0. before any work, the paths are checked (`galaxy_spark.io.paths`: no output inside an input,
   no overlapping outputs, no replacing a file or a directory of another kind), and every input
   is checked to be text (`galaxy_spark.catalog.readers.check_text`);
1. both outputs are written into staging directories next to their targets
   (``<name>.staging-<pid>-<token>``, same parent, so same file system) by Python tasks that Spark
   schedules (`galaxy_spark.catalog.tasks`: one sequential read indexes the inputs, one task per
   byte range parses, validates and writes fragments, one task per Field merges them);
2. the row accounting is checked (data lines read == rows parsed == written + quarantined, the
   tasks' counts against the staged files' footers, else nothing is committed), and a result far
   smaller than the catalogue it would replace is refused without ``--replace``;
   ``_manifest.json`` is written into both staged outputs, each naming the other and the commit;
3. catalogue and quarantine are swapped in as one unit (`galaxy_spark.io.commit`): a crash leaves
   both old or, once the commit journal is written, both new.

The per-Field content fingerprints are computed by the tasks that write each Field's file, from
the table they write (`tasks.content_hash`).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from galaxy_spark.catalog import cleaning as C
from galaxy_spark.catalog import readers as R
from galaxy_spark.catalog import schema as S
from galaxy_spark.catalog import tasks as T
from galaxy_spark.errors import GalaxySparkError, InputError
from galaxy_spark.io.commit import commit_together, recover
from galaxy_spark.io.arrow import parquet_rows, write_parquet_atomically
from galaxy_spark.io.fs import location
from galaxy_spark.io.manifest import read_manifest, write_manifest
from galaxy_spark.io.paths import check_job_paths
from galaxy_spark.io.staged import check_rows, run_staged
from galaxy_spark.survey import Survey, load_survey, survey_record
from galaxy_spark.log import get_logger

log = get_logger(__name__)

MANIFEST_VERSION = 1
DEFAULT_MAX_ROW_DROP = 0.5     # a new catalogue may hold at most this fraction fewer rows


class IngestError(GalaxySparkError):
    """The ingest could not complete (Spark failure, row accounting mismatch)."""


def canonical_ddl(survey: Survey, thesis_clip: bool = False) -> str:
    """The catalogue schema as Spark's DDL text (recorded in the manifest and the fingerprints)."""
    from pyspark.sql import types as Ty

    fields = S.canonical_fields(survey)
    if thesis_clip:
        fields += [Ty.StructField(C.thesis_column(b), Ty.DoubleType(), True) for b in survey.band_names]
    return Ty.StructType(fields).simpleString()


def _fingerprint(schema_ddl: str, rows: int, hash_sum) -> str:
    return hashlib.sha256(f"{schema_ddl}|{rows}|{hash_sum}".encode()).hexdigest()[:32]


# ---- the job -------------------------------------------------------------------------------
def run_ingest(input: str | list, out: str | os.PathLike, quarantine: str | os.PathLike,
               fmt: str = "auto", thesis_clip: bool = False, survey: str | Survey | None = None,
               spark=None, echo=log.info, replace: bool = False, max_row_drop: float = DEFAULT_MAX_ROW_DROP,
               unit_bytes: int = T.UNIT_BYTES, strict: bool = False) -> dict:
    """Ingest `input` (file, directory or glob) into `out` (Parquet by Field) and `quarantine`.

    `replace`: commit even when the result has no valid row, or fewer than (1 − `max_row_drop`)
    times the rows of the catalogue it replaces (otherwise `ShrinkRefused`, nothing committed).
    `unit_bytes`: text per task. A file whose last data line has no newline (a copy cut short
    looks exactly like this) is named in the summary and the manifest (``inputs[].no_final_newline``:
    its line number); `strict` quarantines that line (reason ``no_final_newline``).
    Returns the manifest (also written to `out/_manifest.json` and echoed).
    """
    t_start = time.perf_counter()
    sv = survey if isinstance(survey, Survey) else load_survey(survey)
    if fmt not in ("auto",) + R.FORMATS:
        raise InputError(f"unknown format {fmt!r} (expected auto, {', '.join(R.FORMATS)})")
    out, quarantine = location(out).absolute(), location(quarantine).absolute()   # a path or a URI
    check_job_paths({"--input": input}, {"--out": (out, "catalog"), "--quarantine": (quarantine, "quarantine")})
    job = IngestJob(sv, out, quarantine, input, fmt, thesis_clip, strict, replace, max_row_drop, t_start=t_start)

    t0 = time.perf_counter()
    files = R.resolve_inputs(input)
    check_job_paths({"--input": files}, {"--out": (out, "catalog"), "--quarantine": (quarantine, "quarantine")})
    for p in files:
        R.check_text(p)
    job.layouts = [R.inspect_file(p, sv, fmt) for p in files]
    job.lap("inspect_inputs", t0)

    # One sequential read of the inputs: fingerprints, line counts, work units, duplicate IDs.
    t0 = time.perf_counter()
    job.index = T.index_inputs(job.layouts, sv, unit_bytes)
    job.lap("index_inputs", t0)

    t0 = time.perf_counter()
    if spark is None:
        from galaxy_spark.spark import get_spark
        spark = get_spark("galaxy_spark-ingest")
    job.spark = spark
    job.lap("spark_start", t0)
    run_staged(job, echo, on_error=job.spark_failure)
    echo(summary(job.manifest))
    return job.manifest


@dataclass
class IngestJob:
    """The ingest as a staged job (`io.staged.run_staged`): Spark tasks parse, validate and write
    into the staged catalogue and quarantine; the accounting; the manifests and the joint commit
    (catalogue and quarantine swapped in as one unit)."""
    survey: Survey
    out: Any
    quarantine: Any
    input: str | list
    fmt: str
    thesis_clip: bool
    strict: bool
    replace: bool
    max_row_drop: float
    layouts: list = field(default_factory=list)
    index: Any = None
    spark: Any = None
    t_start: float = 0.0
    timings: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    token: str = ""
    name: str = "ingest"

    @property
    def targets(self) -> list:
        return [self.out, self.quarantine]

    def lap(self, step: str, t0: float) -> None:
        self.timings[step] = round(time.perf_counter() - t0, 3)

    def recover(self, target) -> list[str]:
        return recover(target)

    def spark_failure(self, e: BaseException) -> None:
        """A Spark failure of the tasks becomes one IngestError line."""
        from pyspark.errors import PySparkException
        from py4j.protocol import Py4JJavaError

        if isinstance(e, (PySparkException, Py4JJavaError)):
            text = str(getattr(e, "java_exception", None) or e).strip()
            msg = text.splitlines()[0] if text else type(e).__name__
            raise IngestError(f"Spark failed while ingesting {self.input!r}: {msg}") from None

    def run(self, staging: dict, token: str) -> list[dict]:
        """One task per text unit: parse, validate, write (`catalog.tasks.ingest_unit`)."""
        t0 = time.perf_counter()
        self.token = token
        sv, thesis_clip, dups = self.survey, self.thesis_clip, self.index.duplicate_ids
        out_s, q_s = str(staging[self.out]), str(staging[self.quarantine])
        cut_short = {p: st["no_final_newline"] for p, st in self.index.stats.items()
                     if "no_final_newline" in st} if self.strict else {}
        sc = self.spark.sparkContext
        sc.setJobDescription(f"ingest: parse and validate {len(self.index.units)} units of {len(self.layouts)} files")
        try:
            units = sc.parallelize(self.index.units, len(self.index.units)).map(
                lambda u: T.ingest_unit(u, sv, dups, out_s, q_s, token, thesis_clip,
                                        cut_short.get(u.layout.path) if u.end < 0 else None)).collect()
        finally:
            sc.setJobDescription(None)
        self.lap("parse_validate_write", t0)
        return units

    def account(self, units: list[dict], staging: dict) -> None:
        """Data lines read = rows parsed = rows written + quarantined, the tasks' counts against
        the staged files' footers (per Field too); then the shrink guard."""
        t0 = time.perf_counter()
        st_out, st_q = staging[self.out], staging[self.quarantine]
        expected, field_hash, by_reason = {}, {}, {}
        for u in units:
            for f, r in u["fields"].items():
                expected[f] = expected.get(f, 0) + r["rows"]
                field_hash[f] = (field_hash.get(f, 0) + r["hash"]) % (1 << 64)
            for k, n in u.get("by_reason", {}).items():
                by_reason[k] = by_reason.get(k, 0) + n
        on_disk = {f: parquet_rows(st_out / f"{S.PARTITION_COLUMN}={f}") for f in expected}
        rows_read = sum(st["data_lines"] for st in self.index.stats.values())
        parsed, quarantined = sum(u["rows"] for u in units), sum(u["quarantined"] for u in units)
        if not by_reason:      # readers of the quarantine still find its schema
            write_parquet_atomically(C.quarantine_arrow_schema(self.survey).empty_table(),
                                     st_q / f"part-00000-{self.token}.parquet")
        written = sum(on_disk.values())
        check_rows({"data lines read": rows_read, "rows parsed": parsed,
                    "rows written + quarantined (tasks)": sum(expected.values()) + quarantined,
                    "rows written + quarantined (staged files)": written + parquet_rows(st_q)})
        for f in expected:
            check_rows({"rows written (tasks)": expected[f], "rows in the staged files": on_disk[f]}, f"Field {f}")
        self.timings["tasks_s"] = {k: round(sum(u["seconds"][k] for u in units), 3)
                                   for k in ("read", "parse", "validate", "write")}
        self.lap("accounting", t0)
        _check_shrink(self.out, rows_read, written, quarantined, by_reason, self.replace, self.max_row_drop)
        self.counts = {"read": rows_read, "written": written, "quarantined": quarantined, "by_reason": by_reason,
                       "on_disk": on_disk, "field_hash": field_hash}

    def commit(self, units: list[dict], staging: dict, token: str) -> None:
        """Both manifests (each names the other and the commit), then the joint swap."""
        t0 = time.perf_counter()
        c, sv = self.counts, self.survey
        schema_ddl = canonical_ddl(sv, self.thesis_clip)
        fields = {str(f): {"rows": c["on_disk"][f], "fingerprint": _fingerprint(schema_ddl, c["on_disk"][f], c["field_hash"][f])}
                  for f in sorted(c["on_disk"]) if c["on_disk"][f]}
        inputs = [{**self.index.fingerprints[lay.path], "format": lay.format, "fields_per_line": lay.n_fields,
                   "ignored_columns": list(lay.ignored),
                   **{k: v for k, v in self.index.stats[lay.path].items() if k == "no_final_newline"}}
                  for lay in self.layouts]
        self.manifest = {
            "manifest_version": MANIFEST_VERSION,
            "kind": "catalog",
            "commit": token,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "survey": sv.name,
            "survey_file": survey_record(sv),
            "output": str(self.out),
            "quarantine": str(self.quarantine),
            "options": {"input": self.input if isinstance(self.input, str) else list(self.input), "format": self.fmt,
                        "thesis_clip": self.thesis_clip, "strict": self.strict,
                        "partition_column": S.PARTITION_COLUMN, "one_file_per_field": True},
            "rows": {"read": c["read"], "written": c["written"], "quarantined": c["quarantined"],
                     "quarantined_by_reason": {r: c["by_reason"][r] for r in C.REASONS if r in c["by_reason"]}},
            "fields": fields,
            "schema": schema_ddl,
            "inputs": inputs,
            "timings_s": self.timings,
        }
        st_out, st_q = staging[self.out], staging[self.quarantine]
        try:
            write_manifest(st_q, {**{k: self.manifest[k] for k in ("manifest_version", "created_utc", "survey",
                                                                     "options", "rows")},
                                  "commit": token, "catalog": str(self.out)}, "quarantine")
            self.manifest["timings_s"]["total"] = round(time.perf_counter() - self.t_start, 3)
            write_manifest(st_out, self.manifest, "catalog")
            commit_together([(st_out, self.out), (st_q, self.quarantine)], token)
        except OSError as e:
            raise IngestError(f"could not commit the ingest output: {e}") from None
        self.lap("commit", t0)


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


def summary(m: dict) -> str:
    r = m["rows"]
    lines = [f"ingest: {r['read']} rows read = {r['written']} written + {r['quarantined']} quarantined"]
    for reason, n in r["quarantined_by_reason"].items():
        lines.append(f"  quarantined {reason}: {n}")
    for inp in m.get("inputs", []):
        if "no_final_newline" in inp:
            fate = ("quarantined (--strict)" if m["options"].get("strict")
                    else "ingested as read (--strict quarantines it)")
            lines.append(f"  warning: {inp['path']} line {inp['no_final_newline']}: no final newline: the file may be "
                         f"truncated; that line was {fate}")
    for f, info in m["fields"].items():
        lines.append(f"  Field {f}: {info['rows']} rows, fingerprint {info['fingerprint']}")
    lines.append(f"  catalogue: {m['output']}  quarantine: {m['quarantine']}  "
                 f"total {m['timings_s'].get('total', 0):.1f} s")
    shown = {**m, "survey_file": {k: v for k, v in (m.get("survey_file") or {}).items() if k != "text"}}
    lines.append(json.dumps(shown, indent=2))      # the survey file's text stays in the manifest only
    return "\n".join(lines)
