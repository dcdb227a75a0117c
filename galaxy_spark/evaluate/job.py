"""The evaluation: scores + catalogue → field-standard metrics, the BPZ baseline and the thesis table,
as one finished ``Evaluation`` (metrics.json's content plus the arrays the plots draw).

Flow (``run_evaluation``):

1. Spark reads the scores (``jobs/score.py`` output) and the catalogue, keeps the catalogue rows of
   the held-out **test split** (``id_hash_unit(ID) < 0.2``, the split every preset shares) and joins
   them with the scores on ``ID`` (``evaluate.data``). Everything below sees only those rows.
2. Metrics of the network's outputs against each label set — the catalogue labels (``zb_1``,
   ``stell`` ≥ the survey's star_threshold → star, ``Tb_1``, ``Stell_Mass_1``), a spectroscopic
   sample when given, and the mock's truth when present (``evaluate.blocks``).
3. The BPZ baseline on the same test objects and both throughputs (``evaluate.baseline``).
4. The thesis' published table next to the latest ``paper`` and ``default`` training runs found in
   the MLflow experiment, and the model's loss curves (``evaluate.tracking``).

The job (``jobs/evaluate.py``) then has ``galaxy_spark.report.evaluation`` write the report and
``evaluate.tracking.log_evaluation`` log it to the model's MLflow run; evaluation never draws or
writes HTML itself.

Probabilistic metrics from quantiles: the scores carry five points of each p(z) (2.5, 16, 50, 84,
97.5%). PIT = ``metrics.pit_from_quantiles`` (linear between the points; 0 below the 2.5% point, 1
above the 97.5% point); CRPS = ``metrics.crps_from_quantiles`` (quantile-score form, the quantile
function linear between the points): approximations that ignore the shape of p(z) between them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from galaxy_spark.errors import InputError
from galaxy_spark import metrics as M
from galaxy_spark.evaluate import tracking as T
from galaxy_spark.evaluate.baseline import BPZ_MAX_OBJECTS, baseline_comparison, comparison_table
from galaxy_spark.evaluate.blocks import MAG_BINS, Z_BINS, headline, network_metrics
from galaxy_spark.evaluate.data import attach_spec, detection_magnitude, label_sets, num, read_test_join, star_rule
from galaxy_spark.evaluate.sed import sed_evaluation
from galaxy_spark.model.sed import is_sed_column
from galaxy_spark.io.paths import check_job_paths
from galaxy_spark.model.registry import model_uri_for, resolve_model
from galaxy_spark.io.manifest import catalogue_survey
from galaxy_spark.survey import Survey
from galaxy_spark.log import get_logger

log = get_logger(__name__)


@dataclass
class EvalOptions:
    """What ``run_evaluation`` evaluates (jobs/evaluate.py's options)."""
    scores: str
    catalog: str
    out: str                            # the report directory (checked before any work)
    model: str | None = None            # model URI for the throughput timing and the SED (default: from the scores)
    model_run_id: str | None = None     # keep only scores of this run (when scores mix models)
    bpz_max_objects: int = BPZ_MAX_OBJECTS
    bpz: bool = True
    mlflow: bool = True                 # read thesis runs and loss curves from MLflow
    experiment: str | None = None       # for the thesis table (default: the model run's experiment)
    survey: str | None = None          # a survey name or file; None: pipeline.yaml's
    spec: str | None = None             # spectroscopic sample (ID, z_spec, …): the third comparison
    spec_min_quality: int = 3


@dataclass
class Evaluation:
    """A finished evaluation: everything the report needs. ``metrics`` is metrics.json's content
    (numpy values allowed; the report makes it strict JSON); the rest are the arrays the plots draw."""
    metrics: dict
    frame: pd.DataFrame                 # joined test rows (scores + catalogue labels)
    labels: dict = field(default_factory=dict)    # label_sets(frame): {labels: {redshift, star, …}}
    mag: np.ndarray | None = None       # detection-band magnitude per row of frame (NaN: not detected)
    bpz_frame: pd.DataFrame | None = None         # baseline_comparison's per-object table
    histories: dict = field(default_factory=dict)  # loss per epoch of the model's networks
    notes: list = field(default_factory=list)
    sed: dict = field(default_factory=dict)        # evaluate.sed's arrays for the spectra figures


def evaluate(df: pd.DataFrame, survey: Survey, info: dict, opts: EvalOptions, ensemble=None,
             client=None, experiment_id: str | None = None) -> Evaluation:
    """Every metric of the joined test rows ``df`` (``read_test_join``; ``info`` its row accounting):
    the network against each label set, the BPZ baseline (``opts.bpz``; throughput with ``ensemble``),
    the thesis table and loss curves (with an MLflow ``client``). Pure pandas/numpy apart from the
    optional MLflow reads."""
    mag = detection_magnitude(df, survey)
    sets = label_sets(df, survey, opts.spec_min_quality)
    if not sets:
        raise InputError("the catalogue has neither the label columns "
                         f"({', '.join(v for v in survey.labels.values() if isinstance(v, str))}) nor "
                         "the truth columns: nothing to evaluate against")
    notes = []
    metrics = {"data": {**info, "survey": survey.name, "label_sets": list(sets), "detection_band": survey.detection_band,
                        "mag_bins": list(MAG_BINS), "z_bins": list(Z_BINS),
                        "galaxy_definition": {"catalogue": f"not ({star_rule(survey)})",
                                              "truth": "is_star == 0",
                                              "spec": f"spec_class == galaxy, z_spec_quality >= {opts.spec_min_quality}"}},
               "network": {src: network_metrics(df, lab, mag) for src, lab in sets.items()}}
    bpz_frame = None
    if opts.bpz:
        base, bpz_frame = baseline_comparison(df, sets, mag, survey, opts.bpz_max_objects, ensemble)
        metrics["baseline"] = base
        metrics["comparisons"] = comparison_table(bpz_frame, survey.bright_mag, survey.completeness_mag).to_dict(orient="records")
        if ensemble is None:
            notes.append("network throughput not measured: the model could not be loaded")
    else:
        notes.append("BPZ baseline skipped (--no-bpz)")
    this_test = None
    if "catalogue" in metrics["network"]:
        cn = metrics["network"]["catalogue"]
        gal = sets["catalogue"]["stellarity"] == 0
        this_test = {"redshift": M.regression_metrics(num(df, "z_phot")[gal], sets["catalogue"]["redshift"][gal])["r2"],
                     "stellarity": cn["stellarity"]["overall"]["accuracy"],
                     "stellar_mass": cn["stellar_mass"]["overall"]["r2"],
                     "spectral_type": cn["spectral_type"]["overall"]["r2"]}
    thesis, runs = T.thesis_table(client, experiment_id, info["model_run_id"], this_test)
    metrics["thesis"] = {"table": thesis.reset_index(), "runs": runs,
                         "published": T.THESIS_PUBLISHED,
                         "this_model_test": {src: metrics["network"][src]["thesis_metrics"] for src in sets}}
    if client is not None and not runs:
        notes.append("no paper/default training runs found in the MLflow experiment")
    histories = {}
    if client is not None:
        try:
            histories = T.loss_histories(client, info["model_run_id"])
        except Exception as e:  # noqa: BLE001 - curves are optional decoration
            notes.append(f"loss curves unavailable: {e}")
    sed_arrays = {}
    if ensemble is not None and ensemble.sed is not None:
        t0 = time.time()
        metrics["sed"], sed_arrays = sed_evaluation(df, survey, ensemble.sed, mag)
        log.info(f"SED evaluation in {time.time() - t0:.1f}s")
        if "skipped" in metrics["sed"]:
            notes.append(f"SED evaluation skipped: {metrics['sed']['skipped']}")
    elif any(is_sed_column(c) for c in df.columns):
        notes.append("SED evaluation skipped: the model could not be loaded")
    metrics["headline"] = headline(metrics)
    metrics["notes"] = notes
    return Evaluation(metrics, df, sets, mag, bpz_frame, histories, notes, sed_arrays)


def _scores_model(opts: EvalOptions, info: dict):
    """The Ensemble that produced the scores: timed against BPZ, and it decodes the SED columns
    (None when it cannot be loaded: the report says so). ``--model`` must be that model."""
    uri = opts.model or (model_uri_for(info.get("model_name"), info.get("model_version"), info["model_run_id"])
                         if opts.mlflow else None)
    info["model_uri"] = uri
    if not uri:
        return None
    try:
        resolved = resolve_model(uri)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - report without the throughput figure
        log.warning(f"could not load {uri} for the throughput timing: {str(e).splitlines()[0]}")
        return None
    if opts.model and resolved.run_id and resolved.run_id != info["model_run_id"]:
        raise InputError(f"--model {opts.model} comes from run {resolved.run_id}, but the scores were "
                         f"produced by run {info['model_run_id']}")
    return resolved.ensemble


def run_evaluation(opts: EvalOptions, spark) -> Evaluation:
    """Read and join (Spark), attach the spectroscopic sample, open the model's MLflow run, load the
    model (BPZ throughput timing, SED decoding), evaluate. ``metrics["data"]["seconds"]`` is the wall time."""
    t0 = time.time()
    check_job_paths({"--scores": opts.scores, "--catalog": opts.catalog}, {"--out": (opts.out, "report")})
    survey = catalogue_survey(opts.catalog, opts.survey)
    df, info = read_test_join(spark, opts.scores, opts.catalog, survey, opts.model_run_id)
    if opts.spec:
        df, info["spec"] = attach_spec(spark, df, opts.catalog, opts.spec, survey)
    client = experiment_id = None
    if opts.mlflow:
        client, experiment_id = T.model_run_context(info["model_run_id"], opts.experiment)
    ensemble = _scores_model(opts, info)
    ev = evaluate(df, survey, info, opts, ensemble, client, experiment_id)
    ev.metrics["data"]["seconds"] = round(time.time() - t0, 1)
    return ev
