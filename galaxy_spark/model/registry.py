"""The one model lookup: an MLflow model URI → name, version, run id, and (when asked) the ensemble.

Every job that names a model goes through here: scoring resolves and downloads once on the driver
(`resolve_model`), reprocessing pins an alias to a version without downloading (`pin_model`), and
evaluation loads the ensemble behind the scores' model (`resolve_model(...).ensemble`). MLflow is
imported lazily, so executors that only score never import it.

URIs: models:/name@alias · models:/name/version · models:/name/latest · models:/<model_id> ·
runs:/<run_id>/<path> · any other artifact URI MLflow can download.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from galaxy_spark.errors import InputError
from galaxy_spark.model.ensemble import Ensemble


@dataclass
class ModelRef:
    """A model pinned to a registry version (or a run), without its artifacts."""
    uri: str                 # as given
    name: str
    version: str
    run_id: str

    def as_dict(self) -> dict:
        return {"uri": self.uri, "name": self.name, "version": self.version, "run_id": self.run_id}

    @property
    def pinned(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass
class ResolvedModel(ModelRef):
    """A pinned model with its ensemble loaded (driver side)."""
    ensemble: Ensemble = None
    download_dir: str = ""

    @property
    def key(self) -> str:
        return f"{self.name}/{self.version}/{self.run_id}"

    def provenance(self) -> dict:
        return {"uri": self.uri, "name": self.name, "version": self.version, "run_id": self.run_id,
                "preset": self.ensemble.info.get("preset"), "survey": self.ensemble.feature_spec.survey}


def model_uri_for(name: str | None, version: str | None, run_id: str) -> str:
    """The URI of the model that wrote a score row (registry version when known, else the run)."""
    if name and version and version != "run":
        return f"models:/{name}/{version}"
    return f"runs:/{run_id}/ensemble"


def _message(e) -> str:
    return str(e.message if hasattr(e, "message") else e).strip().splitlines()[0]


def registry_version(client, uri: str, rest: str):
    """The registry ModelVersion that `models:/<rest>` names: name@alias, name/N or name/latest.
    Raises MlflowException when it does not exist (callers turn that into an InputError)."""
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return client.get_model_version_by_alias(name, alias)
    name, ver = rest.split("/", 1)
    if ver == "latest":
        mvs = client.search_model_versions(f"name='{name}'")
        if not mvs:
            raise InputError(f"model {uri}: registered model {name!r} has no versions")
        return max(mvs, key=lambda v: int(v.version))
    return client.get_model_version(name, ver)


def _registry_rest(uri: str) -> str | None:
    """`name@alias`, `name/N` or `name/latest` for a registry URI, else None."""
    if not uri.startswith("models:/"):
        return None
    rest = uri[len("models:/"):].strip("/")
    return rest if ("@" in rest or rest.count("/") == 1) else None


def pin_model(uri: str) -> ModelRef | None:
    """Pin a registry URI to name/version/run id through the MLflow client only (no download).
    None for URI forms that only `resolve_model` can pin (model ids, runs:/, artifact URIs)."""
    rest = _registry_rest(uri)
    if rest is None:
        return None
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        mv = registry_version(MlflowClient(), uri, rest)
    except MlflowException as e:
        raise InputError(f"model {uri!r} could not be resolved: {_message(e)}") from None
    return ModelRef(uri, mv.name, str(mv.version), mv.run_id or "")


def resolve_model(uri: str, dst: str | None = None) -> ResolvedModel:
    """Resolve any model URI once (alias → version), download it and load the NumPy ensemble.

    Aliases are pinned to their version before the download, so an alias moved mid-job cannot
    mix two models. Every failure is an `InputError` naming the URI."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    name, version, run_id, pinned = uri, "", "", uri

    def registered_for_run(rid):
        try:
            mvs = client.search_model_versions(f"run_id='{rid}'")
        except MlflowException:
            return None
        return mvs[0] if len(mvs) == 1 else None

    try:
        if uri.startswith("models:/"):
            rest = uri[len("models:/"):].strip("/")
            if not rest:
                raise InputError(f"model URI {uri!r} names no model")
            if _registry_rest(uri) is not None:
                mv = registry_version(client, uri, rest)
                name, version, run_id = mv.name, str(mv.version), mv.run_id or ""
                pinned = f"models:/{name}/{version}"
            else:
                lm = client.get_logged_model(rest)
                run_id = lm.source_run_id or ""
                name, version = lm.name, rest
                reg = registered_for_run(run_id) if run_id else None
                if reg is not None:
                    name, version = reg.name, str(reg.version)
        elif uri.startswith("runs:/"):
            run_id = uri[len("runs:/"):].split("/", 1)[0]
            client.get_run(run_id)
            reg = registered_for_run(run_id)
            name, version = (reg.name, str(reg.version)) if reg is not None else (uri, "run")
        dst = dst or tempfile.mkdtemp(prefix="galaxy_spark_model_")
        local = mlflow.artifacts.download_artifacts(artifact_uri=pinned, dst_path=dst)
    except MlflowException as e:
        raise InputError(f"model {uri!r} could not be resolved: {_message(e)}") from None
    except OSError as e:
        raise InputError(f"model {uri!r} could not be downloaded: {e}") from None
    local = Path(local)
    candidates = [local / "artifacts" / "ensemble", local, local / "ensemble"]
    ens_dir = next((c for c in candidates if (c / "ensemble.json").exists()), None)
    if ens_dir is None:
        raise InputError(f"model {uri!r} is not a galaxy_spark ensemble (no artifacts/ensemble/ensemble.json)")
    try:
        ens = Ensemble.load(ens_dir)
    except (ValueError, KeyError) as e:
        raise InputError(f"model {uri!r}: cannot load the ensemble: {e}") from None
    run_id = run_id or ens.info.get("training_run_id", "")
    return ResolvedModel(uri, name, version, run_id, ens, str(dst))
