"""Incremental, idempotent, crash-safe rescoring for a scheduler (jobs/reprocess.py).

A run, in order (docs/reprocess.md):

1. **Input checks** (paths) and the **lock** ``<scores>/_reprocess.lock`` (`run_lock`, a
   `galaxy_spark.io.lock.RunLock`): created with ``O_CREAT|O_EXCL``, holding pid, host, process
   start time, run id and start time. A lock whose process is gone (same host: pid dead, or the
   pid now belongs to another process) or, for a lock taken on another host, older than
   ``--lock-max-age``, is stale and is broken under a `flock` guard (so two runs can never both
   break it). A live lock → `LockHeldError` (exit 75), or poll for ``--wait`` seconds first. The
   lock is released when the run ends, on an error, SIGINT or SIGTERM.
2. The **ledger** ``<scores>/_ledger.jsonl`` is read and validated (`open_ledger`, an
   `io.lock.Ledger`): an unparseable line is a `LedgerError` (exit 2) before anything is planned
   or rescored.
3. `job.recover_scores` rolls forward any Field commit a killed run left journaled but unfinished.
4. The **plan** (`plan.make_plan`, driver only, no Spark, no model download): the model URI is
   resolved to a pinned name/version/run id through the MLflow client; for each catalogue Field the
   scores manifest entry is compared with now — model, scoring options, input fingerprint (the
   ingest manifest's content fingerprint, else a fingerprint of the Field's files), row counts
   from Parquet footers of the catalogue and of the scores. Fields in the scores but gone from the
   catalogue are kept with a warning, or removed with ``--prune``.
5. **Execute**: Spark starts only if something needs rescoring; each Field is rescored on its own
   by `job.score_fields` (staged, row-count and ID-checksum checked, committed by the journaled
   commit of `galaxy_spark.io.commit`), then its manifest entry gets the input fingerprint and a
   ledger record is appended with fsync. A Field that fails is recorded and the others still run
   (exit 1).

Exit codes: 0 done or nothing to do, 1 a Field failed while rescoring, 2 bad input or
configuration (including a corrupt ledger), 75 (EX_TEMPFAIL) the lock is held by a live run.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from galaxy_spark.errors import InputError
from galaxy_spark.estimate import job as J
from galaxy_spark.estimate.batch import DEFAULT_MIN_BANDS, PARTITION, ScoreOptions
from galaxy_spark.estimate.plan import FieldPlan, Plan, make_plan, resolve_ref
from galaxy_spark.io.fs import glob, location, start_spark_for, store
from galaxy_spark.io.lock import Ledger, RunLock
from galaxy_spark.io.paths import check_job_paths
from galaxy_spark.model.registry import ModelRef, resolve_model
from galaxy_spark.log import get_logger

log = get_logger(__name__)

LEDGER = "_ledger.jsonl"
LOCK = "_reprocess.lock"          # its flock guard: _reprocess.lock.guard
LEDGER_VERSION = 1

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2
# EXIT_LOCKED (75, EX_TEMPFAIL: try again later) comes with the lock (galaxy_spark.io.lock)

DEFAULT_LOCK_MAX_AGE_S = 24 * 3600
PAUSE_ENV = "GALAXY_SPARK_REPROCESS_PAUSE_AFTER_FIELD"   # test hook: seconds to sleep after each Field

ACTIONS = ("rescored", "skipped", "failed", "kept", "pruned")


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _iso(t: _dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds")


def open_ledger(scores: str | Path) -> Ledger:
    """The run ledger of a scores directory, ``<scores>/_ledger.jsonl``."""
    return Ledger(location(scores) / LEDGER,
                  on_corrupt="Nothing was planned or rescored (the scores are intact).")


def run_lock(scores: str | Path, run_id: str, max_age_s: float | None = DEFAULT_LOCK_MAX_AGE_S,
             echo=log.info) -> RunLock:
    """The lock that keeps two reprocess runs on one scores directory apart, ``<scores>/_reprocess.lock``."""
    return RunLock(location(scores) / LOCK, run_id, max_age_s, echo, job="reprocess")


@dataclass
class ReprocessOptions:
    """jobs/reprocess.py's options (see its --help); seconds for `wait_s` and `lock_max_age_s`."""

    catalog: str
    scores: str
    model: str
    dry_run: bool = False
    force: bool = False
    prune: bool = False
    wait_s: float = 0.0
    lock_max_age_s: float | None = DEFAULT_LOCK_MAX_AGE_S
    mc_samples: int = 0
    mc_seed: int = 0
    min_bands: int = DEFAULT_MIN_BANDS
    master: str | None = None
    survey: str | None = None       # must be the model's survey (jobs/score.py --survey)
    batch_size: int | None = None   # rows per Arrow batch (jobs/score.py --batch-size)


def prune_field(scores: Path, f: int, token: str) -> None:
    """Drop the manifest entry, then move the directory aside and delete it. A crash in between
    leaves an orphan directory (pruned again next run) or a `_pruned-*` leftover (removed)."""
    man = J.read_scores_manifest(scores)
    if str(f) in (man.get("fields") or {}):
        del man["fields"][str(f)]
        J.write_scores_manifest(scores, man)
    d = scores / f"{PARTITION}={f}"
    fs = store(scores)
    if fs.exists(d):
        aside = scores / f"_pruned-{token}-{PARTITION}={f}"
        fs.rename(d, aside)
        fs.delete(aside)


def _remove_prune_leftovers(scores: Path) -> list[str]:
    notes = []
    fs = store(scores)
    for d in glob(fs, scores, f"_pruned-*-{PARTITION}=*"):
        fs.delete(d)
        notes.append(f"removed {d.name} left by an interrupted --prune")
    return notes


# =============================================================================================
# the run
# =============================================================================================
@dataclass
class RunResult:
    """A run's plan and outcome: rows per rescored Field, error text per failed Field, seconds."""

    run_id: str
    plan: Plan
    rescored: dict = field(default_factory=dict)      # field -> rows
    failed: dict = field(default_factory=dict)        # field -> error text
    seconds: dict = field(default_factory=dict)
    dry_run: bool = False

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.failed else EXIT_OK

    def summary(self) -> dict:
        return {"run_id": self.run_id, "dry_run": self.dry_run, "model": self.plan.model.as_dict(),
                "plan": [asdict(p) for p in self.plan.fields],
                "counts": {a: len(self.plan.by_action(a)) for a in ("rescore", "skip", "keep", "prune")},
                "rescored": {str(k): v for k, v in self.rescored.items()},
                "failed": {str(k): v for k, v in self.failed.items()},
                "seconds": self.seconds, "exit_code": self.exit_code}


def _record(run_id, p: FieldPlan, ref: ModelRef, action: str, outcome: str, start, end, rows_in=None,
            rows_out=None, error=None) -> dict:
    rec = {"ledger_version": LEDGER_VERSION, "run_id": run_id, "field": p.field, "action": action,
           "reason": p.reason, "input_fingerprint": p.fingerprint,
           "recorded_fingerprint": p.recorded_fingerprint,
           "model": {"name": ref.name, "version": ref.version, "run_id": ref.run_id, "uri": ref.uri},
           "scored_by": p.scored_by, "rows_in": rows_in, "rows_out": rows_out,
           "start": _iso(start), "end": _iso(end), "seconds": round((end - start).total_seconds(), 3),
           "outcome": outcome, "host": socket.gethostname(), "pid": os.getpid()}
    if error:
        rec["error"] = error
    return rec


def _check_paths(opts: ReprocessOptions) -> tuple[Path, Path]:
    catalog, scores = location(opts.catalog).absolute(), location(opts.scores).absolute()
    if not store(catalog).is_dir(catalog):
        raise InputError(f"catalogue not found: {catalog} (run jobs/ingest.py first)")
    check_job_paths({"--catalog": catalog}, {"--scores": (scores, "scores")})
    if not J.catalogue_fields(catalog):
        raise InputError(f"catalogue {catalog} has no {PARTITION}=N partitions")
    for name, v in (("--mc-samples", opts.mc_samples), ("--min-bands", opts.min_bands)):
        if v < 0:
            raise InputError(f"{name} must be >= 0, got {v}")
    if opts.wait_s < 0:
        raise InputError(f"--wait must be >= 0, got {opts.wait_s}")
    return catalog, scores


def run_reprocess(opts: ReprocessOptions, spark=None, echo=log.info) -> RunResult:
    """The whole job. Raises LockHeldError (75), LedgerError/InputError (2); returns a RunResult
    whose exit_code is 1 when some Field failed (the others are committed and recorded)."""
    t_all = time.perf_counter()
    if spark is None:
        start_spark_for((opts.catalog, opts.scores), "galaxy_spark-reprocess", opts.master)
    catalog, scores = _check_paths(opts)
    run_id = _now().strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    ledger = open_ledger(scores)
    if opts.dry_run:
        ledger.read()
        ref, _ = resolve_ref(opts.model)
        plan = make_plan(catalog, scores, ref, opts)
        res = RunResult(run_id, plan, dry_run=True)
        res.seconds = {"before_spark": round(time.perf_counter() - t_all, 3), "spark_start": 0.0, "rescore": 0.0,
                       "total": round(time.perf_counter() - t_all, 3)}
        echo(f"reprocess: DRY RUN (nothing is written) — model {opts.model} → {ref.name} v{ref.version}")
        if store(scores).exists(scores / LOCK):
            echo(f"reprocess: note: {run_lock(scores, run_id).describe()}")
        _print_plan(plan, echo)
        echo("reprocess-result: " + json.dumps(res.summary(), default=str))
        return res
    with run_lock(scores, run_id, opts.lock_max_age_s, echo).hold(opts.wait_s):   # released on SIGTERM too
        return _run_locked(opts, catalog, scores, run_id, ledger, spark, echo, t_all)


def _print_plan(plan: Plan, echo) -> None:
    echo(f"reprocess: plan: {len(plan.by_action('rescore'))} to rescore, {len(plan.by_action('skip'))} up to date"
         + (f", {len(plan.by_action('keep'))} gone from the catalogue (kept)" if plan.by_action("keep") else "")
         + (f", {len(plan.by_action('prune'))} to prune" if plan.by_action("prune") else ""))
    for ln in plan.lines():
        echo("reprocess:" + ln[1:])
    for p in plan.by_action("keep"):
        echo(f"reprocess: WARNING: Field {p.field} has scores ({p.rows_scores} rows) but is not in the "
             f"catalogue any more; kept. Run with --prune to remove them.")


def _run_locked(opts, catalog: Path, scores: Path, run_id: str, ledger: Ledger, spark, echo, t_all) -> RunResult:
    ledger.read()                                   # corrupt → LedgerError before any work
    for note in J.recover_scores(scores) + _remove_prune_leftovers(scores):
        echo(f"reprocess: {note}")
    ref, full_model = resolve_ref(opts.model)
    plan = make_plan(catalog, scores, ref, opts)
    res = RunResult(run_id, plan)
    echo(f"reprocess: run {run_id}; model {opts.model} → {ref.name} v{ref.version} (run {ref.run_id})")
    _print_plan(plan, echo)
    todo = plan.by_action("rescore")
    model = checked = None
    if todo:       # input checks for the work before any record is written (a bad input → exit 2)
        model = full_model or resolve_model(ref.pinned)
        model.uri = opts.model
        id_column = J.model_survey(model, opts.survey, str(catalog)).id_column
        checked = J.check_catalogue(catalog, model, ",".join(str(p.field) for p in todo), id_column)
        checked["id_column"] = id_column
    now = _now()
    for p in plan.by_action("skip"):
        ledger.append(_record(run_id, p, ref, "skipped", "ok", now, now, p.rows_catalog, p.rows_scores))
    for p in plan.by_action("keep"):
        ledger.append(_record(run_id, p, ref, "kept", "ok", now, now, None, p.rows_scores))
    token = uuid.uuid4().hex[:12]
    for p in plan.by_action("prune"):
        t0 = _now()
        prune_field(scores, p.field, token)
        ledger.append(_record(run_id, p, ref, "pruned", "ok", t0, _now(), None, p.rows_scores))
        echo(f"reprocess: pruned Field {p.field} ({p.rows_scores} rows of scores)")
    res.seconds["before_spark"] = round(time.perf_counter() - t_all, 3)
    res.seconds["spark_start"] = 0.0
    t_work = time.perf_counter()
    if todo:
        sopts = ScoreOptions(opts.mc_samples, opts.mc_seed, opts.min_bands, checked["id_column"])
        own = spark is None
        t0 = time.perf_counter()
        if own:
            from galaxy_spark.spark import get_spark

            spark = get_spark("galaxy_spark-reprocess", master=opts.master)
        res.seconds["spark_start"] = round(time.perf_counter() - t0, 3)
        t_work = time.perf_counter()
        scored_at = _now().replace(microsecond=0)
        pause = float(os.environ.get(PAUSE_ENV) or 0)
        completed = False
        try:
            store(scores).delete(scores / J.SUCCESS)
            for p in todo:
                _rescore_field(p, spark, catalog, scores, model, checked, sopts, scored_at, opts, run_id, ref,
                               ledger, res, echo)
                if pause > 0:
                    time.sleep(pause)
            completed = True
        finally:
            if not completed:       # interrupted: score_fields' _SUCCESS of the last Field must not stand
                store(scores).delete(scores / J.SUCCESS)
            if own:
                spark.stop()
    res.seconds["rescore"] = round(time.perf_counter() - t_work, 3)
    res.seconds["total"] = round(time.perf_counter() - t_all, 3)
    if res.failed:      # score_fields marks each of its own jobs; the run as a whole did not complete
        store(scores).delete(scores / J.SUCCESS)
    elif todo:
        store(scores).write_bytes(scores / J.SUCCESS, (json.dumps({"reprocess_run_id": run_id, "model": ref.as_dict(),
                                                                 "rescored": sorted(res.rescored)}) + "\n").encode())
    echo(_summary_line(plan, res))
    echo("reprocess-result: " + json.dumps(res.summary(), default=str))
    return res


def _rescore_field(p, spark, catalog, scores, model, checked, sopts, scored_at, opts, run_id, ref, ledger,
                   res: RunResult, echo) -> None:
    """Score one Field through `job.score_fields` (staged, checked, committed), mark its manifest
    entry with the input fingerprint and this run, and record the outcome in the ledger: a failure
    is recorded and the other Fields still run; an interrupt is recorded and stops the run."""
    t0 = _now()
    try:
        jr = J.score_fields(spark, catalog, scores, [p.field], model, checked["columns"], sopts,
                            checked["manifest"], scored_at=scored_at, batch_rows=opts.batch_size,
                            echo=lambda m: echo(m.replace("score: ", "reprocess: ", 1)))
        man = J.read_scores_manifest(scores)
        man["fields"][str(p.field)]["input_fingerprint"] = p.fingerprint
        man["fields"][str(p.field)]["reprocess_run_id"] = run_id
        J.write_scores_manifest(scores, man)
    except KeyboardInterrupt:                  # SIGINT/SIGTERM mid-Field: say so, then stop
        ledger.append(_record(run_id, p, ref, "failed", "interrupted", t0, _now(), p.rows_catalog,
                              None, "interrupted (SIGINT/SIGTERM); previous scores kept"))
        raise
    except Exception as e:  # noqa: BLE001 - recorded, the other Fields still run
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        res.failed[p.field] = f"{type(e).__name__}: {msg}"[:500]
        ledger.append(_record(run_id, p, ref, "failed", "error", t0, _now(), p.rows_catalog, None,
                              res.failed[p.field]))
        echo(f"reprocess: Field {p.field} FAILED: {res.failed[p.field]} (its previous scores are kept)")
        return
    res.rescored[p.field] = jr.rows_out
    t1 = _now()
    ledger.append(_record(run_id, p, ref, "rescored", "ok", t0, t1, jr.rows_in, jr.rows_out))
    echo(f"reprocess: Field {p.field} rescored: {jr.rows_in} rows in = {jr.rows_out} out "
         f"({(t1 - t0).total_seconds():.1f} s)")


def _summary_line(plan, res: RunResult) -> str:
    n = {a: len(plan.by_action(a)) for a in ("rescore", "skip", "keep", "prune")}
    return (f"reprocess: summary: {len(plan.fields)} Fields — {len(res.rescored)} rescored "
         f"({sum(res.rescored.values())} rows), {n['skip']} skipped, {len(res.failed)} failed"
         + (f", {n['keep']} kept (gone from the catalogue)" if n["keep"] else "")
         + (f", {n['prune']} pruned" if n["prune"] else "")
         + f"; before Spark {res.seconds['before_spark']:.1f} s, Spark start {res.seconds['spark_start']:.1f} s, "
           f"rescoring {res.seconds['rescore']:.1f} s, total {res.seconds['total']:.1f} s")


