"""What training reads and how it is split: the catalogue columns a preset needs (through Spark),
the features, the label sets (catalogue, mock truth, spectroscopic sample) and the ID-hash split.

Split by ID hash (features.assign_split): test = the first 20% of hash space for every preset;
never used for fitting, early stopping or calibration. The selection region (features.
SELECTION_SPLIT) is where the champion rule compares versions.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_spark.errors import InputError
from galaxy_spark.features import (SELECTION_SPLIT, TRUTH_SED_COLUMNS, FeatureSpec, assign_split, build_features,
                                   id_hash_unit)
from galaxy_spark.model.heads import HEAD, REQUIRED_HEADS, build_targets
from galaxy_spark.model.sed import SEDBasis
from galaxy_spark.io.manifest import manifest_sha256
from galaxy_spark.survey import Survey
from galaxy_spark.train.fit import Phase
from galaxy_spark.log import get_logger

log = get_logger(__name__)

# What each network learns from, per label mode (phases in order; the last one is calibrated).
# Spectroscopy measures redshift and class only: type, mass and the SED always come from the
# catalogue (or the truth in simulation studies).
LABEL_PHASES = {
    "catalogue": {"redshift": ("catalogue",), "stellarity": ("catalogue",),
                  "spectral_type": ("catalogue",), "stellar_mass": ("catalogue",), "sed": ("catalogue",)},
    "spec": {"redshift": ("spec",), "stellarity": ("spec",),
             "spectral_type": ("catalogue",), "stellar_mass": ("catalogue",), "sed": ("catalogue",)},
    "spec+catalogue": {"redshift": ("catalogue", "spec"), "stellarity": ("catalogue", "spec"),
                       "spectral_type": ("catalogue",), "stellar_mass": ("catalogue",), "sed": ("catalogue",)},
    "truth": {"redshift": ("truth",), "stellarity": ("truth",),
              "spectral_type": ("truth",), "stellar_mass": ("truth",), "sed": ("truth",)},
}
LABEL_SOURCES = tuple(LABEL_PHASES)
SPLIT_DESCRIPTION = ("splitmix64(ID) -> [0,1): test [0,0.2), validation [0.2, 0.2+f), train [0.3, 0.3+f)")


def catalogue_fingerprint(catalog: str) -> str:
    """First 16 hex digits of the SHA-256 of the catalogue's ingest manifest (or, without one, of
    its Parquet file listing with sizes): which catalogue a model was trained on."""
    sha = manifest_sha256(catalog)
    if sha is not None:
        return sha
    p, h = Path(catalog), hashlib.sha256()
    for f in sorted(p.rglob("*.parquet")):
        h.update(f"{f.relative_to(p)}:{f.stat().st_size}".encode())
    return h.hexdigest()[:16]


def read_catalogue(spark, catalog: str, columns: list[str]) -> pd.DataFrame:
    """`columns` of the Parquet catalogue as pandas; InputError when it or a column is missing."""
    if not Path(catalog).exists():
        raise InputError(f"catalogue not found: {catalog} (run jobs/ingest.py first)")
    df = spark.read.parquet(catalog)
    present = set(df.columns)
    missing = [c for c in columns if c not in present]
    if missing:
        raise InputError(f"catalogue {catalog} lacks column(s) needed for training: {', '.join(missing[:8])}")
    return df.select(*columns).toPandas()


def spec_label_set(ids: np.ndarray, path: str, survey: Survey, min_quality: int) -> tuple[dict, dict]:
    """Targets from a spectroscopic sample aligned with the catalogue `ids`: redshift for secure
    (quality >= min_quality) galaxies, class (star 1 / galaxy 0) for secure objects, NaN elsewhere
    and for type and mass (which spectroscopy does not measure). Returns (targets, report)."""
    from galaxy_spark.catalog.spec import join_spec, read_spec

    table, report = read_spec(path, survey)
    aligned, joined = join_spec(ids, table)
    report = {**report, **joined}
    q = np.asarray(aligned["z_spec_quality"], float)
    good = np.isfinite(q) & (q >= min_quality)
    star = np.asarray(aligned["spec_class"] == "star")
    z = np.asarray(aligned["z_spec"], float)
    report["secure"] = int(good.sum())
    nan = np.full(len(ids), np.nan)
    return {"redshift": np.where(good & ~star, z, np.nan), "stellarity": np.where(good, star.astype(float), np.nan),
            "spectral_type": nan.copy(), "stellar_mass": nan.copy()}, report


@dataclass
class TrainingData:
    """Everything the driver trains and measures on, row-aligned: IDs, features `x` and the
    scorable mask `ok`, the split label per row, and the label sets by source ('catalogue',
    'truth' when the catalogue has the mock's truth columns, 'spec' with a spectroscopic sample)."""
    ids: np.ndarray
    x: np.ndarray
    ok: np.ndarray
    split: np.ndarray
    label_sets: dict[str, dict[str, np.ndarray]]
    feature_spec: FeatureSpec
    regress_on_galaxies: bool
    spec_report: dict | None = None
    sed: SEDBasis | None = None          # the SED network's basis, when the preset has one

    @property
    def selection_labels(self) -> str:
        """The labels selection metrics are measured against: 'spec' when there is a sample."""
        return "spec" if "spec" in self.label_sets else "catalogue"

    def counts(self) -> dict[str, int]:
        """Rows per split."""
        return {s: int((self.split == s).sum()) for s in ("train", "validation", "test", "unused")}

    def galaxies(self, source: str) -> np.ndarray:
        """Rows a regression trains on for labels `source`: galaxies by those labels when the
        preset regresses on galaxies only, else every row."""
        if not self.regress_on_galaxies:
            return np.ones(len(self.ids), bool)
        return self.label_sets[source]["stellarity"] == 0

    def phase(self, name: str, source: str) -> Phase:
        """Network `name`'s training phase on labels `source`: labelled, scorable rows (galaxies
        only for the regressions when the preset says so) of the train and validation splits."""
        y = self.label_sets[source][name]
        labelled = np.isfinite(y).all(axis=1) if y.ndim == 2 else np.isfinite(y)
        use = self.ok & labelled & (self.galaxies(source) if name != "stellarity" else True)
        return Phase(source, y, use & (self.split == "train"), use & (self.split == "validation"))

    def rows(self, mask: np.ndarray, source: str) -> dict[str, np.ndarray]:
        """The label set `source` restricted to `mask`."""
        return {k: v[mask] for k, v in self.label_sets[source].items()}

    def selection_region(self) -> np.ndarray:
        """Rows in the fixed selection region of ID-hash space (champion comparisons)."""
        u = id_hash_unit(self.ids)
        return (u >= SELECTION_SPLIT[0]) & (u < SELECTION_SPLIT[1])


def load_training_data(spark, catalog: str, survey: Survey, preset: dict, feature_spec: FeatureSpec,
                       label_source: str, sample_fraction: float, spec: str | None = None,
                       spec_min_quality: int = 3) -> TrainingData:
    """Read the catalogue columns the preset needs, build features and label sets, split by ID.
    InputError for a missing or empty catalogue, or `--labels truth` without truth columns."""
    label_cols = [survey.labels[HEAD[t].label] for t in REQUIRED_HEADS]
    truth_cols = [HEAD[t].truth for t in REQUIRED_HEADS]
    catalogue_cols = set(spark.read.parquet(catalog).columns) if Path(catalog).exists() else set()
    has_truth = all(c in catalogue_cols for c in truth_cols)
    if label_source == "truth" and not has_truth:
        raise InputError("--labels truth needs the mock's truth columns, which this catalogue lacks")
    with_sed = "sed" in preset["networks"]
    sed_truth = with_sed and all(c in catalogue_cols for c in TRUTH_SED_COLUMNS)
    if with_sed and label_source == "truth" and not sed_truth:
        raise InputError(f"--labels truth trains the SED network on the mock's true SEDs, but this catalogue lacks "
                         f"{', '.join(TRUTH_SED_COLUMNS)} (a mock from before they were written: regenerate it)")
    columns = list(dict.fromkeys([survey.id_column, "Field"] + feature_spec.required_columns() + label_cols
                                 + (truth_cols if has_truth else []) + (list(TRUTH_SED_COLUMNS) if sed_truth else [])))
    t0 = time.time()
    df = read_catalogue(spark, catalog, columns)
    log.info(f"read {len(df):,} catalogue rows in {time.time() - t0:.1f}s")
    if df.empty:
        raise InputError(f"catalogue {catalog} has no rows")

    ids = df[survey.id_column].to_numpy(np.int64)
    split_frac = preset["split"]
    split = assign_split(ids, split_frac["train"] * sample_fraction, split_frac["validation"])
    x, ok = build_features(df, feature_spec)
    label_sets = {"catalogue": build_targets(df, survey, "catalogue")}
    if has_truth:
        label_sets["truth"] = build_targets(df, survey, "truth")
    spec_report = None
    if spec:
        label_sets["spec"], spec_report = spec_label_set(ids, spec, survey, spec_min_quality)
        log.info(f"spectroscopic sample {spec}: {json.dumps(spec_report)}")
    data = TrainingData(ids, x, ok, split, label_sets, feature_spec, preset["regress_on"] == "galaxies", spec_report)
    if with_sed:
        add_sed_labels(data, df, survey, preset["networks"]["sed"], LABEL_PHASES[label_source]["sed"], sed_truth)
    log.info(f"split by ID hash: {data.counts()} (unscorable rows: {int((~ok).sum())})")
    return data


def add_sed_labels(data: TrainingData, df: pd.DataFrame, survey: Survey, cfg: dict, phases: tuple[str, ...],
                   sed_truth: bool) -> None:
    """Fit the SED basis on the training galaxies of the last phase's labels and add the SED
    targets to every label set (NaN rows for sources without SED labels: the spectroscopic
    sample, truth without the SED truth columns). train/sed.py says what the labels are."""
    from galaxy_spark.train.sed import sed_labels

    sources = ("catalogue",) + (("truth",) if sed_truth else ())
    fit_source = phases[-1]
    fit_rows = data.phase("spectral_type", fit_source).train if fit_source != "truth" else (
        data.ok & (data.split == "train") & data.galaxies("truth"))
    t0 = time.time()
    data.sed, targets = sed_labels(df, survey, cfg, fit_rows, fit_source, sources,
                                   data.label_sets["catalogue"]["spectral_type"])
    k = data.sed.n_components
    for src, labels in data.label_sets.items():
        labels["sed"] = targets.get(src, np.full((len(data.ids), k), np.nan))
    log.info(f"SED labels ({', '.join(sources)}) and basis in {time.time() - t0:.1f}s")
