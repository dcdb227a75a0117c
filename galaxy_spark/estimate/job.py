"""The Spark scoring job (jobs/score.py → `run_scoring`): resolve the model once on the driver,
broadcast it, score the catalogue's row groups as Spark tasks (Parquet → NumPy → Parquet), commit
per Field.

1. *Before any work*: the model URI is resolved on the driver (`resolve_model`: alias → version
   through the MLflow client, artifacts downloaded, the NumPy `Ensemble` loaded) and the catalogue
   is checked against it (`check_catalogue`: survey, columns, `--fields`) from its manifest and
   Parquet metadata alone. Every problem is an `InputError` (``error: …``, exit 2) before Spark
   does anything; a catalogue manifest that exists but cannot be read is one of them.
2. The ensemble travels to executors as a broadcast of `Ensemble.to_parts()` (plain arrays and a
   JSON document); `galaxy_spark.estimate.tasks` rebuilds it once per Python worker, reads each
   work unit's row groups with pyarrow (only the columns the model needs), scores Arrow batch by
   batch and writes a Parquet file per unit. Executors never contact MLflow and never import
   TensorFlow.
3. Output: Parquet partitioned by `Field` (`batch.output_columns`), one row per input object. A
   row that cannot be scored keeps its ID, gets null estimates and quality flag 1.
4. Commit (`score_fields`): the tasks write the chosen Fields into ``<out>.staging-<pid>-<token>/``
   (a sibling); per Field, the rows in the catalogue's footers, read, scored and in the staged
   footers must agree and the ID checksums of what was read and written must match (all from the
   same pass: no second read of either table); then each Field is swapped in by the journaled commit of `galaxy_spark.io.commit`
   (journal ``<out>/_commit-Field=N-<token>.json``) and the manifest ``<out>/_manifest.json`` is
   rewritten atomically after each one. ``_SUCCESS`` marks a job that committed everything it set
   out to. A crash leaves every Field either old or new, never half written; `recover_scores`
   (run at the start of every job) rolls an interrupted Field commit forward and removes stale
   staging directories. Names starting with ``_`` are ignored by Spark and pyarrow readers.
"""
from __future__ import annotations

import datetime as _dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from galaxy_spark.errors import GalaxySparkError, InputError
from galaxy_spark.estimate.coverage import coverage_report_spark
from galaxy_spark.estimate.batch import DEFAULT_MIN_BANDS, PARTITION, PASSTHROUGH, QUALITY_FLAGS, ScoreOptions
from galaxy_spark.estimate.tasks import BATCH_ROWS, plan_units, run_units
from galaxy_spark.io.commit import commit_together, recover_children, remove_stale_staging
from galaxy_spark.io.arrow import arrow_fs
from galaxy_spark.io.fs import location, start_spark_for, store
from galaxy_spark.io.manifest import manifest_sha256, read_manifest, recorded_survey, write_manifest
from galaxy_spark.io.paths import check_job_paths
from galaxy_spark.io.staged import check_rows, run_staged
from galaxy_spark.model.registry import ResolvedModel, resolve_model
from galaxy_spark.log import get_logger
from galaxy_spark.survey import resolve_survey

log = get_logger(__name__)

SUCCESS = "_SUCCESS"
MANIFEST_VERSION = 1
KIND = "scores"


# =============================================================================================
# catalogue checks (driver, manifest and Parquet metadata only)
# =============================================================================================


def catalogue_fields(catalog: str | Path) -> list[int]:
    """The Field numbers of the ``Field=N`` partition directories under `catalog`, sorted."""
    out = []
    catalog = location(catalog)
    fs = store(catalog)
    for d in fs.list(catalog):
        if d.name.startswith(f"{PARTITION}=") and fs.is_dir(d):
            try:
                out.append(int(d.name.split("=", 1)[1]))
            except ValueError:
                continue
    return sorted(out)


def parse_fields(text: str | None, available: list[int], catalog) -> list[int]:
    """The Fields named by ``--fields`` (comma-separated; None, "" or "all": every available one);
    a Field not in `available` is an `InputError`."""
    if text is None or str(text).strip() in ("", "all"):
        return list(available)
    chosen = []
    for tok in str(text).split(","):
        tok = tok.strip()
        if not tok:
            continue
        try:
            f = int(tok)
        except ValueError:
            raise InputError(f"--fields: {tok!r} is not a Field number") from None
        if f not in available:
            raise InputError(f"--fields: Field {tok} is not in the catalogue {catalog} "
                             f"(it has Fields {', '.join(map(str, available))})")
        chosen.append(f)
    if not chosen:
        raise InputError("--fields names no Field")
    return sorted(set(chosen))


def catalogue_columns(catalog: str | Path) -> list[str]:
    """Column names of the catalogue's Parquet schema (partition column included), from metadata."""
    import pyarrow.dataset as ds

    try:
        fs, path = arrow_fs(catalog)
        d = ds.dataset(path, filesystem=fs, format="parquet", partitioning="hive")
    except (OSError, ValueError) as e:
        raise InputError(f"catalogue {catalog} is not readable Parquet: {e}") from None
    return list(d.schema.names)


def check_catalogue(catalog: str | Path, model: ResolvedModel, fields_arg: str | None = None,
                    id_column: str = "ID") -> dict:
    """All input checks that need no Spark: the catalogue exists, is the model's survey, has the
    columns the model needs, and the requested Fields. Returns {fields, columns, manifest}."""
    catalog = location(catalog)
    spec = model.ensemble.feature_spec
    if not store(catalog).exists(catalog):
        raise InputError(f"catalogue not found: {catalog} (run jobs/ingest.py first)")
    available = catalogue_fields(catalog)
    if not available:
        raise InputError(f"catalogue {catalog} has no {PARTITION}=N partitions")
    man = read_manifest(catalog, "catalogue manifest")     # unreadable: an error, never "no survey check"
    if man and man.get("survey") and man["survey"] != spec.survey:
        raise InputError(f"catalogue {catalog} is from survey {man['survey']!r} but model {model.uri} "
                         f"({model.name} v{model.version}) was trained on {spec.survey!r}")
    cols = set(catalogue_columns(catalog))
    missing_bands = [b for b in spec.bands if b not in cols]
    if missing_bands:
        raise InputError(f"catalogue {catalog} lacks {len(missing_bands)} band(s) of model {model.uri} "
                         f"(survey {spec.survey!r}): {', '.join(missing_bands[:8])}"
                         f"{' …' if len(missing_bands) > 8 else ''} — is it another survey's catalogue?")
    needed = [id_column, *PASSTHROUGH] + spec.required_columns()
    missing = [c for c in needed if c not in cols]
    if missing:
        raise InputError(f"catalogue {catalog} lacks {len(missing)} column(s) model {model.uri} needs: "
                         f"{', '.join(missing[:8])}{' …' if len(missing) > 8 else ''}")
    fields = parse_fields(fields_arg, available, catalog)
    return {"fields": fields, "columns": list(dict.fromkeys(needed)), "manifest": man}


# =============================================================================================
# the scores directory: recovery, per-Field commit, manifest
# =============================================================================================
def recover_scores(out: str | Path) -> list[str]:
    """Undo what a killed job left in the scores directory `out`: roll every journaled Field
    commit forward, restore a Field left as ``_old-<token>-Field=N`` by the protocol before
    journals, delete staging directories of dead processes. Returns notes for the log."""
    out = location(out)
    return recover_children(out) + remove_stale_staging(out)


def commit_field(staging: str | Path, out: str | Path, field_value: int, token: str) -> Path:
    """Swap ``<staging>/Field=N`` in as ``<out>/Field=N`` (`io.commit.commit_together`; its journal
    lies in `out`). A Field with no staged rows (an empty input partition) ends as an empty
    directory."""
    name = f"{PARTITION}={field_value}"
    src, dst = location(staging) / name, location(out) / name
    store(src).mkdirs(src)
    commit_together([(src, dst)], token)
    return dst


def read_scores_manifest(out: str | Path) -> dict:
    """The scores manifest; an empty one when absent; `InputError` when unreadable (a job must
    not take it for "nothing scored yet")."""
    return read_manifest(out, "scores manifest") or {"manifest_version": MANIFEST_VERSION, "fields": {}}


def write_scores_manifest(out: str | Path, manifest: dict) -> None:
    """Replace the scores manifest atomically (readers see the old or the new one, never half)."""
    write_manifest(out, manifest, KIND)


# =============================================================================================
# Spark parts
# =============================================================================================
def parquet_rows_per_field(path: str | Path, fields: list[int]) -> dict[int, int]:
    """Rows per ``Field=N`` partition of the Parquet directory `path` (only `fields`), from the
    files' footers alone."""
    return plan_units(path, fields)[1]


@dataclass
class JobResult:
    """What `score_fields` did: rows committed per Field, rows in/out, seconds per step, the
    scores manifest as written."""

    fields: dict = field(default_factory=dict)
    rows_in: int = 0
    rows_out: int = 0
    seconds: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    units: int = 0


def score_units(spark, catalog: str | Path, fields: list[int], model: ResolvedModel, columns: list[str],
                opts: ScoreOptions, staging: Path, scored_at: _dt.datetime, token: str,
                batch_rows: int = BATCH_ROWS) -> tuple[dict[int, int], list[dict]]:
    """Plan the work units of `fields` and run them as Spark tasks (`estimate.tasks`): returns the
    rows per Field the catalogue's footers hold and the tasks' `UnitResult`s (as dicts)."""
    sc = spark.sparkContext
    units, meta_in = plan_units(catalog, fields, min_units=2 * sc.defaultParallelism)
    if not units:
        return meta_in, []
    parts_bc = sc.broadcast(model.ensemble.to_parts())
    provenance = {"model_name": model.name, "model_version": str(model.version), "model_run_id": model.run_id,
                  "scored_at": scored_at}
    # the worker cache key names the synthetic filters too: same model, other filters = other ensemble
    sed = model.ensemble.sed
    key = model.key + ("|" + ",".join(sed.observed) if sed is not None else "")
    cols, stage = [c for c in columns if c != PARTITION], str(staging)

    def run(it):
        return run_units(it, key, parts_bc, opts, cols, stage, provenance, token, batch_rows)

    sc.setJobDescription(f"score {len(units)} units of Fields {','.join(map(str, fields))}")
    results = sc.parallelize(units, len(units)).mapPartitions(run).collect()
    parts_bc.unpersist()
    return meta_in, results


def score_fields(spark, catalog: str | Path, out: str | Path, fields: list[int], model: ResolvedModel,
                 columns: list[str], opts: ScoreOptions = ScoreOptions(), catalog_manifest: dict | None = None,
                 scored_at: _dt.datetime | None = None, echo=log.info, after_commit=None,
                 batch_rows: int | None = None) -> JobResult:
    """Score the chosen Fields of `catalog` into `out` (staged, checked, committed per Field; see
    the module docstring) through the staged-job skeleton (`io.staged.run_staged`). `columns`:
    the catalogue columns to read (`check_catalogue`); `catalog_manifest`: the catalogue's
    manifest, whose per-Field fingerprints go into the scores manifest.

    Reusable by jobs/reprocess.py: pass the subset of Fields to (re)score. `after_commit(field)`
    is called after each Field's commit (tests inject failures there)."""
    job = ScoreJob(spark, location(catalog).absolute(), location(out).absolute(), fields, model, columns, opts,
                   catalog_manifest or {}, scored_at or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0),
                   echo, after_commit, batch_rows or BATCH_ROWS)
    run_staged(job, echo)
    return job.res


@dataclass
class ScoreJob:
    """Scoring as a staged job: Spark tasks score the Fields' work units into one staging
    directory; per Field the rows in the catalogue = read = scored = staged and the ID checksums
    agree; each Field is then committed on its own, its manifest entry written after its commit."""
    spark: object
    catalog: object
    out: object
    fields: list
    model: ResolvedModel
    columns: list
    opts: ScoreOptions
    catalog_manifest: dict
    scored_at: _dt.datetime
    echo: object
    after_commit: object
    batch_rows: int
    res: JobResult = field(default_factory=JobResult)
    manifest: dict = field(default_factory=dict)
    name: str = "score"

    @property
    def targets(self) -> list:
        return [self.out]

    def recover(self, target) -> list[str]:
        store(target).mkdirs(target)
        notes = recover_scores(target)
        self.manifest = read_scores_manifest(target)      # unreadable: an InputError before any work
        return notes

    def run(self, staging: dict, token: str) -> tuple[dict, list[dict]]:
        t0 = time.perf_counter()
        st = staging[self.out]
        arrow_fs(st)        # the executors write through pyarrow: a store it cannot open fails here
        meta_in, results = score_units(self.spark, self.catalog, self.fields, self.model, self.columns, self.opts,
                                       st, self.scored_at, token, self.batch_rows)
        self.res.seconds["score_write"] = round(time.perf_counter() - t0, 3)
        phases: dict = {}
        for r in results:
            for k, v in r["seconds"].items():
                phases[k] = phases.get(k, 0.0) + v
        self.res.seconds["python_workers"] = {k: round(v, 3) for k, v in sorted(phases.items())}
        self.res.units = len(results)
        self.res.rows_in = sum(meta_in.values())
        self.res.rows_out = sum(r["rows_out"] for r in results)
        return meta_in, results

    def account(self, result, staging: dict) -> None:
        meta_in, results = result
        staged = parquet_rows_per_field(staging[self.out], self.fields)
        for f in self.fields:
            mine = [r for r in results if r["field"] == f]
            check_rows({"rows in the catalogue": meta_in.get(f, 0), "rows read": sum(r["rows_in"] for r in mine),
                        "rows scored": sum(r["rows_out"] for r in mine), "rows staged": staged.get(f, 0)},
                       f"Field {f}", (sum(r["idsum_in"] for r in mine), sum(r["idsum_out"] for r in mine)))

    def commit(self, result, staging: dict, token: str) -> None:
        meta_in, _ = result
        t1 = time.perf_counter()
        out, fs, manifest, model, opts = self.out, store(self.out), self.manifest, self.model, self.opts
        cat_fields = self.catalog_manifest.get("fields", {})
        cat_sha = manifest_sha256(self.catalog)
        fs.delete(out / SUCCESS)
        for f in self.fields:
            commit_field(staging[out], out, f, token)
            rows = meta_in.get(f, 0)
            manifest.setdefault("fields", {})[str(f)] = {
                "rows": rows, "scored_at": self.scored_at.isoformat(), "model": model.provenance(),
                "mc_samples": opts.mc_samples, "mc_seed": opts.mc_seed, "min_bands": opts.min_bands,
                "catalog": str(self.catalog), "catalog_fingerprint": (cat_fields.get(str(f)) or {}).get("fingerprint"),
                "catalog_manifest_sha256": cat_sha,
            }
            manifest.update(manifest_version=MANIFEST_VERSION, updated_at=self.scored_at.isoformat(),
                            quality_flags={str(k): v for k, v in QUALITY_FLAGS.items()})
            write_scores_manifest(out, manifest)
            self.res.fields[f] = rows
            self.echo(f"score: committed Field {f}: {rows} rows")
            if self.after_commit is not None:
                self.after_commit(f)
        manifest["last_job"] = {"scored_at": self.scored_at.isoformat(), "fields": self.fields,
                                "model": model.provenance(), "rows": sum(self.res.fields.values())}
        write_scores_manifest(out, manifest)
        fs.write_bytes(out / SUCCESS, (json.dumps(manifest["last_job"], default=str) + "\n").encode())
        self.res.seconds["commit"] = round(time.perf_counter() - t1, 3)
        self.res.manifest = manifest


# =============================================================================================
# the job
# =============================================================================================
@dataclass
class JobOptions:
    """jobs/score.py's options (see its --help)."""

    catalog: str
    out: str
    model: str
    fields: str | None = None
    mc_samples: int = 0
    mc_seed: int = 0
    min_bands: int = DEFAULT_MIN_BANDS
    master: str | None = None
    batch_size: int | None = None
    coverage: bool = False
    survey: str | None = None       # must be the model's survey; needed when its file is not packaged
    synthetic_filters: tuple = ()   # more synthetic magnitudes (models with an SED network)


def model_survey(model: ResolvedModel, requested: str | None, catalog: str | None = None):
    """The survey to score `catalog` with `model` by the one rule (`survey.resolve_survey`: the
    job's --survey, the catalogue manifest's and the model's must agree)."""
    return resolve_survey(requested, model=model.ensemble.feature_spec.survey,
                          **(recorded_survey(catalog) if catalog else {}))


def prepare(opts: JobOptions) -> tuple[ResolvedModel, dict]:
    """Every check that can fail on user input, before Spark starts."""
    if opts.mc_samples < 0:
        raise InputError(f"--mc-samples must be >= 0, got {opts.mc_samples}")
    if opts.min_bands < 0:
        raise InputError(f"--min-bands must be >= 0, got {opts.min_bands}")
    if opts.batch_size is not None and opts.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {opts.batch_size}")
    if not store(opts.catalog).exists(location(opts.catalog)):
        raise InputError(f"catalogue not found: {opts.catalog} (run jobs/ingest.py first)")
    check_job_paths({"--catalog": opts.catalog}, {"--out": (opts.out, "scores")})
    model = resolve_model(opts.model)
    model.ensemble = model.ensemble.with_synthetic_filters(opts.synthetic_filters)
    survey = model_survey(model, opts.survey, opts.catalog)
    id_column = survey.id_column
    checked = check_catalogue(opts.catalog, model, opts.fields, id_column)
    checked["id_column"] = id_column
    checked["survey"] = survey
    return model, checked


def run_scoring(opts: JobOptions, spark=None, echo=log.info, after_commit=None) -> dict:
    """The whole job: checks, Spark (started here unless `spark` is given), `score_fields`,
    optional coverage. Returns the summary also printed as ``score-result: {…}``."""
    t_all = time.perf_counter()
    t_early = start_spark_for((opts.catalog, opts.out), "galaxy_spark-score", opts.master) if spark is None else 0.0
    model, checked = prepare(opts)
    id_column = checked["id_column"]
    echo(f"score: model {model.uri} -> {model.name} version {model.version} (run {model.run_id}, "
         f"preset {model.ensemble.info.get('preset')}, survey {model.ensemble.feature_spec.survey})")
    echo(f"score: catalogue {opts.catalog}, Fields {','.join(map(str, checked['fields']))}; "
         f"mc_samples={opts.mc_samples}")
    t0 = time.perf_counter()
    own = spark is None
    if own:
        from galaxy_spark.spark import get_spark

        spark = get_spark("galaxy_spark-score", master=opts.master)
    t_spark = time.perf_counter() - t0 + t_early
    try:
        t0 = time.perf_counter()
        res = score_fields(spark, opts.catalog, opts.out, checked["fields"], model, checked["columns"],
                           ScoreOptions(opts.mc_samples, opts.mc_seed, opts.min_bands, id_column),
                           checked["manifest"], echo=echo, after_commit=after_commit, batch_rows=opts.batch_size)
        t_job = time.perf_counter() - t0
        coverage = None
        if opts.coverage:
            coverage = coverage_report_spark(spark, opts.catalog, opts.out, checked["fields"], checked["survey"])
    finally:
        if own:
            spark.stop()
    if res.rows_in != res.rows_out:  # score_fields already refused to commit; belt and braces
        raise GalaxySparkError(f"row accounting mismatch: {res.rows_in} in, {res.rows_out} out")
    summary = {
        "model": model.provenance(), "catalog": str(opts.catalog), "out": str(opts.out),
        "fields": {str(k): v for k, v in res.fields.items()}, "rows_in": res.rows_in, "rows_out": res.rows_out,
        "mc_samples": opts.mc_samples, "seconds": {"spark_start": round(t_spark, 3), "job": round(t_job, 3),
                                                  **res.seconds, "total": round(time.perf_counter() - t_all, 3)},
        "rows_per_s": round(res.rows_out / t_job, 1) if t_job > 0 else None,
    }
    if coverage is not None:
        summary["coverage"] = coverage
    echo(f"score: {res.rows_in} rows in = {res.rows_out} rows scored "
         f"({', '.join(f'Field {k}: {v}' for k, v in res.fields.items())}); "
         f"job {t_job:.1f}s ({summary['rows_per_s']} rows/s) after Spark start {t_spark:.1f}s")
    if coverage is not None:
        echo("score: test-split coverage " + json.dumps(coverage))
    echo("score-result: " + json.dumps(summary, default=str))
    return summary
