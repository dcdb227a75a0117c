"""The packaged configuration files and the pipeline defaults (pipeline.yaml).

The configuration ships inside the package, so an installed wheel runs without this repository::

    galaxy_spark/conf/pipeline.yaml          paths, Spark and MLflow defaults shared by every job
    galaxy_spark/conf/surveys/<name>.yaml    one file per survey (galaxy_spark.survey)
    galaxy_spark/conf/presets/<name>.yaml    network presets (galaxy_spark.model.nets)

Overrides, in order of precedence:

1. an explicit path to a YAML file (``--survey path.yaml``, ``--preset path.yaml``) is used as given;
2. ``GALAXY_SPARK_CONF_DIR=DIR``: a directory with the same layout (``DIR/pipeline.yaml``,
   ``DIR/surveys/<name>.yaml``, ``DIR/presets/<name>.yaml``); a file found there wins, a file it
   lacks comes from the package;
3. the packaged file.

Files are located through `importlib.resources`, so the lookup works wherever the package is
installed (site-packages, an unpacked wheel, an editable checkout).
"""
from __future__ import annotations

import functools
import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

CONF_DIR_ENV = "GALAXY_SPARK_CONF_DIR"
PIPELINE_NAME = "pipeline.yaml"
SURVEYS = "surveys"
PRESETS = "presets"
YAML_SUFFIXES = (".yaml", ".yml")


def packaged_conf() -> Traversable:
    """The configuration directory inside the installed package (galaxy_spark/conf)."""
    return resources.files("galaxy_spark").joinpath("conf")


def conf_roots() -> list[Traversable]:
    """Directories searched for configuration files, first match wins: $GALAXY_SPARK_CONF_DIR
    (when set), then the packaged directory."""
    override = os.environ.get(CONF_DIR_ENV)
    return ([Path(override)] if override else []) + [packaged_conf()]


def is_yaml_path(name_or_path: str | os.PathLike) -> bool:
    """True when the argument names a YAML file (used as given) rather than a packaged name."""
    return Path(name_or_path).suffix in YAML_SUFFIXES


def find_conf(group: str, name: str) -> Traversable | None:
    """`<root>/<group>/<name>.yaml` in the first root that has it (group '' = top level); None
    when no root has it."""
    for root in conf_roots():
        d = root.joinpath(group) if group else root
        f = d.joinpath(name if is_yaml_path(name) else f"{name}.yaml")
        if f.is_file():
            return f
    return None


def conf_names(group: str) -> list[str]:
    """The names (file stems) of every `<group>/*.yaml` in any root, sorted: for error messages."""
    names = set()
    for root in conf_roots():
        d = root.joinpath(group)
        if d.is_dir():
            names |= {Path(f.name).stem for f in d.iterdir() if Path(f.name).suffix in YAML_SUFFIXES}
    return sorted(names)


def searched(group: str, name: str) -> str:
    """Where `find_conf` looked, for an error message."""
    file = name if is_yaml_path(name) else f"{name}.yaml"
    return ", ".join(str(r.joinpath(group, file) if group else r.joinpath(file)) for r in conf_roots())


def pipeline_file(path: str | None = None) -> Traversable:
    """The pipeline configuration to read: `path` when given, else pipeline.yaml from
    $GALAXY_SPARK_CONF_DIR or the package; FileNotFoundError naming where it looked."""
    if path:
        if not Path(path).is_file():
            raise FileNotFoundError(f"pipeline configuration not found: {path}")
        return Path(path)
    p = find_conf("", PIPELINE_NAME)
    if p is None:
        raise FileNotFoundError(f"pipeline configuration not found (looked in {searched('', PIPELINE_NAME)})")
    return p


@functools.lru_cache(maxsize=4)
def _load_pipeline_config(path: str | None, resolved: str) -> dict:
    p = pipeline_file(path)
    cfg = yaml.safe_load(p.read_text()) or {}
    for key in ("paths", "spark", "mlflow"):
        if not isinstance(cfg.get(key), dict):
            raise ValueError(f"{p.name}: {key}: missing or not a mapping")
    return cfg


def default_survey() -> str:
    """The survey a job uses without --survey: pipeline.yaml's `survey:` key."""
    return str(load_pipeline_config().get("survey") or "")


def load_pipeline_config(path: str | None = None) -> dict:
    """The pipeline defaults: `path` when given, else pipeline.yaml from $GALAXY_SPARK_CONF_DIR or
    the package. Keys `paths`, `spark` and `mlflow` (mappings) are required; command-line flags
    override what it says. Cached per file."""
    return _load_pipeline_config(path, str(pipeline_file(path)))
