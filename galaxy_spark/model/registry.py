"""The one model lookup: an MLflow model URI → name, version, run id, and (when asked) the ensemble.

Every job that names a model goes through here: scoring resolves and downloads once on the driver
(`resolve_model`), reprocessing pins an alias to a version without downloading (`pin_model`), and
evaluation loads the ensemble behind the scores' model (`resolve_model(...).ensemble`). Training
describes what it registers (`describe_version`: descriptions and tags for the registry's pages
and searches). MLflow is imported lazily, so executors that only score never import it.

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
from galaxy_spark.model.heads import HEADS, output_table
from galaxy_spark.model.tracking import check_store_exists


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
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    check_store_exists(mlflow.get_tracking_uri())      # a lookup never creates a store
    try:
        mv = registry_version(MlflowClient(), uri, rest)
    except MlflowException as e:
        raise InputError(f"model {uri!r} could not be resolved in tracking store {mlflow.get_tracking_uri()}: "
                         f"{_message(e)}") from None
    return ModelRef(uri, mv.name, str(mv.version), mv.run_id or "")


def resolve_model(uri: str, dst: str | None = None) -> ResolvedModel:
    """Resolve any model URI once (alias → version), download it and load the NumPy ensemble.

    Aliases are pinned to their version before the download, so an alias moved mid-job cannot
    mix two models. Every failure is an `InputError` naming the URI."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    check_store_exists(mlflow.get_tracking_uri())      # a lookup never creates a store
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
        raise InputError(f"model {uri!r} could not be resolved in tracking store {mlflow.get_tracking_uri()}: "
                         f"{_message(e)}") from None
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


# ---- what the registry shows: descriptions and tags ----------------------------------------------
# The training run's params copied to version tags, and its test metrics (test_<labels>_<key>).
VERSION_PARAMS = ("survey", "preset", "label_source", "selection_labels", "catalogue_fingerprint", "git_commit")
HEADLINE = {"redshift_sigma_nmad": "redshift σ_NMAD", "redshift_outlier_frac": "redshift outlier fraction",
            "redshift_bias": "redshift bias", "stellarity_roc_auc": "star/galaxy ROC AUC",
            "spectral_type_nmad": "spectral type NMAD", "stellar_mass_nmad": "stellar mass NMAD"}
MODEL_UNIONS = {"survey": "survey", "presets": "preset", "label_sources": "label_source"}


def _model_description(name: str) -> str:
    outputs = "\n".join(f"- `{c.name}` ({c.dtype}, {c.unit or '-'}): {c.description}" for c in output_table())
    networks = ", ".join(f"{h.name} ({h.kind}{', optional' if h.optional else ''})" for h in HEADS)
    return (f"galaxy_spark ensemble: one network per head ({networks}) with their slope corrections, "
            f"evaluated in NumPy; presets with an SED network add the rest-frame spectrum's coefficients, "
            f"rest-frame colours, absolute and synthetic magnitudes (each version's signature lists its "
            f"columns).\n\n"
            f"**Inputs**: one row per object, the survey catalogue's photometry in the canonical schema "
            f"(each version's signature lists the columns). The model checks them: a missing column is a 400 naming it; "
            f"a row with a band state, magnitude, limit or error outside the survey's valid set gets null estimates "
            f"and quality flag 16.\n\n**Outputs**:\n{outputs}\n\n"
            f"**Scoring**: `spark-submit jobs/score.py --catalog data/catalog --model models:/{name}@champion`, "
            f"or `mlflow.pyfunc.load_model(\"models:/{name}@champion\").predict(rows)`.\n\n"
            f"Each version's description and tags give its survey, preset, labels, training catalogue "
            f"and test metrics; this model's tags list the surveys, presets and label sources of all versions.")


def describe_version(name: str, version: str | int) -> dict:
    """Give registered model `name` and its `version` a description and tags, from what the
    version's training run logged (params `VERSION_PARAMS`, `HEADLINE` test metrics). The model's
    tags are the unions over all its versions. Returns the version's tags."""
    from mlflow import MlflowClient

    client = MlflowClient()
    mv = client.get_model_version(name, str(version))
    run = client.get_run(mv.run_id).data
    tags = {k: run.params[k] for k in VERSION_PARAMS if k in run.params}
    tags["training_run"] = mv.run_id
    lines = []
    for labels in ("spec", "catalogue", "truth"):
        found = {k: run.metrics[f"test_{labels}_{k}"] for k in HEADLINE if f"test_{labels}_{k}" in run.metrics}
        tags.update({f"test_{labels}_{k}": f"{v:.4g}" for k, v in found.items()})
        if found:
            lines.append(f"- against the {labels} labels: " + ", ".join(f"{HEADLINE[k]} {v:.4g}" for k, v in found.items()))
    p = run.params
    client.update_model_version(name, mv.version, (
        f"Preset `{p.get('preset')}` for survey `{p.get('survey')}`, trained on labels `{p.get('label_source')}` "
        f"from catalogue `{p.get('catalogue')}` (fingerprint `{p.get('catalogue_fingerprint')}`), code "
        f"`{p.get('git_commit')}`, training run `{mv.run_id}`.\n\nTest split ({p.get('n_test')} objects, "
        f"never trained on):\n" + "\n".join(lines)))
    for k, v in tags.items():
        client.set_model_version_tag(name, mv.version, k, v)
    # The model's tags: every version's values, so a search finds the model by any of them.
    values = {k: set() for k in MODEL_UNIONS}
    for other in client.search_model_versions(f"name='{name}'"):
        for k, param in MODEL_UNIONS.items():
            if param in other.tags:
                values[k].add(other.tags[param])
    client.update_registered_model(name, _model_description(name))
    for k, vs in values.items():
        if vs:
            client.set_registered_model_tag(name, k, ",".join(sorted(vs)))
    return tags
