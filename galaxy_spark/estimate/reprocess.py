"""Incremental, idempotent, crash-safe rescoring for a scheduler (jobs/reprocess.py).

A run, in order (docs/reprocess.md):

1. **Input checks** (paths) and the **lock** ``<scores>/_reprocess.lock`` (`RunLock`): created with
   ``O_CREAT|O_EXCL``, holding pid, host, process start time, run id and start time. A lock whose
   process is gone (same host: pid dead, or the pid now belongs to another process) or, for a lock
   taken on another host, older than ``--lock-max-age``, is stale and is broken under a `flock`
   guard (so two runs can never both break it). A live lock → `LockHeldError` (exit 75), or poll
   for ``--wait`` seconds first.
2. The **ledger** ``<scores>/_ledger.jsonl`` is read and validated (`Ledger`): an unparseable line
   is a `LedgerError` (exit 2) before anything is planned or rescored.
3. `scoring.recover` restores any Field a killed run left between its two commit renames.
4. The **plan** (`make_plan`, driver only, no Spark, no model download): the model URI is resolved
   to a pinned name/version/run id through the MLflow client; for each catalogue Field the
   scores manifest entry is compared with now — model, scoring options, input fingerprint (the
   ingest manifest's content fingerprint, else a fingerprint of the Field's files), row counts
   from Parquet footers of the catalogue and of the scores. Fields in the scores but gone from the
   catalogue are kept with a warning, or removed with ``--prune``.
5. **Execute**: Spark starts only if something needs rescoring; each Field is rescored on its own
   by `scoring.score_fields` (staged, row-count and ID-checksum checked, committed by two
   renames), then its manifest entry gets the input fingerprint and a ledger record is appended
   with fsync. A Field that fails is recorded and the others still run (exit 1).

Exit codes: 0 done or nothing to do, 1 a Field failed while rescoring, 2 bad input or
configuration (including a corrupt ledger), 75 (EX_TEMPFAIL) the lock is held by a live run.
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from galaxy_spark.io.procs import pid_alive
from galaxy_spark.estimate import scoring as S
from galaxy_spark.model.registry import ModelRef, ResolvedModel, pin_model, resolve_model
from galaxy_spark.io.commit import fsync_dir
from galaxy_spark.io.paths import check_job_paths
from galaxy_spark.errors import GalaxySparkError, InputError

LEDGER = "_ledger.jsonl"
LOCK = "_reprocess.lock"
LOCK_GUARD = "_reprocess.lock.guard"
LEDGER_VERSION = 1

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2
EXIT_LOCKED = 75            # EX_TEMPFAIL (sysexits.h): try again later

DEFAULT_LOCK_MAX_AGE_S = 24 * 3600
UNREADABLE_LOCK_GRACE_S = 30.0   # an empty/unparseable lock younger than this may be being written
PAUSE_ENV = "GALAXY_SPARK_REPROCESS_PAUSE_AFTER_FIELD"   # test hook: seconds to sleep after each Field

ACTIONS = ("rescored", "skipped", "failed", "kept", "pruned")


class LockHeldError(GalaxySparkError):
    exit_code = EXIT_LOCKED


class LedgerError(InputError):
    exit_code = EXIT_INPUT


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _iso(t: _dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds")


# =============================================================================================
# ledger
# =============================================================================================
class Ledger:
    """Append-only JSON lines, one record per Field per run; each append is one write + fsync."""

    REQUIRED = ("run_id", "field", "action")

    def __init__(self, scores: str | Path):
        self.path = Path(scores) / LEDGER

    def read(self) -> list[dict]:
        """Every record; any line that is not a JSON record with run_id/field/action → LedgerError."""
        if not self.path.exists():
            return []
        try:
            raw = self.path.read_bytes()
        except OSError as e:
            raise LedgerError(f"ledger {self.path} cannot be read: {e}") from None
        out = []
        for n, line in enumerate(raw.split(b"\n"), 1):
            if not line.strip():
                continue
            problem = None
            try:
                rec = json.loads(line.decode("utf-8"))
                if not isinstance(rec, dict):
                    problem = "not a JSON object"
                else:
                    miss = [k for k in self.REQUIRED if k not in rec]
                    if miss:
                        problem = f"missing {', '.join(miss)}"
            except (UnicodeDecodeError, ValueError) as e:
                problem = f"not valid JSON ({e})"
            if problem:
                snippet = line[:80].decode("utf-8", "replace")
                raise LedgerError(
                    f"ledger {self.path} is corrupt: line {n} is {problem}: {snippet!r}. Nothing was "
                    f"planned or rescored (the scores are intact). Inspect that line and fix or delete it, "
                    f"or move the ledger aside to start a new one, then rerun.")
            out.append(rec)
        return out

    def append(self, rec: dict) -> None:
        new = not self.path.exists()
        line = (json.dumps(rec, sort_keys=True, default=str) + "\n").encode("utf-8")
        fd = os.open(str(self.path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            fsync_dir(self.path.parent)


# =============================================================================================
# lock
# =============================================================================================
def _proc_start(pid: int) -> str | None:
    """Start time of `pid` in clock ticks since boot (Linux /proc), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class RunLock:
    """Exclusive lock file in the scores directory (see the module docstring)."""

    def __init__(self, scores: str | Path, run_id: str, max_age_s: float | None = DEFAULT_LOCK_MAX_AGE_S,
                 echo=print):
        self.dir = Path(scores)
        self.path = self.dir / LOCK
        self.run_id = run_id
        self.max_age_s = max_age_s if max_age_s and max_age_s > 0 else None
        self.echo = echo
        self.held = False

    def _content(self) -> bytes:
        now = _now()
        pid = os.getpid()
        return (json.dumps({"pid": pid, "host": socket.gethostname(), "proc_start": _proc_start(pid),
                            "run_id": self.run_id, "started_at": _iso(now), "started_unix": now.timestamp()},
                           sort_keys=True) + "\n").encode()

    def _try_create(self) -> bool:
        try:
            fd = os.open(str(self.path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, self._content())
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.dir)
        self.held = True
        return True

    def read(self) -> tuple[dict | None, float | None]:
        """(the lock's JSON or None when unreadable, its age in seconds) — (None, None) when absent."""
        try:
            st = self.path.stat()
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None, None
        age = time.time() - st.st_mtime
        try:
            info = json.loads(data.decode())
            if not isinstance(info, dict):
                info = None
        except (UnicodeDecodeError, ValueError):
            info = None
        if info and isinstance(info.get("started_unix"), (int, float)):
            age = time.time() - info["started_unix"]
        return info, age

    def stale_reason(self, info: dict | None, age: float) -> str | None:
        """Why this lock is stale, or None when it must be respected."""
        if info is None:
            if age > UNREADABLE_LOCK_GRACE_S:
                return f"the lock file is unreadable and {age:.0f} s old"
            return None
        pid, host = info.get("pid"), info.get("host")
        if host == socket.gethostname() and isinstance(pid, int):
            if not pid_alive(pid):
                return f"its process (pid {pid} on {host}) is not running"
            if info.get("proc_start") and _proc_start(pid) not in (None, info["proc_start"]):
                return f"pid {pid} on {host} now belongs to another process"
            return None          # a live process on this host: never broken, whatever its age
        if self.max_age_s is not None and age > self.max_age_s:
            return (f"it was taken on another host ({host}) {age:.0f} s ago, more than the "
                    f"{self.max_age_s:.0f} s maximum age")
        return None

    def _break_stale(self) -> bool:
        """Under an flock guard: re-read, re-check, remove a stale lock and take it. True if taken."""
        gfd = os.open(str(self.dir / LOCK_GUARD), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(gfd, fcntl.LOCK_EX)
            info, age = self.read()
            if age is None:                      # released meanwhile
                return self._try_create()
            reason = self.stale_reason(info, age)
            if reason is None:
                return False
            self.path.unlink(missing_ok=True)
            who = f"run {info.get('run_id')} (pid {info.get('pid')} on {info.get('host')}, " \
                  f"started {info.get('started_at')})" if info else "an unknown run"
            self.echo(f"reprocess: recovered a stale lock {self.path.name} from {who}: {reason}")
            return self._try_create()
        finally:
            os.close(gfd)

    def describe(self) -> str:
        info, age = self.read()
        if age is None:
            return "no lock"
        if not info:
            return f"{self.path} (unreadable, {age:.0f} s old)"
        return (f"{self.path} held by run {info.get('run_id')} (pid {info.get('pid')} on {info.get('host')}, "
                f"started {info.get('started_at')}, {age:.0f} s ago)")

    def acquire(self, wait_s: float = 0.0, poll_s: float = 1.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + max(0.0, wait_s)
        announced = False
        while True:
            if self._try_create() or self._break_stale():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockHeldError(f"another reprocess run holds the lock: {self.describe()}"
                                    f"{f' (waited {wait_s:g} s)' if wait_s else ''}; try again later "
                                    f"(exit {EXIT_LOCKED})")
            if not announced:
                self.echo(f"reprocess: waiting up to {wait_s:g} s for the lock: {self.describe()}")
                announced = True
            time.sleep(min(poll_s, remaining))

    def release(self) -> None:
        if not self.held:
            return
        info, _ = self.read()
        if info and info.get("run_id") == self.run_id:
            self.path.unlink(missing_ok=True)
        self.held = False


# =============================================================================================
# fingerprints and row counts (driver, file metadata only)
# =============================================================================================
def _data_files(d: Path) -> list[Path]:
    """Data files under a partition directory (names starting with `_` or `.` are not data)."""
    if not d.is_dir():
        return []
    out = []
    for p in sorted(d.rglob("*")):
        rel = p.relative_to(d).parts
        if p.is_file() and not any(part.startswith(("_", ".")) for part in rel):
            out.append(p)
    return out


def files_fingerprint(field_dir: Path) -> str:
    """Fingerprint of a Field's files without reading them: relative name, size and mtime (ns).
    Any rewrite changes it (a rewrite with identical bytes too: that only costs a rescore)."""
    h = hashlib.sha256()
    for p in _data_files(field_dir):
        st = p.stat()
        h.update(f"{p.relative_to(field_dir).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return "files:" + h.hexdigest()[:32]


def parquet_rows(field_dir: Path) -> int:
    import pyarrow.parquet as pq

    n = 0
    for p in _data_files(field_dir):
        try:
            n += pq.ParquetFile(str(p)).metadata.num_rows
        except Exception as e:  # noqa: BLE001 - any unreadable footer is an input error
            raise InputError(f"{p} is not readable Parquet: {e}") from None
    return n


def read_catalogue_manifest(catalog: Path) -> dict | None:
    """The ingest manifest, None when absent; present but unreadable is an error (falling back to
    file fingerprints would silently rescore every Field)."""
    p = catalog / S.MANIFEST
    if not p.exists():
        return None
    try:
        man = json.loads(p.read_text())
        if not isinstance(man, dict):
            raise ValueError("not a JSON object")
        return man
    except (OSError, ValueError) as e:
        raise InputError(f"catalogue manifest {p} is unreadable ({e}); re-run jobs/ingest.py or remove it "
                         f"(then the Fields' files are fingerprinted instead)") from None


def input_fingerprint(catalog: Path, f: int, cat_manifest: dict | None) -> str:
    fp = ((cat_manifest or {}).get("fields") or {}).get(str(f), {}).get("fingerprint")
    if fp:
        return f"ingest:{fp}"
    return files_fingerprint(catalog / f"{S.PARTITION}={f}")


def recorded_fingerprint(entry: dict) -> str | None:
    if entry.get("input_fingerprint"):
        return entry["input_fingerprint"]
    if entry.get("catalog_fingerprint"):            # written by jobs/score.py
        return f"ingest:{entry['catalog_fingerprint']}"
    return None


def scores_fields(scores: Path, manifest: dict) -> list[int]:
    out = set(S.catalogue_fields(scores)) if scores.exists() else set()
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


@dataclass
class ReprocessOptions:
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
    min_bands: int = S.DEFAULT_MIN_BANDS
    master: str | None = None


def _short(fp: str | None) -> str:
    return "none" if not fp else (fp.split(":", 1)[0] + ":" + fp.split(":", 1)[-1][:10])


def make_plan(catalog: Path, scores: Path, ref: ModelRef, opts: ReprocessOptions) -> Plan:
    cat_manifest = read_catalogue_manifest(catalog)
    manifest = S.read_manifest(scores)
    entries = manifest.get("fields") or {}
    cat_fields = S.catalogue_fields(catalog)
    plans = []
    for f in cat_fields:
        fp = input_fingerprint(catalog, f, cat_manifest)
        n_cat = parquet_rows(catalog / f"{S.PARTITION}={f}")
        entry = entries.get(str(f))
        sdir = scores / f"{S.PARTITION}={f}"
        p = FieldPlan(f, "skip", "up to date", fp, None, n_cat)
        reasons = []
        if opts.force:
            reasons.append("forced (--force)")
        if entry is None or not sdir.is_dir():
            reasons.append("no scores" if entry is None and not sdir.is_dir() else
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
        sdir = scores / f"{S.PARTITION}={f}"
        rows = parquet_rows(sdir) if sdir.is_dir() else None
        if opts.prune:
            plans.append(FieldPlan(f, "prune", "not in the catalogue any more: removed (--prune)", rows_scores=rows))
        else:
            plans.append(FieldPlan(f, "keep", "not in the catalogue any more: scores kept (--prune removes them)",
                                   rows_scores=rows))
    return Plan(ref, sorted(plans, key=lambda p: p.field))


def prune_field(scores: Path, f: int, token: str) -> None:
    """Drop the manifest entry, then move the directory aside and delete it. A crash in between
    leaves an orphan directory (pruned again next run) or a `_pruned-*` leftover (removed)."""
    man = S.read_manifest(scores)
    if str(f) in (man.get("fields") or {}):
        del man["fields"][str(f)]
        S.write_manifest(scores, man)
    d = scores / f"{S.PARTITION}={f}"
    if d.exists():
        aside = scores / f"_pruned-{token}-{S.PARTITION}={f}"
        os.rename(d, aside)
        shutil.rmtree(aside, ignore_errors=True)


def _remove_prune_leftovers(scores: Path) -> list[str]:
    notes = []
    for d in sorted(scores.glob(f"_pruned-*-{S.PARTITION}=*")):
        shutil.rmtree(d, ignore_errors=True)
        notes.append(f"removed {d.name} left by an interrupted --prune")
    return notes


# =============================================================================================
# the run
# =============================================================================================
@dataclass
class RunResult:
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


class _SigtermToInterrupt:
    """SIGTERM (what schedulers send on timeout) → KeyboardInterrupt, so the lock is released."""

    def __enter__(self):
        self.prev = None
        if threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                raise KeyboardInterrupt("SIGTERM")
            self.prev = signal.signal(signal.SIGTERM, handler)
        return self

    def __exit__(self, *exc):
        if self.prev is not None:
            signal.signal(signal.SIGTERM, self.prev)
        return False


def _check_paths(opts: ReprocessOptions) -> tuple[Path, Path]:
    catalog, scores = Path(opts.catalog).absolute(), Path(opts.scores).absolute()
    if not catalog.is_dir():
        raise InputError(f"catalogue not found: {catalog} (run jobs/ingest.py first)")
    check_job_paths({"--catalog": catalog}, {"--scores": (scores, "scores")})
    if not S.catalogue_fields(catalog):
        raise InputError(f"catalogue {catalog} has no {S.PARTITION}=N partitions")
    for name, v in (("--mc-samples", opts.mc_samples), ("--min-bands", opts.min_bands)):
        if v < 0:
            raise InputError(f"{name} must be >= 0, got {v}")
    if opts.wait_s < 0:
        raise InputError(f"--wait must be >= 0, got {opts.wait_s}")
    return catalog, scores


def run_reprocess(opts: ReprocessOptions, spark=None, echo=print) -> RunResult:
    """The whole job. Raises LockHeldError (75), LedgerError/InputError (2); returns a RunResult
    whose exit_code is 1 when some Field failed (the others are committed and recorded)."""
    t_all = time.perf_counter()
    catalog, scores = _check_paths(opts)
    run_id = _now().strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    ledger = Ledger(scores)
    if opts.dry_run:
        ledger.read()
        ref, _ = resolve_ref(opts.model)
        plan = make_plan(catalog, scores, ref, opts)
        res = RunResult(run_id, plan, dry_run=True)
        res.seconds = {"before_spark": round(time.perf_counter() - t_all, 3), "spark_start": 0.0, "rescore": 0.0,
                       "total": round(time.perf_counter() - t_all, 3)}
        echo(f"reprocess: DRY RUN (nothing is written) — model {opts.model} → {ref.name} v{ref.version}")
        if (scores / LOCK).exists():
            echo(f"reprocess: note: {RunLock(scores, run_id).describe()}")
        _print_plan(plan, echo)
        echo("reprocess-result: " + json.dumps(res.summary(), default=str))
        return res
    lock = RunLock(scores, run_id, opts.lock_max_age_s, echo)
    with _SigtermToInterrupt():
        lock.acquire(opts.wait_s)
        try:
            return _run_locked(opts, catalog, scores, run_id, ledger, spark, echo, t_all)
        finally:
            lock.release()


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
    for note in S.recover(scores) + _remove_prune_leftovers(scores):
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
        id_column = S.survey_id_column(model.ensemble.feature_spec.survey)
        checked = S.check_catalogue(catalog, model, ",".join(str(p.field) for p in todo), id_column)
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
        sopts = S.ScoreOptions(opts.mc_samples, opts.mc_seed, opts.min_bands, checked["id_column"])
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
            (scores / S.SUCCESS).unlink(missing_ok=True)
            for p in todo:
                t0 = _now()
                try:
                    jr = S.score_fields(spark, catalog, scores, [p.field], model, checked["columns"], sopts,
                                        checked["manifest"], scored_at=scored_at,
                                        echo=lambda m: echo(m.replace("score: ", "reprocess: ", 1)))
                    man = S.read_manifest(scores)
                    man["fields"][str(p.field)]["input_fingerprint"] = p.fingerprint
                    man["fields"][str(p.field)]["reprocess_run_id"] = run_id
                    S.write_manifest(scores, man)
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
                    continue
                rows_in, rows_out = jr.rows_in, jr.rows_out
                res.rescored[p.field] = rows_out
                t1 = _now()
                ledger.append(_record(run_id, p, ref, "rescored", "ok", t0, t1, rows_in, rows_out))
                echo(f"reprocess: Field {p.field} rescored: {rows_in} rows in = {rows_out} out "
                     f"({(t1 - t0).total_seconds():.1f} s)")
                if pause > 0:
                    time.sleep(pause)
            completed = True
        finally:
            if not completed:       # interrupted: score_fields' _SUCCESS of the last Field must not stand
                (scores / S.SUCCESS).unlink(missing_ok=True)
            if own:
                spark.stop()
    res.seconds["rescore"] = round(time.perf_counter() - t_work, 3)
    res.seconds["total"] = round(time.perf_counter() - t_all, 3)
    if res.failed:      # score_fields marks each of its own jobs; the run as a whole did not complete
        (scores / S.SUCCESS).unlink(missing_ok=True)
    elif todo:
        (scores / S.SUCCESS).write_text(json.dumps({"reprocess_run_id": run_id, "model": ref.as_dict(),
                                                    "rescored": sorted(res.rescored)}) + "\n")
    n = {a: len(plan.by_action(a)) for a in ("rescore", "skip", "keep", "prune")}
    echo(f"reprocess: summary: {len(plan.fields)} Fields — {len(res.rescored)} rescored "
         f"({sum(res.rescored.values())} rows), {n['skip']} skipped, {len(res.failed)} failed"
         + (f", {n['keep']} kept (gone from the catalogue)" if n["keep"] else "")
         + (f", {n['prune']} pruned" if n["prune"] else "")
         + f"; before Spark {res.seconds['before_spark']:.1f} s, Spark start {res.seconds['spark_start']:.1f} s, "
           f"rescoring {res.seconds['rescore']:.1f} s, total {res.seconds['total']:.1f} s")
    echo("reprocess-result: " + json.dumps(res.summary(), default=str))
    return res


