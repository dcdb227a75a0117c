"""Tiny end-to-end training through real Spark (spark-submit) and a real SQLite MLflow store."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from galaxy_spark.survey import load_survey
from synthetic import canonical_frame, write_partitioned

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    write_partitioned(canonical_frame(load_survey(), n=4000, seed=3), d / "catalog")
    return d


def run(cmd, cwd, env_extra=None, check=True):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd}/mlflow.db", "PYTHONPATH": str(REPO),
           "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable, **(env_extra or {})}
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


@pytest.fixture(scope="module")
def champion(workdir):
    """The default preset trained through spark-submit into the module's store before any test of
    the module looks at it: version 1 of galaxy-ensemble, champion. (The process and its run id.)

    Not the session's tiny model (conftest.py `trained_model`): this module tests training itself,
    through spark-submit, and the challenger check below needs a champion that a 1-epoch paper
    preset reliably loses to (3 epochs on 4,000 rows; against the 1-epoch session model on 1,500
    rows the paper preset won and was promoted)."""
    p = run([str(BIN / "spark-submit"), "--master", "local[2]", str(REPO / "jobs/train.py"), "--catalog",
             str(workdir / "catalog"), "--preset", "default", "--max-epochs", "3"], workdir)
    run_id = p.stdout.split("MLflow run ", 1)[1].split()[0]
    return p, run_id


def _registered_versions(workdir, name="galaxy-ensemble") -> int:
    from mlflow import MlflowClient

    uri = f"sqlite:///{workdir}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return len(client.search_model_versions(f"name = '{name}'"))


def test_train_register_and_load_by_alias(workdir, champion):
    p, run_id = champion
    assert "registered models:/galaxy-ensemble@champion (version 1)" in p.stdout
    assert "Results (preset default)" in p.stdout and "Test split" in p.stdout

    # the MLflow run has a nested run per network, curves and plots (read here, from the store)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlflow.db")
    parent = client.get_run(run_id)
    runs = client.search_runs([parent.info.experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == run_id]
    hist = client.get_metric_history(children[0].info.run_id, "val_loss")
    arts = [a.path for a in client.list_artifacts(children[0].info.run_id, "plots")]
    info = {"parent_is_top": "mlflow.parentRunId" not in parent.data.tags,
            "children": sorted(r.data.tags["mlflow.runName"] for r in children),
            "epochs": len(hist), "plots": arts, "params": parent.data.params, "metrics": sorted(parent.data.metrics)}
    assert info["parent_is_top"]
    assert info["children"] == ["redshift", "sed", "spectral_type", "stellar_mass", "stellarity"]
    assert info["epochs"] >= 1 and any(a.endswith("_loss.png") for a in info["plots"])
    for k in ("preset", "catalogue_fingerprint", "git_commit", "seed", "train_fraction", "n_test"):
        assert k in info["params"]
    assert "test_catalogue_redshift_sigma_nmad" in info["metrics"]
    assert "sel_redshift_sigma_nmad" in info["metrics"]

    # a new process loads the champion by alias and predicts the four estimates
    pred = run([sys.executable, "-c", f"""
import sys, mlflow
sys.path.insert(0, "{REPO / 'tests'}")
from synthetic import canonical_frame
from galaxy_spark.survey import load_survey
df = canonical_frame(load_survey(), n=50, seed=9)
m = mlflow.pyfunc.load_model("models:/galaxy-ensemble@champion")
out = m.predict(df)
print(len(out), ",".join(out.columns), int(out["z_phot"].notna().sum()))
"""], workdir)
    n, cols, finite = pred.stdout.strip().splitlines()[-1].split()
    assert int(n) == 50 and int(finite) == 50
    for c in ("z_phot", "z_phot_lo68", "z_phot_hi95", "p_star", "star_class", "quality_flags", "spectral_type", "log_stellar_mass"):
        assert c in cols.split(",")


def test_worse_model_becomes_challenger_unless_promoted(workdir, champion):
    # against the default-preset champion of the `champion` fixture; version numbers are counted
    # from what the store holds now, so the test does not depend on which tests ran before it
    n = _registered_versions(workdir)
    p = run([sys.executable, str(REPO / "jobs/train.py"), "--catalog", str(workdir / "catalog"),
             "--preset", "paper", "--max-epochs", "1"], workdir)
    assert f"version {n + 1} as challenger" in p.stdout
    p = run([sys.executable, str(REPO / "jobs/train.py"), "--catalog", str(workdir / "catalog"),
             "--preset", "paper", "--max-epochs", "1", "--promote"], workdir)
    assert f"version {n + 2} as champion (--promote)" in p.stdout
    # each version describes itself; the model's tags cover every version's preset
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlflow.db")
    assert client.get_model_version("galaxy-ensemble", str(n + 2)).tags["preset"] == "paper"
    assert client.get_registered_model("galaxy-ensemble").tags["presets"] == "default,paper"


def test_missing_catalogue_is_a_clear_error(tmp_path):
    p = run([sys.executable, str(REPO / "jobs/train.py"), "--catalog", str(tmp_path / "nope")], tmp_path, check=False)
    assert p.returncode == 2
    assert "catalogue not found" in p.stderr and "Traceback" not in p.stderr


def _spec_file(path: Path) -> Path:
    """A spectroscopic sample of the workdir catalogue: 700 galaxies (z_spec = z_true) and 60 stars,
    plus rows a real file has: IDs not in the catalogue, a duplicate, a non-numeric redshift."""
    import numpy as np
    import pandas as pd

    df = canonical_frame(load_survey(), n=4000, seed=3)
    gal, star = df[df["is_star"] == 0].head(700), df[df["is_star"] == 1].head(60)
    spec = pd.DataFrame({"ID": np.r_[gal["ID"], star["ID"]], "z_spec": np.r_[gal["z_true"], np.zeros(len(star))],
                         "spec_class": ["galaxy"] * len(gal) + ["star"] * len(star), "z_spec_quality": 4})
    other = df[df["is_star"] == 0]["ID"].iloc[900]      # a catalogue galaxy without a spectrum
    extra = pd.DataFrame({"ID": [1, 2, 3, spec["ID"].iloc[0], other],
                          "z_spec": [0.5, 0.6, 0.7, 0.3, "abc"], "spec_class": "galaxy", "z_spec_quality": 4})
    pd.concat([spec, extra]).to_csv(path, index=False)
    return path


def test_spec_label_modes(workdir):
    from mlflow import MlflowClient

    from galaxy_spark.model.tracking import EXPERIMENT_KIND_TAG, TRAINING_KIND

    spec = _spec_file(workdir / "specz.csv")
    # an experiment made before training tagged its kind gets the tag too
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlflow.db")
    client.create_experiment("spec-modes")
    p = run([sys.executable, str(REPO / "jobs/train.py"), "--catalog", str(workdir / "catalog"), "--labels",
             "spec+catalogue", "--spec", str(spec), "--max-epochs", "1", "--register", "",
             "--experiment", "spec-modes"], workdir)
    report = json.loads(p.stdout.split("spectroscopic sample ")[1].split(": ", 1)[1].splitlines()[0])
    assert report["rejected"] == {"duplicate_id": 2, "z_spec_not_numeric": 1}
    assert report["not_in_catalogue"] == 3 and report["matched"] == 759
    assert "(fine-tuning)" in p.stdout
    exp = client.get_experiment_by_name("spec-modes")
    assert exp.tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND
    runs = client.search_runs([exp.experiment_id])
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags][0]
    kids = {r.data.tags["mlflow.runName"]: r.data.params for r in runs if "mlflow.parentRunId" in r.data.tags}
    info = {"params": parent.data.params, "metrics": sorted(parent.data.metrics), "kids": kids}
    assert info["params"]["label_source"] == "spec+catalogue" and info["params"]["selection_labels"] == "spec"
    assert info["kids"]["redshift"]["labels"] == "catalogue -> spec"
    assert info["kids"]["stellar_mass"]["labels"] == "catalogue"
    assert "test_spec_redshift_sigma_nmad" in info["metrics"] and "test_truth_redshift_sigma_nmad" in info["metrics"]

    p = run([sys.executable, str(REPO / "jobs/train.py"), "--catalog", str(workdir / "catalog"), "--labels", "spec"],
            workdir, check=False)
    assert p.returncode == 2 and "needs --spec PATH" in p.stderr and "Traceback" not in p.stderr
