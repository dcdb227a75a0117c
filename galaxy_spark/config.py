"""conf/pipeline.yaml: paths, Spark and MLflow defaults shared by every job."""
from __future__ import annotations

import functools
from pathlib import Path

import yaml

from galaxy_spark.survey import REPO_ROOT

PIPELINE_FILE = REPO_ROOT / "conf" / "pipeline.yaml"


@functools.lru_cache(maxsize=4)
def load_pipeline_config(path: str | None = None) -> dict:
    p = Path(path) if path else PIPELINE_FILE
    if not p.exists():
        raise FileNotFoundError(f"pipeline configuration not found: {p}")
    cfg = yaml.safe_load(p.read_text()) or {}
    for key in ("paths", "spark", "mlflow"):
        if not isinstance(cfg.get(key), dict):
            raise ValueError(f"{p.name}: {key}: missing or not a mapping")
    return cfg
