"""Survey-scale scoring: resolve the model once on the driver, broadcast it, score with mapInPandas.

Flow (jobs/score.py → `run_scoring`):

1. *Before any work*: the model URI is resolved on the driver (`resolve_model`: alias → version
   through the MLflow client, artifacts downloaded, the NumPy `Ensemble` loaded) and the catalogue
   is checked against it (`check_catalogue`: survey, columns, `--fields`) from Parquet metadata
   alone. Every problem is an `InputError` (``error: …``, exit 2) before Spark does anything.
2. The ensemble travels to executors as a broadcast of `Ensemble.to_parts()` (plain arrays and a
   JSON document). An iterator function run by `mapInPandas` rebuilds it once per Python worker
   (module-level cache keyed by model version) and scores Arrow batch by batch. Executors never
   contact MLflow and never import TensorFlow.
3. Output: Parquet partitioned by `Field` (`SCORE_COLUMNS`), one row per input object. A row
   that cannot be scored keeps its ID, gets null estimates and quality flag 1.
4. Commit protocol (`score_fields` → `commit_partition`): Spark writes the chosen Fields into
   ``<out>.staging-<pid>-<token>/`` (a sibling); row counts and an order-independent ID checksum per Field are
   compared with the input; then each Field directory is swapped in by two renames and the
   manifest ``<out>/_manifest.json`` is rewritten (atomically) after each one. ``_SUCCESS`` marks a
   job that committed everything it set out to. A crash leaves every Field either old or new,
   never half written; `recover` (run at the start of every job) undoes a crash between the two
   renames and removes stale staging directories. Names starting with ``_`` are ignored by Spark
   and pyarrow readers.

Monte Carlo uncertainties (`--mc-samples N`): see `mc_estimates`.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_spark.model.ensemble import Ensemble, read_pdf
from galaxy_spark.errors import GalaxySparkError, InputError
from galaxy_spark.features import (MAX_ERROR, FeatureSpec, _band_arrays, build_features, in_test_split,
                                   test_split_filter)
from galaxy_spark.io.commit import remove_stale_staging
from galaxy_spark.io.paths import check_job_paths
from galaxy_spark.model.registry import ResolvedModel, resolve_model
from galaxy_spark.survey import DETECTED

MANIFEST = "_manifest.json"
SUCCESS = "_SUCCESS"
MANIFEST_VERSION = 1
PARTITION = "Field"

# ---- quality flags (bitmask; documented in docs/scoring.md) -------------------------------
FLAG_NOT_SCORABLE = 1     # no detection-band magnitude: every estimate is null
FLAG_FEW_BANDS = 2        # fewer than `min_bands` detected bands (detection band included)
FLAG_OUT_OF_DOMAIN = 4    # some |standardised feature| > DOMAIN_SIGMA for a network's training set
FLAG_STAR = 8             # star_class == 1: the galaxy estimates (z, type, mass) are not meaningful
QUALITY_FLAGS = {FLAG_NOT_SCORABLE: "not scorable (no detection-band magnitude)",
                 FLAG_FEW_BANDS: "fewer than min_bands detected bands",
                 FLAG_OUT_OF_DOMAIN: "inputs outside the training domain",
                 FLAG_STAR: "classified as a star"}
DEFAULT_MIN_BANDS = 5
DOMAIN_SIGMA = 6.0
MC_CHUNK_ROWS = 32768     # rows × samples evaluated at once in Monte Carlo mode (bounds memory)

PASSTHROUGH = ("Field", "Pointing", "CCD", "RA", "Dec")   # + the survey's ID and detection band

# Estimate columns in output order, with units (the README table is generated from the same words).
ESTIMATES = {
    "z_phot": ("redshift", "median of p(z) (slope-corrected)"),
    "z_phot_lo68": ("redshift", "16th percentile of p(z)"),
    "z_phot_hi68": ("redshift", "84th percentile of p(z)"),
    "z_phot_lo95": ("redshift", "2.5th percentile of p(z)"),
    "z_phot_hi95": ("redshift", "97.5th percentile of p(z)"),
    "z_phot_mode": ("redshift", "mode of p(z)"),
    "z_phot_odds": ("probability", "P(|z − z_phot| < 0.02 (1 + z_phot))"),
    "z_phot_err": ("redshift", "(z_phot_hi68 − z_phot_lo68) / 2"),
    "p_star": ("probability", "probability that the object is a star"),
    "p_star_err": ("probability", "MC standard deviation of p_star (null without --mc-samples)"),
    "star_class": ("0/1", "1 when p_star >= 0.5"),
    "spectral_type": ("BPZ type 1–11", "spectral type (slope-corrected)"),
    "spectral_type_err": ("BPZ type", "1σ: validation NMAD, ⊕ MC spread with --mc-samples"),
    "log_stellar_mass": ("dex (log10 M*/M☉)", "stellar mass (slope-corrected)"),
    "log_stellar_mass_err": ("dex", "1σ: validation NMAD, ⊕ MC spread with --mc-samples"),
    "quality_flags": ("bitmask", "see QUALITY_FLAGS"),
}
PROVENANCE = ("model_name", "model_version", "model_run_id", "scored_at")


def output_columns(id_column: str = "ID", detection_band: str = "F814W") -> list[str]:
    return [id_column, *PASSTHROUGH, detection_band, *ESTIMATES, *PROVENANCE]


def udf_schema(id_column: str, detection_band: str) -> str:
    """DDL of what the mapInPandas function yields (provenance is added by Spark afterwards)."""
    cols = [f"`{id_column}` bigint", "Field int", "Pointing int", "CCD int", "RA double", "Dec double",
            f"`{detection_band}` double"]
    for c in ESTIMATES:
        cols.append(f"{c} int" if c in ("star_class", "quality_flags") else f"{c} double")
    return ", ".join(cols)


# =============================================================================================
# pure parts: per-batch scoring
# =============================================================================================
@dataclass(frozen=True)
class ScoreOptions:
    mc_samples: int = 0
    mc_seed: int = 0
    min_bands: int = DEFAULT_MIN_BANDS
    id_column: str = "ID"


def detected_band_count(df: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    n = np.zeros(len(df), dtype=np.int32)
    for b in spec.bands:
        mag, _, _, state = _band_arrays(df, spec, b)
        n += ((state == DETECTED) & np.isfinite(mag)).astype(np.int32)
    return n


def out_of_domain(ens: Ensemble, x: np.ndarray, ok: np.ndarray, sigma: float = DOMAIN_SIGMA) -> np.ndarray:
    """True where any standardised feature exceeds `sigma` for any network that normalises its
    inputs (default preset: the training mean/std live in the network). Networks without a
    normalisation (the thesis preset) have no recorded domain: never flagged."""
    bad = np.zeros(len(x), dtype=bool)
    for net in ens.networks.values():
        norm = net.stack.norm
        if norm is None:
            continue
        z = (x.astype(np.float64) - norm["mean"]) / norm["std"]
        bad |= (np.abs(z) > sigma).any(axis=1)
    return bad & ok


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def mc_normal(ids: np.ndarray, sample: np.ndarray, band: int, seed: int = 0) -> np.ndarray:
    """Standard normal deviates that depend only on (object ID, sample index, band index, seed):
    counter-based (SplitMix64 + Box–Muller), so reruns, any batching and any partitioning give the
    same draws."""
    with np.errstate(over="ignore"):
        key = (np.asarray(ids, dtype=np.int64).astype(np.uint64) * np.uint64(0xD1342543DE82EF95)
               ^ (np.asarray(sample, dtype=np.uint64) * np.uint64(0x2545F4914F6CDD1D))
               ^ np.uint64((band + 1) * 0x9E3779B97F4A7C15 % (1 << 64))
               ^ np.uint64((seed * 0xBF58476D1CE4E5B9 + 0x632BE59BD9B4E019) % (1 << 64)))
        h1 = _splitmix64(key)
        h2 = _splitmix64(h1 ^ np.uint64(0x94D049BB133111EB))
    u1 = ((h1 >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)   # (0, 1)
    u2 = (h2 >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def resample_photometry(df: pd.DataFrame, spec: FeatureSpec, ids: np.ndarray, n: int, seed: int = 0) -> pd.DataFrame:
    """The rows of `df` (required columns) tiled `n` times (object-major), each detected magnitude
    redrawn as mag + err·N(0,1) (Gaussian in magnitude with the catalogue error, clipped to the
    feature builder's MAX_ERROR; a missing error → unchanged). Non-detections keep their limit and
    state; not-observed bands stay not observed — exactly what the feature builder saw in training."""
    rep = df[spec.required_columns()].iloc[np.repeat(np.arange(len(df)), n)].reset_index(drop=True)
    rid = np.repeat(np.asarray(ids, dtype=np.int64), n)
    sample = np.tile(np.arange(n, dtype=np.uint64), len(df))
    for j, b in enumerate(spec.bands):
        mag, err, _, state = _band_arrays(rep, spec, b)
        e = np.clip(np.nan_to_num(err, nan=0.0), 0.0, MAX_ERROR)
        det = (state == DETECTED) & np.isfinite(mag)
        rep[b] = np.where(det, mag + e * mc_normal(rid, sample, j, seed), mag)
    return rep


def mc_estimates(ens: Ensemble, df: pd.DataFrame, ids: np.ndarray, n: int, seed: int = 0,
                 chunk_rows: int = MC_CHUNK_ROWS) -> pd.DataFrame:
    """Estimates with photometric Monte Carlo (N samples per object), combined with each network's
    own uncertainty:

    - redshift (p(z) network): the N pdfs are averaged (the mixture = p(z) marginalised over the
      photometric errors); median, 68%/95% intervals, mode and odds are read from the mixture.
      (Regression network, thesis preset: the mean of the N samples, the residual-quantile interval
      half-widths added in quadrature to 1σ / 1.96σ of the samples.)
    - p_star: mean over samples; p_star_err: their standard deviation.
    - spectral type, stellar mass: mean over samples; *_err = validation NMAD ⊕ sample std.
    Unscorable rows come back NaN (the caller flags them).
    """
    spec = ens.feature_spec
    nets = ens.networks
    parts = []
    step = max(1, chunk_rows // max(n, 1))
    for s in range(0, len(df), step):
        sub = df.iloc[s:s + step]
        m = len(sub)
        rep = resample_photometry(sub, spec, ids[s:s + step], n, seed)
        x, _ = build_features(rep, spec)
        out = {}
        z = nets["redshift"]
        if z.kind == "pdf":
            p = z.raw(x).astype(np.float64).reshape(m, n, -1).mean(axis=1)
            out.update(read_pdf(z, p))
        else:
            zs = z.calibration.apply(z.raw(x)[:, 0]).reshape(m, n)
            zp, sd = zs.mean(axis=1), zs.std(axis=1)
            rq = z.residual_quantiles
            out.update(z_phot=zp, z_phot_mode=zp, z_phot_odds=np.full(m, np.nan))
            for lo, hi, qlo, qhi, k in (("z_phot_lo68", "z_phot_hi68", "q16", "q84", 1.0),
                                        ("z_phot_lo95", "z_phot_hi95", "q02.5", "q97.5", 1.96)):
                dlo = -rq.get(qlo, np.nan) * (1 + zp)
                dhi = rq.get(qhi, np.nan) * (1 + zp)
                out[lo] = zp - np.hypot(dlo, k * sd)
                out[hi] = zp + np.hypot(dhi, k * sd)
        ps = nets["stellarity"].positive_probability(x).reshape(m, n)
        out["p_star"], out["p_star_err"] = ps.mean(axis=1), ps.std(axis=1)
        for name, col in (("spectral_type", "spectral_type"), ("stellar_mass", "log_stellar_mass")):
            net = nets[name]
            v = net.calibration.apply(net.raw(x)[:, 0]).reshape(m, n)
            out[col] = v.mean(axis=1)
            out[f"{col}_err"] = np.hypot(net.scatter, v.std(axis=1))
        parts.append(pd.DataFrame(out))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in ESTIMATES})
    return pd.concat(parts, ignore_index=True)


def score_frame(ens: Ensemble, df: pd.DataFrame, opts: ScoreOptions = ScoreOptions()) -> pd.DataFrame:
    """Score canonical catalogue rows: passthrough columns + ESTIMATES, one row per input row.

    Without Monte Carlo the estimates are exactly `Ensemble.predict(df)` (same code path)."""
    spec = ens.feature_spec
    x, ok = build_features(df, spec)
    if opts.mc_samples and opts.mc_samples > 0:
        est = mc_estimates(ens, df, df[opts.id_column].to_numpy(np.int64), opts.mc_samples, opts.mc_seed)
    else:
        est = ens.predict_features(x, ok).drop(columns=["is_star", "scorable"])
        est["p_star_err"] = np.nan
    est = est.reset_index(drop=True)
    est["z_phot_err"] = (est["z_phot_hi68"] - est["z_phot_lo68"]) / 2
    for c in ESTIMATES:
        if c not in est:
            est[c] = np.nan
    est.loc[~ok, [c for c in ESTIMATES if c not in ("star_class", "quality_flags")]] = np.nan
    star = np.where(ok, (est["p_star"].to_numpy() >= 0.5), False)
    flags = np.where(ok, 0, FLAG_NOT_SCORABLE)
    flags |= np.where(detected_band_count(df, spec) < opts.min_bands, FLAG_FEW_BANDS, 0)
    flags |= np.where(out_of_domain(ens, x, ok), FLAG_OUT_OF_DOMAIN, 0)
    flags |= np.where(star, FLAG_STAR, 0)
    est["star_class"] = pd.array(np.where(ok, star.astype(np.int32), 0), dtype="Int32")
    est.loc[~ok, "star_class"] = pd.NA
    est["quality_flags"] = flags.astype(np.int32)
    head = pd.DataFrame({
        opts.id_column: df[opts.id_column].to_numpy(np.int64),
        **{c: df[c].to_numpy() for c in PASSTHROUGH},
        spec.detection_band: pd.to_numeric(df[spec.detection_band], errors="coerce").to_numpy(np.float64),
    })
    for c in ("Field", "Pointing", "CCD"):
        head[c] = pd.to_numeric(head[c], errors="coerce").astype("Int32")
    for c in ("RA", "Dec"):
        head[c] = pd.to_numeric(head[c], errors="coerce").astype(np.float64)
    return pd.concat([head, est[list(ESTIMATES)].astype({c: np.float64 for c in ESTIMATES
                                                          if c not in ("star_class", "quality_flags")})],
                     axis=1)


# ---- per-worker cache of the broadcast ensemble ------------------------------------------------
_ENSEMBLES: dict[str, Ensemble] = {}


def worker_ensemble(key: str, parts_bc) -> Ensemble:
    """The Ensemble for model `key`, rebuilt from the broadcast once per Python worker process."""
    ens = _ENSEMBLES.get(key)
    if ens is None:
        doc, arrays = parts_bc.value
        ens = Ensemble.from_parts(doc, arrays)
        _ENSEMBLES.clear()           # one model per job: drop any previous job's
        _ENSEMBLES[key] = ens
    return ens


def make_batch_scorer(key: str, parts_bc, opts: ScoreOptions):
    """The iterator function for `DataFrame.mapInPandas`."""
    def score_batches(batches):
        ens = worker_ensemble(key, parts_bc)
        for pdf in batches:
            yield score_frame(ens, pdf, opts)
    return score_batches


# =============================================================================================
# catalogue checks (driver, Parquet metadata only)
# =============================================================================================
def catalogue_manifest(catalog: str | Path) -> dict | None:
    p = Path(catalog) / MANIFEST
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def catalogue_fields(catalog: str | Path) -> list[int]:
    out = []
    for d in Path(catalog).glob(f"{PARTITION}=*"):
        if d.is_dir():
            try:
                out.append(int(d.name.split("=", 1)[1]))
            except ValueError:
                continue
    return sorted(out)


def parse_fields(text: str | None, available: list[int], catalog) -> list[int]:
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
    import pyarrow.dataset as ds

    try:
        d = ds.dataset(str(catalog), format="parquet", partitioning="hive")
    except (OSError, ValueError) as e:
        raise InputError(f"catalogue {catalog} is not readable Parquet: {e}") from None
    return list(d.schema.names)


def check_catalogue(catalog: str | Path, model: ResolvedModel, fields_arg: str | None = None,
                    id_column: str = "ID") -> dict:
    """All input checks that need no Spark: the catalogue exists, is the model's survey, has the
    columns the model needs, and the requested Fields. Returns {fields, columns, manifest}."""
    catalog = Path(catalog)
    spec = model.ensemble.feature_spec
    if not catalog.exists():
        raise InputError(f"catalogue not found: {catalog} (run jobs/ingest.py first)")
    available = catalogue_fields(catalog)
    if not available:
        raise InputError(f"catalogue {catalog} has no {PARTITION}=N partitions")
    man = catalogue_manifest(catalog)
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
# commit protocol
# =============================================================================================
def staging_root(out: Path, token: str) -> Path:
    """A sibling of `out` (Spark ignores input paths whose name starts with `_` or `.`, so staging
    cannot live under a `_` name; a sibling on the same filesystem keeps the renames atomic)."""
    return out.parent / f"{out.name}.staging-{os.getpid()}-{token}"


def recover(out: str | Path) -> list[str]:
    """Restore a Field whose commit stopped between its two renames; drop stale staging dirs."""
    out = Path(out)
    notes = []
    if not out.exists():
        return notes
    for old in sorted(out.glob(f"_old-*-{PARTITION}=*")):
        target = out / old.name.split("-", 2)[2]
        if not target.exists():
            os.rename(old, target)
            notes.append(f"restored {target.name} from {old.name} (an earlier run stopped mid-commit)")
        else:
            shutil.rmtree(old, ignore_errors=True)
    notes += remove_stale_staging(out)
    return notes


def commit_partition(staging: str | Path, out: str | Path, field_value: int, token: str) -> Path:
    """Swap `<staging>/Field=N` in as `<out>/Field=N` (rename old away, rename new in, delete old).

    Each rename is atomic on a POSIX filesystem; between the two, `recover` restores the old one.
    A Field with no staged rows (an empty input partition) ends as an empty directory."""
    staging, out = Path(staging), Path(out)
    name = f"{PARTITION}={field_value}"
    src, dst, old = staging / name, out / name, out / f"_old-{token}-{name}"
    if not src.exists():
        src.mkdir(parents=True)
    if dst.exists():
        os.rename(dst, old)
    os.rename(src, dst)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
    return dst


def read_manifest(out: str | Path) -> dict:
    p = Path(out) / MANIFEST
    if p.exists():
        try:
            return json.loads(p.read_text())
        except ValueError:
            pass
    return {"manifest_version": MANIFEST_VERSION, "fields": {}}


def write_manifest(out: str | Path, manifest: dict) -> None:
    """Atomic replace: readers see the old or the new manifest, never a partial one."""
    out = Path(out)
    manifest = {**manifest, "kind": "scores"}
    tmp = out / f"_manifest.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, out / MANIFEST)


# =============================================================================================
# Spark parts
# =============================================================================================
def _field_accounting(df, id_column: str) -> dict[int, dict]:
    """Per Field: row count and an order-independent checksum of the IDs (sum of xxhash64)."""
    from pyspark.sql import functions as F

    rows = (df.groupBy(PARTITION)
            .agg(F.count(F.lit(1)).alias("rows"),
                 F.sum(F.xxhash64(F.col(id_column)).cast("decimal(38,0)")).alias("idsum"))
            .collect())
    return {int(r[PARTITION]): {"rows": int(r["rows"]), "idsum": str(r["idsum"])} for r in rows}


@dataclass
class JobResult:
    fields: dict = field(default_factory=dict)
    rows_in: int = 0
    rows_out: int = 0
    seconds: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)


def scored_dataframe(spark, catalog: str, columns: list[str], fields: list[int], model: ResolvedModel,
                     opts: ScoreOptions, scored_at: _dt.datetime, parts_bc=None):
    """The lazily scored DataFrame for `fields` (mapInPandas over the catalogue + provenance)."""
    from pyspark.sql import functions as F

    spec = model.ensemble.feature_spec
    src = (spark.read.option("basePath", str(catalog)).parquet(str(catalog))
           .where(F.col(PARTITION).isin(fields)).select(*columns))
    if parts_bc is None:
        parts_bc = spark.sparkContext.broadcast(model.ensemble.to_parts())
    scorer = make_batch_scorer(model.key, parts_bc, opts)
    scored = src.mapInPandas(scorer, udf_schema(opts.id_column, spec.detection_band))
    return (scored.withColumn("model_name", F.lit(model.name))
            .withColumn("model_version", F.lit(str(model.version)))
            .withColumn("model_run_id", F.lit(model.run_id))
            .withColumn("scored_at", F.lit(scored_at).cast("timestamp"))
            .select(*output_columns(opts.id_column, spec.detection_band)))


def score_fields(spark, catalog: str | Path, out: str | Path, fields: list[int], model: ResolvedModel,
                 columns: list[str], opts: ScoreOptions = ScoreOptions(), catalog_manifest: dict | None = None,
                 scored_at: _dt.datetime | None = None, echo=print, after_commit=None) -> JobResult:
    """Score the chosen Fields of `catalog` into `out` (staged, checked, committed per Field).

    Reusable by jobs/reprocess.py: pass the subset of Fields to (re)score. `after_commit(field)`
    is called after each Field's commit (tests inject failures there)."""
    catalog, out = Path(catalog).absolute(), Path(out).absolute()
    scored_at = scored_at or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    res = JobResult()
    out.mkdir(parents=True, exist_ok=True)
    for note in recover(out):
        echo(f"score: {note}")
    token = uuid.uuid4().hex[:12]
    staging = staging_root(out, token)
    t0 = time.perf_counter()
    try:
        from pyspark.sql import functions as F

        src = (spark.read.option("basePath", str(catalog)).parquet(str(catalog))
               .where(F.col(PARTITION).isin(fields)))
        acc_in = _field_accounting(src.select(PARTITION, opts.id_column), opts.id_column)
        res.seconds["count_input"] = round(time.perf_counter() - t0, 3)
        t1 = time.perf_counter()
        df = scored_dataframe(spark, str(catalog), columns, fields, model, opts, scored_at)
        df.write.mode("errorifexists").partitionBy(PARTITION).parquet(str(staging))
        res.seconds["score_write"] = round(time.perf_counter() - t1, 3)
        t1 = time.perf_counter()
        acc_out = _field_accounting(spark.read.parquet(str(staging)).select(PARTITION, opts.id_column),
                                    opts.id_column)
        res.seconds["count_output"] = round(time.perf_counter() - t1, 3)
        for f in fields:
            a, b = acc_in.get(f, {"rows": 0, "idsum": None}), acc_out.get(f, {"rows": 0, "idsum": None})
            if a != b:
                raise GalaxySparkError(
                    f"row accounting mismatch in Field {f}: {a['rows']} rows in, {b['rows']} scored "
                    f"(ID checksums {'equal' if a['idsum'] == b['idsum'] else 'differ'}); nothing was committed")
        t1 = time.perf_counter()
        manifest = read_manifest(out)
        cat_fields = (catalog_manifest or {}).get("fields", {})
        cat_sha = (hashlib.sha256((catalog / MANIFEST).read_bytes()).hexdigest()[:16]
                   if (catalog / MANIFEST).exists() else None)
        (out / SUCCESS).unlink(missing_ok=True)
        for f in fields:
            commit_partition(staging, out, f, token)
            rows = acc_in.get(f, {"rows": 0})["rows"]
            manifest.setdefault("fields", {})[str(f)] = {
                "rows": rows, "scored_at": scored_at.isoformat(), "model": model.provenance(),
                "mc_samples": opts.mc_samples, "mc_seed": opts.mc_seed, "min_bands": opts.min_bands,
                "catalog": str(catalog), "catalog_fingerprint": (cat_fields.get(str(f)) or {}).get("fingerprint"),
                "catalog_manifest_sha256": cat_sha,
            }
            manifest.update(manifest_version=MANIFEST_VERSION, updated_at=scored_at.isoformat(),
                            quality_flags={str(k): v for k, v in QUALITY_FLAGS.items()})
            write_manifest(out, manifest)
            res.fields[f] = rows
            echo(f"score: committed Field {f}: {rows} rows")
            if after_commit is not None:
                after_commit(f)
        manifest["last_job"] = {"scored_at": scored_at.isoformat(), "fields": fields, "model": model.provenance(),
                                "rows": sum(res.fields.values())}
        write_manifest(out, manifest)
        (out / SUCCESS).write_text(json.dumps(manifest["last_job"], default=str) + "\n")
        res.seconds["commit"] = round(time.perf_counter() - t1, 3)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    res.rows_in = sum(v["rows"] for v in acc_in.values())
    res.rows_out = sum(v["rows"] for v in acc_out.values())
    res.manifest = manifest
    return res


# =============================================================================================
# the job
# =============================================================================================
@dataclass
class JobOptions:
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


def survey_id_column(survey_name: str) -> str:
    from galaxy_spark.survey import SurveyConfigError, load_survey

    try:
        return load_survey(survey_name).id_column
    except (SurveyConfigError, FileNotFoundError, OSError):
        return "ID"


def prepare(opts: JobOptions) -> tuple[ResolvedModel, dict]:
    """Every check that can fail on user input, before Spark starts."""
    if opts.mc_samples < 0:
        raise InputError(f"--mc-samples must be >= 0, got {opts.mc_samples}")
    if opts.min_bands < 0:
        raise InputError(f"--min-bands must be >= 0, got {opts.min_bands}")
    if not Path(opts.catalog).exists():
        raise InputError(f"catalogue not found: {opts.catalog} (run jobs/ingest.py first)")
    check_job_paths({"--catalog": opts.catalog}, {"--out": (opts.out, "scores")})
    model = resolve_model(opts.model)
    id_column = survey_id_column(model.ensemble.feature_spec.survey)
    checked = check_catalogue(opts.catalog, model, opts.fields, id_column)
    checked["id_column"] = id_column
    return model, checked


def run_scoring(opts: JobOptions, spark=None, echo=print, after_commit=None) -> dict:
    t_all = time.perf_counter()
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

        extra = {}
        if opts.batch_size:
            extra["spark.sql.execution.arrow.maxRecordsPerBatch"] = str(opts.batch_size)
        spark = get_spark("galaxy_spark-score", master=opts.master, extra_conf=extra)
    prev_batch = None
    if not own and opts.batch_size:
        prev_batch = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(opts.batch_size))
    t_spark = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        res = score_fields(spark, opts.catalog, opts.out, checked["fields"], model, checked["columns"],
                           ScoreOptions(opts.mc_samples, opts.mc_seed, opts.min_bands, id_column),
                           checked["manifest"], echo=echo, after_commit=after_commit)
        t_job = time.perf_counter() - t0
        coverage = None
        if opts.coverage:
            coverage = coverage_report_spark(spark, opts.catalog, opts.out, checked["fields"], id_column)
    finally:
        if own:
            spark.stop()
        elif prev_batch is not None:
            spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", prev_batch)
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


# =============================================================================================
# calibration of the intervals
# =============================================================================================
def coverage_report(scores: pd.DataFrame, catalogue: pd.DataFrame, id_column: str = "ID",
                    references=("zb_1", "z_true"), star_column: str = "stell",
                    test_only: bool = True, star_threshold: float | None = None) -> dict:
    """Coverage of the 68%/95% z intervals on the test split (galaxies only), against each
    reference redshift present in the catalogue (BPZ's zb_1; the mock's z_true when present).

    Galaxies: catalogue `stell` below the survey's star threshold (as in training) when present,
    else the mock's is_star == 0, else all."""
    from galaxy_spark.features import DEFAULT_STAR_THRESHOLD
    from galaxy_spark.evaluate.metrics import interval_coverage
    from galaxy_spark.survey import load_survey

    if star_threshold is None:
        star_threshold = float(load_survey().labels.get("star_threshold", DEFAULT_STAR_THRESHOLD))

    cols = [id_column] + [c for c in (*references, star_column, "is_star") if c in catalogue.columns]
    m = scores.merge(catalogue[cols], on=id_column, how="inner", suffixes=("", "_cat"))
    if test_only:
        m = m[in_test_split(m[id_column].to_numpy(np.int64))]
    if star_column in m:
        m = m[pd.to_numeric(m[star_column], errors="coerce") < star_threshold]
    elif "is_star" in m:
        m = m[pd.to_numeric(m["is_star"], errors="coerce") == 0]
    out = {"n_objects": int(len(m)), "nominal": {"coverage68": 0.68, "coverage95": 0.95}}
    for ref in references:
        if ref not in m:
            continue
        c = interval_coverage(m[ref].to_numpy(np.float64), m["z_phot_lo68"].to_numpy(np.float64),
                              m["z_phot_hi68"].to_numpy(np.float64), m["z_phot_lo95"].to_numpy(np.float64),
                              m["z_phot_hi95"].to_numpy(np.float64))
        out[ref] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in c.items()}
    return out


def coverage_report_spark(spark, catalog, out, fields, id_column: str = "ID") -> dict:
    """coverage_report on the test split of the scored Fields, filtered in Spark (only the ~20% of
    rows in the test split reach the driver)."""
    from pyspark.sql import functions as F

    sc = (spark.read.parquet(str(out)).where(F.col(PARTITION).isin(fields))
          .where(test_split_filter(id_column))
          .select(id_column, "z_phot_lo68", "z_phot_hi68", "z_phot_lo95", "z_phot_hi95").toPandas())
    cat = spark.read.option("basePath", str(catalog)).parquet(str(catalog))
    cols = [id_column] + [c for c in ("zb_1", "z_true", "stell") if c in cat.columns]
    catp = cat.where(F.col(PARTITION).isin(fields)).where(test_split_filter(id_column)).select(*cols).toPandas()
    return coverage_report(sc, catp, id_column)
