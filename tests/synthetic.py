"""Tiny synthetic catalogues in the canonical schema, for unit and end-to-end tests, and the
plumbing around them: the jobs' subprocess environment, the tiny training, private copies of an
MLflow store, pointing this process at one store for a while.

Not the mock (jobs/mock.py): just enough structure (colours that move with redshift, stars with
flat colours, labels tied to the truth) for training mechanics to be testable in seconds.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from galaxy_spark.survey import DETECTED, NOT_DETECTED, NOT_OBSERVED, Survey, lim_column, state_column


def canonical_frame(survey: Survey, n: int = 3000, seed: int = 0, star_fraction: float = 0.1) -> pd.DataFrame:
    warnings.simplefilter("ignore", pd.errors.PerformanceWarning)  # column-by-column build is fine here
    rng = np.random.default_rng(seed)
    cats = survey.ccd_catalogues()
    pick = rng.integers(0, len(cats), n)
    field = np.array([cats[i][0] for i in pick])
    pointing = np.array([cats[i][1] for i in pick])
    ccd = np.array([cats[i][2] for i in pick])
    ids = np.array([survey.make_id(f, p, c, i + 1) for i, (f, p, c) in enumerate(zip(field, pointing, ccd))])
    is_star = rng.random(n) < star_fraction
    z = np.where(is_star, 0.0, rng.gamma(2.0, 0.3, n).clip(0.02, 3.5))
    t = np.where(is_star, 1.0, rng.uniform(1, 11, n))
    m0 = rng.uniform(18, 24, n)
    df = pd.DataFrame({survey.id_column: ids.astype(np.int64), "Field": field.astype(np.int32),
                       "Pointing": pointing.astype(np.int32), "CCD": ccd.astype(np.int32),
                       "RA": rng.uniform(0, 1, n), "Dec": rng.uniform(0, 1, n)})
    for c in survey.leading:
        if c.name not in df:
            df[c.name] = rng.uniform(0.1, 5, n) if c.type == "double" else rng.integers(0, 3, n)
    df["fwhm"] = np.where(is_star, 1.0, 1.0 + rng.gamma(2, 0.5, n)) + rng.normal(0, 0.05, n)
    df["stell"] = np.where(is_star, rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.4, n))
    for b in survey.bands:
        x = np.log(b.pivot_aa / 8000.0)
        # a break that moves with redshift, a slope with type; stars are a blackbody-ish slope
        colour = np.where(is_star, -0.8 * x, 1.5 / (1 + np.exp(-(b.pivot_aa / (4000 * (1 + z)) - 1) * 8))
                          - 0.75 - 0.12 * (t - 6) * x)
        depth1 = b.depth_5sigma + 1.747
        mag = m0 + colour
        err = 0.02 + 0.3 * 10 ** (0.4 * (mag - depth1))
        obs = mag + rng.normal(0, 1, n) * err
        state = np.where(obs > depth1, NOT_DETECTED, DETECTED)
        state = np.where(rng.random(n) < 0.01, NOT_OBSERVED, state)
        if b.name == survey.detection_band:
            state[:] = DETECTED
        df[b.name] = np.where(state == DETECTED, obs, np.nan)
        df[survey.error_column(b.name)] = np.where(state == DETECTED, err, np.nan)
        df[lim_column(b.name)] = np.where(state == NOT_DETECTED, depth1, np.nan)
        df[state_column(b.name)] = state.astype(np.int8)
    for c in survey.trailing:
        df[c.name] = rng.uniform(0, 1, n) if c.type == "double" else rng.integers(0, 2, n).astype(np.int32)
    df["zb_1"] = np.clip(z + rng.normal(0, 0.02, n) * (1 + z), 0, None)
    df["Tb_1"] = np.clip(t + rng.normal(0, 0.3, n), 1, 11)
    df["Stell_Mass_1"] = 0.4 * (24 - m0) + 8 + 0.8 * np.log1p(z) - 0.05 * t + rng.normal(0, 0.1, n)
    df["z_true"], df["type_true"] = z, t
    df["logmass_true"] = df["Stell_Mass_1"] + rng.normal(0, 0.05, n)
    df["is_star"] = is_star.astype(np.int32)
    df["source_file"] = "synthetic"
    return df.copy()


def write_partitioned(df: pd.DataFrame, path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_to_dataset(pa.Table.from_pandas(df, preserve_index=False), str(path), partition_cols=["Field"])


def job_env(workdir, **extra) -> dict:
    """Environment for running the jobs as subprocesses against an MLflow store in `workdir`."""
    import os
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir}/mlflow.db", "PYTHONPATH": str(repo),
            "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", **extra}


def train_tiny_model(catalog, workdir, env: dict, *extra_args: str, timeout: int = 900):
    """Train the default preset for one epoch with jobs/train.py (registers galaxy-ensemble);
    the CompletedProcess, after checking it succeeded."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    p = subprocess.run([sys.executable, str(repo / "jobs/train.py"), "--catalog", str(catalog), "--preset",
                        "default", "--max-epochs", "1", *extra_args], cwd=workdir, env=env,
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"training failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return p


def copy_store(src, dst):
    """A private copy of the MLflow store directory `src` (``mlflow.db`` + ``mlruns/`` artifacts +
    whatever else is there, e.g. the training catalogue) in `dst` (created, or empty); returns `dst`.

    MLflow records absolute artifact locations (experiments, runs, logged models, model versions;
    the catalogue path in the params): every path under `src` written in the database, and in the
    MLmodel files, is rewritten to `dst`, so whatever is logged, registered or re-aliased in the
    copy (new runs, evaluation artifacts logged to the model's run, new versions) stays in it."""
    import shutil
    import sqlite3
    from pathlib import Path

    src, dst = Path(src), Path(dst)
    shutil.copytree(src, dst, dirs_exist_ok=True)
    old, new = f"{src}/", f"{dst}/"
    con = sqlite3.connect(dst / "mlflow.db")
    try:
        with con:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for t in tables:
                for col in con.execute(f'PRAGMA table_info("{t}")').fetchall():
                    name, kind = col[1], (col[2] or "").upper()
                    if any(k in kind for k in ("CHAR", "TEXT", "CLOB")):
                        con.execute(f'UPDATE "{t}" SET "{name}" = replace("{name}", ?, ?) '
                                    f'WHERE instr("{name}", ?) > 0', (old, new, old))
    finally:
        con.close()
    for mlmodel in (dst / "mlruns").rglob("MLmodel"):
        text = mlmodel.read_text()
        if old in text:
            mlmodel.write_text(text.replace(old, new))
    return dst


class use_tracking_uri:
    """``with use_tracking_uri(uri):`` this process's MLflow (``MLFLOW_TRACKING_URI`` and MLflow's
    own global, which ``mlflow.set_tracking_uri`` sets and which wins over the variable) points at
    `uri`; both are put back on exit, so no test module leaves the next one on its store."""

    def __init__(self, uri: str):
        self.uri = uri

    def __enter__(self):
        import os

        import mlflow
        from mlflow.tracking._tracking_service import utils as tracking_utils

        self._env = os.environ.get("MLFLOW_TRACKING_URI")
        self._global = getattr(tracking_utils, "_tracking_uri", None)   # None unless set_tracking_uri ran
        mlflow.set_tracking_uri(self.uri)                 # sets the variable too
        return self

    def __exit__(self, *exc):
        import os

        import mlflow

        mlflow.set_tracking_uri(self._global)             # None: unset (and the variable with it)
        if self._env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = self._env
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a server a test starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hide_project_code(repo: str) -> str:
    """Python source that, run first in an interpreter, makes this project's code unimportable
    there: the editable install's finder and path hook, and the repository on sys.path (the
    libraries of the venv stay). For tests of code that must come from elsewhere (a model
    artifact, --py-files)."""
    return (
        "import sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path\n"
        "                    if 'editable' not in getattr(f, '__name__', type(f).__name__).lower()]\n"
        f"sys.path[:] = [p for p in sys.path if p and '__editable__' not in p and p.rstrip('/') != {repo!r}]\n"
    )
