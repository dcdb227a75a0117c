"""Shared fixtures: one local Spark session for the whole run, MLflow pointed into tmp, one tiny
trained model for the whole run (each module works on its own copy of its store), and small
catalogue fixtures built from the 817 real ALHAMBRA rows (tests/data)."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# The 817 real rows ship with the tests (tests/data/README.md); ALHAMBRA_REAL_ROWS may point elsewhere.
REAL_ROWS = Path(os.environ.get("ALHAMBRA_REAL_ROWS", REPO / "tests" / "data" / "alhambra_f02_vizier_sample.csv"))


@pytest.fixture(scope="session", autouse=True)
def _mlflow_tracking_in_tmp(tmp_path_factory):
    """MLflow never writes into the working tree during tests."""
    d = tmp_path_factory.mktemp("mlflow")
    old = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI",)}
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{d / 'mlflow.db'}"
    yield d
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def _galaxy_spark_logging_restored():
    """Each test starts from the same `galaxy_spark` logger. A job's main() run in process calls
    galaxy_spark.log.setup(), which adds a handler bound to sys.stdout as it is then (under pytest:
    that test's capture) and stops propagation; left in place, the next tests' in-process jobs
    would write into the first one's capture. Handlers, level and propagation are put back."""
    import logging

    root = logging.getLogger("galaxy_spark")
    state = (list(root.handlers), root.level, root.propagate)
    yield
    handlers, level, propagate = state
    for h in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(h)
    root.setLevel(level)
    root.propagate = propagate


def _test_spark(warehouse):
    from galaxy_spark.spark import get_spark

    return get_spark("galaxy_spark-tests", master="local[2]", extra_conf={
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.warehouse.dir": str(warehouse),
        "spark.driver.memory": "2g",
        "spark.sql.codegen.wholeStage": "false",
    })


@pytest.fixture(scope="session")
def _spark_warehouse(tmp_path_factory):
    d = tmp_path_factory.mktemp("spark-warehouse")
    yield d
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()


@pytest.fixture(scope="module")
def spark(_spark_warehouse):
    """A small local SparkSession (local[2], 2 shuffle partitions, no UI), shared by the tests.

    One for the whole run: no module starts or stops its own (in-process jobs are given this one;
    a module that needs a runtime setting sets it and puts it back). Fetched per module through
    getOrCreate, so a test that stopped it anyway (a job's main() run in process stops the session
    it started) costs the next module a restart, not a failure. Stopped once, at the end.

    Whole-stage code generation is off: on tiny test frames, compiling the generated code of the
    wide validation plans costs far more than interpreting them (jobs keep it on)."""
    return _test_spark(_spark_warehouse)


@pytest.fixture(scope="session")
def survey():
    from galaxy_spark.survey import load_survey

    return load_survey("alhambra")


@pytest.fixture(scope="session")
def real_rows_path():
    assert REAL_ROWS.exists(), f"test fixture missing: {REAL_ROWS}"
    return REAL_ROWS


@pytest.fixture(scope="session")
def vizier_frame(real_rows_path):
    """The 817 real rows as a pandas frame of strings (VizieR flavour)."""
    import pandas as pd

    return pd.read_csv(real_rows_path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="session")
def public_frame(vizier_frame, survey):
    """The real rows converted to the public column set and ColorPro sentinels (strings)."""
    from galaxy_spark.catalog.readers import vizier_frame_to_public

    return vizier_frame_to_public(vizier_frame, survey)


# ---- one trained model per session ---------------------------------------------------------------
# The canonical synthetic training catalogue (tests/synthetic.py) and the model trained on it.
MODEL_TRAIN_ROWS, MODEL_TRAIN_SEED = 1500, 3


@dataclass(frozen=True)
class TrainedModel:
    """The session's tiny model: its store directory (``mlflow.db``, ``mlruns/``, the training
    catalogue ``train_catalog/``), the training job's stdout and its MLflow run id."""
    dir: Path
    catalog: Path
    stdout: str
    run_id: str


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory) -> TrainedModel:
    """ONE tiny model for the whole run: jobs/train.py (a real subprocess: Spark, Keras, MLflow),
    default preset, 1 epoch, on ``canonical_frame(load_survey(), n=1500, seed=3)``, into a SQLite
    store of its own; registered as galaxy-ensemble version 1, alias champion.

    Read only: tests never point MLflow at this store, they take a private copy with
    `model_store` (so versions registered, aliases moved or evaluations logged in one module are
    not seen by another)."""
    from galaxy_spark.survey import load_survey
    from synthetic import canonical_frame, job_env, train_tiny_model, write_partitioned

    d = tmp_path_factory.mktemp("model-store")
    write_partitioned(canonical_frame(load_survey(), n=MODEL_TRAIN_ROWS, seed=MODEL_TRAIN_SEED), d / "train_catalog")
    p = train_tiny_model(d / "train_catalog", d, job_env(d))
    run_id = p.stdout.split("MLflow run ", 1)[1].split()[0]
    return TrainedModel(dir=d, catalog=d / "train_catalog", stdout=p.stdout, run_id=run_id)


@pytest.fixture(scope="session")
def model_store(trained_model):
    """``model_store(dest)``: a private copy of the trained model's store in the directory `dest`
    (``dest/mlflow.db``, ``dest/mlruns``, ``dest/train_catalog``; artifact paths rewritten to
    `dest`), in milliseconds; returns `dest`. ``job_env(dest)`` points a job at it."""
    from synthetic import copy_store

    def make(dest: Path) -> Path:
        return copy_store(trained_model.dir, dest)

    return make


# ---- writers for fixtures --------------------------------------------------------------------
def write_csv(frame, path: Path, extra: dict | None = None) -> Path:
    """Public CSV (header line) from a frame of strings; `extra` adds constant columns."""
    f = frame.copy()
    for k, v in (extra or {}).items():
        f[k] = v
    path.parent.mkdir(parents=True, exist_ok=True)
    f.to_csv(path, index=False)
    return path


def write_ascii(frame, path: Path, rename: dict | None = None, names_line: bool = True,
                sextractor: bool = True) -> Path:
    """Public-ASCII file: `##` free text, SExtractor `#  N name desc` lines, a `# ID …` list."""
    names = [rename.get(c, c) if rename else c for c in frame.columns]
    lines = ["## ALHAMBRA ColorProBPZ catalogue (test fixture)", "## free text: 1 2 3"]
    if sextractor:
        lines += [f"#  {i:3d} {n:<20s} column {n} of the catalogue" for i, n in enumerate(names, 1)]
    if names_line:
        lines.append("# " + " ".join(names))
    for row in frame.itertuples(index=False):
        lines.append("  ".join(str(v) for v in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def fixture_writers():
    return {"csv": write_csv, "ascii": write_ascii}


@pytest.fixture()
def raw_row(public_frame):
    """A factory for tiny raw Arrow batches: rows as dicts of overrides on the first real row."""

    def make(survey, overrides: list[dict], fmt: str = "csv"):
        import pyarrow as pa

        from galaxy_spark.catalog import readers as R

        base = public_frame.iloc[0].to_dict()
        cols = R.raw_columns(survey)
        rows = []
        for i, ov in enumerate(overrides):
            vals = {**base, **ov}
            meta = {R.SOURCE_FILE: "test.csv", R.LINE_NUMBER: i + 2, R.INPUT_FORMAT: fmt,
                    R.N_FIELDS: ov.get(R.N_FIELDS, 113), R.EXPECTED_FIELDS: 113,
                    R.RAW_LINE: ",".join(str(vals.get(c, "")) for c in public_frame.columns)}
            rows.append({c: meta[c] if c in meta else vals.get(c) for c in cols})
        types = {R.LINE_NUMBER: pa.int64(), R.N_FIELDS: pa.int32(), R.EXPECTED_FIELDS: pa.int32()}
        schema = pa.schema([pa.field(c, types.get(c, pa.string())) for c in cols])
        return pa.RecordBatch.from_pylist(rows, schema=schema)

    return make
