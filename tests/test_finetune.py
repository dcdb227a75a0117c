"""Sim-to-real fine-tuning (galaxy_spark/train/finetune.py, jobs/realdata_check.py --finetune-folds K):
the Keras rebuild of a NumPy network, the fold scheme (no object scored by a network that trained
on it), that fine-tuning moves predictions toward its labels, and the job end to end on the 817
real rows. The session's tiny model, in a private copy of its SQLite MLflow store."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from galaxy_spark.train import finetune as F
from galaxy_spark.model.ensemble import DenseStack, Ensemble
from galaxy_spark.model.heads import pdf_quantiles
from galaxy_spark.errors import InputError
from galaxy_spark.features import build_features
from galaxy_spark.survey import load_survey
from synthetic import canonical_frame, job_env, use_tracking_uri

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, model_store):
    """The session's tiny model, in a private copy of its store (the job below runs against it)."""
    d = model_store(tmp_path_factory.mktemp("finetune"))
    env = job_env(d)
    from galaxy_spark.model.registry import resolve_model

    with use_tracking_uri(env["MLFLOW_TRACKING_URI"]):
        ens = resolve_model("models:/galaxy-ensemble@champion").ensemble
    yield {"dir": d, "env": env, "ensemble": ens}


@pytest.fixture(scope="module")
def rows(tiny):
    """Synthetic rows the tiny model never saw: features, galaxy mask, labels."""
    df = canonical_frame(load_survey(), n=600, seed=11)
    x, ok = build_features(df, tiny["ensemble"].feature_spec)
    gal = (df["is_star"].to_numpy() == 0) & ok
    return {"x": x, "ok": ok, "gal": gal, "z": df["zb_1"].to_numpy(float), "ids": df["ID"].to_numpy(np.int64)}


def _point(net, x):
    out = net.raw(x)
    return pdf_quantiles(out, net.z_bins, [0.5])[:, 0] if net.kind == "pdf" else out[:, 0]


# ---- (a) the Keras rebuild -----------------------------------------------------------------------
def test_keras_rebuild_reproduces_the_numpy_networks(tiny, rows):
    ens = tiny["ensemble"]
    cfg, dropout, source = F.finetune_config(ens)
    assert source == "preset 'default'" and cfg["kind"] == "pdf" and cfg["z_bins"]["count"] == 200
    assert dropout is not None and any(dropout)       # the preset's dropout rates travel along (training only)
    x = rows["x"]
    for name, net in ens.networks.items():
        model = F.keras_from_stack(net.stack, dropout if name == "redshift" else None)
        keras_out = np.asarray(model(x, training=False))
        assert np.max(np.abs(keras_out - net.stack(x))) < 1e-5, name
        back = F.stack_from_keras(model, net.stack.norm)
        np.testing.assert_array_equal(back(x), net.stack(x))      # weights and norm round-trip exactly
        assert [la["activation"] for la in back.layers] == [la["activation"] for la in net.stack.layers]


def test_keras_rebuild_without_normalisation_and_with_an_input_layer():
    """The paper preset's shape: no Normalization, a Dense(n_inputs) input layer, linear layers."""
    from galaxy_spark.model.nets import build_network, extract_layers, load_preset

    rng = np.random.default_rng(1)
    model = build_network(load_preset("paper")["networks"]["stellarity"], 24)
    norm, dense = extract_layers(model)
    stack = DenseStack([{**la, "W": la["W"] + rng.normal(0, 0.3, la["W"].shape).astype(np.float32)} for la in dense], norm)
    x = rng.normal(20, 2, (300, 24)).astype(np.float32)
    rebuilt = F.keras_from_stack(stack)
    assert norm is None and len(rebuilt.layers) == 1 + len(dense)
    # Unnormalised magnitudes through perturbed linear layers give logits in the hundreds, so float32
    # summation order alone moves the softmax by ~1e-5; a wrong weight or activation moves it by ~0.1.
    assert np.max(np.abs(np.asarray(rebuilt(x, training=False)) - stack(x))) < 1e-4


# ---- (b) folds -----------------------------------------------------------------------------------
def test_fold_plan_never_trains_on_a_row_it_predicts():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 2 ** 62, 900, dtype=np.int64)
    labelled = rng.random(900) < 0.8
    for k in (2, 3, 5, 10):
        plan = F.fold_plan(ids, labelled, k, seed=7)
        assert [p["fold"] for p in plan] == list(range(k))
        predicted = np.concatenate([p["predict"] for p in plan])
        assert np.array_equal(np.sort(predicted), np.arange(900))          # every row exactly once
        for p in plan:
            pr, tr, va = set(p["predict"]), set(p["train"]), set(p["validation"])
            assert not (pr & tr) and not (pr & va) and not (tr & va)
            assert tr | va == set(np.flatnonzero(labelled)) - pr          # all other labelled rows
            assert len(va) == math.ceil(0.15 * (len(tr) + len(va)))
        sizes = np.array([len(p["predict"]) for p in plan])
        assert sizes.min() > 0.6 * 900 / k                                 # hash folds are roughly even


def test_folds_are_a_pure_function_of_the_id():
    ids = np.arange(1000, 3000, dtype=np.int64) * 7919
    f = F.assign_folds(ids, 5, seed=3)
    perm = np.random.default_rng(2).permutation(len(ids))
    assert np.array_equal(F.assign_folds(ids[perm], 5, seed=3), f[perm])  # order-free
    assert np.array_equal(F.assign_folds(ids, 5, seed=3), f)              # deterministic
    assert not np.array_equal(F.assign_folds(ids, 5, seed=4), f)          # seeded
    assert set(np.unique(f)) == set(range(5))
    # independent of the training split hash (unsalted): fold 0 is not the test split
    from galaxy_spark.features import id_hash_unit

    test_split = id_hash_unit(ids) < 0.2
    assert 0.1 < np.mean(f[test_split] == 0) < 0.3


def test_crossval_scores_each_row_with_a_network_that_never_saw_it(monkeypatch):
    """The wiring: row r is predicted by the fold-k model, whose training and early-stopping rows
    (recorded by a stand-in for the fine-tuning) never include r."""
    n = 400
    x = np.arange(n, dtype=np.float32)[:, None]          # feature 0 = the row number
    seen = {}

    class Fake:
        def __init__(self, fold):
            self.fold = fold

        def predict_features(self, xs, ok):
            return pd.DataFrame({"z_phot": np.full(len(xs), float(self.fold)), "scorable": ok})

    def fake_finetune(ensemble, x_tr, z_tr, x_va, z_va, settings, seed=None):
        fold = seed - settings.seed
        seen[fold] = set(x_tr[:, 0].astype(int)) | set(x_va[:, 0].astype(int))
        return Fake(fold), {"n_train": len(x_tr), "n_validation": len(x_va), "epochs_run": 0,
                            "val_loss_before": 0.0, "val_loss_after": 0.0, "improved": False}

    monkeypatch.setattr(F, "finetune_network", fake_finetune)
    ids = np.arange(n, dtype=np.int64) * 104729 + 17
    labelled = np.arange(n) % 4 != 0
    pred, folds = F.crossval_predict(None, x, np.ones(n, bool), np.ones(n), ids, labelled, 4,
                                     F.FinetuneSettings(), echo=lambda s: None)
    fold_of_row = pred["z_phot"].to_numpy().astype(int)
    assert np.array_equal(fold_of_row, F.assign_folds(ids, 4, F.FinetuneSettings().seed))
    for r in range(n):
        assert r not in seen[fold_of_row[r]]
    assert sum(f["n_predicted"] for f in folds) == n


def test_bad_fold_counts_are_input_errors():
    for k in (1, -1, -5):
        with pytest.raises(InputError, match="--finetune-folds must be 0 .off. or at least 2"):
            F.check_folds(k)
    F.check_folds(0)
    ids = np.arange(1, 31, dtype=np.int64)
    with pytest.raises(InputError, match="more than the 30 labelled galaxies"):
        F.fold_plan(ids, np.ones(30, bool), 31)
    with pytest.raises(InputError, match="use fewer folds"):
        F.fold_plan(ids[:12], np.ones(12, bool), 2)      # too few galaxies outside a fold to fine-tune on
    with pytest.raises(InputError, match="only apply with --finetune-folds"):
        F.check_options(0, None, "spec.csv", F.FinetuneSettings())


def test_realdata_check_refuses_bad_folds_before_any_work(tmp_path, real_rows_path):
    for k in ("1", "-2"):
        p = subprocess.run([sys.executable, str(REPO / "jobs/realdata_check.py"), "--input", str(real_rows_path),
                            "--out", str(tmp_path / "r"), "--finetune-folds", k], cwd=tmp_path,
                           env=job_env(tmp_path), capture_output=True, text=True, timeout=120)
        assert p.returncode == 2 and "error: --finetune-folds must be 0 (off) or at least 2" in p.stderr, p.stderr
        assert "Traceback" not in p.stderr and not (tmp_path / "r").exists()


def test_labels_from_a_column_or_a_spectroscopic_file(tmp_path):
    sv = load_survey()
    cat = pd.DataFrame({"ID": np.array([11, 12, 13, 14], np.int64), "zb_1": [0.1, 0.2, np.nan, 0.4]})
    z, name, desc = F.realdata_labels(cat, sv, None, None)
    assert name == "zb_1" and "BPZ" in desc and np.isnan(z[2]) and z[3] == 0.4
    with pytest.raises(InputError, match="--finetune-label z_spec: no such column.*--finetune-spec"):
        F.realdata_labels(cat, sv, "z_spec", None)
    spec = tmp_path / "spec.csv"
    pd.DataFrame({"ID": [12, 13, 14, 99], "z_spec": [0.25, 0.5, 0.0, 1.0], "spec_class": ["galaxy", "galaxy", "star", "galaxy"],
                  "z_spec_quality": [4, 2, 4, 4]}).to_csv(spec, index=False)
    z, name, desc = F.realdata_labels(cat, sv, None, str(spec))
    assert name == "z_spec" and "1 secure galaxy spectra" in desc
    np.testing.assert_array_equal(np.isfinite(z), [False, True, False, False])   # insecure and star dropped
    assert z[1] == 0.25


# ---- (c) fine-tuning moves predictions toward its labels ----------------------------------------
def test_finetuning_on_shifted_labels_moves_predictions_toward_them(tiny, rows):
    ens = tiny["ensemble"]
    x, ok, gal = rows["x"], rows["ok"], rows["gal"]
    shift = 0.5
    z = rows["z"] + shift
    va = F._salted_unit(rows["ids"], F.INNER_SALT, 0) < 0.15
    tr_m, va_m = gal & ~va, gal & va
    settings = F.FinetuneSettings(epochs=8, lr_factor=1.0, patience=3, seed=1, calibration="keep")
    new, info = F.finetune_network(ens, x[tr_m], z[tr_m], x[va_m], z[va_m], settings)
    assert info["improved"] and info["val_loss_after"] < info["val_loss_before"]
    # only the redshift network changed; with calibration="keep" its slope correction too
    for name in ("stellarity", "spectral_type", "stellar_mass"):
        assert new.networks[name] is ens.networks[name]
    assert new.networks["redshift"].calibration is ens.networks["redshift"].calibration
    assert new.info["finetuned"]["network"] == "redshift" and new.feature_spec == ens.feature_spec
    before, after = _point(ens.networks["redshift"], x), _point(new.networks["redshift"], x)
    g = gal
    err_before = np.median(np.abs(before[g] - z[g]))
    err_after = np.median(np.abs(after[g] - z[g]))
    assert err_after < 0.5 * err_before
    assert abs(np.median(after[g] - z[g])) < 0.25
    # toward the shifted labels, not merely toward the unshifted ones
    assert np.median(np.abs(after[g] - z[g])) < np.median(np.abs(after[g] - (z[g] - shift)))
    # with the slope correction refitted on the early-stopping rows, the ensemble's z_phot follows
    refit = F.recalibrated(new.networks["redshift"], ens.networks["redshift"].calibration, x[va_m], z[va_m], "refit")
    ens_refit = Ensemble(ens.feature_spec, {**new.networks, "redshift": refit}, new.info)
    zp_before = ens.predict_features(x, ok)["z_phot"].to_numpy()
    zp_after = ens_refit.predict_features(x, ok)["z_phot"].to_numpy()
    assert np.median(np.abs(zp_after[g] - z[g])) < 0.5 * np.median(np.abs(zp_before[g] - z[g]))
    # the new ensemble saves and loads like any other
    loaded = Ensemble.load(ens_refit.save(tiny["dir"] / "finetuned"))
    np.testing.assert_allclose(loaded.predict_features(x, ok)["z_phot"], zp_after, rtol=0, atol=1e-12)


# ---- (d) the job end to end on the 817 real rows --------------------------------------------------
def test_realdata_check_with_finetune_folds(tiny, real_rows_path):
    d = tiny["dir"]
    out = d / "reports" / "realdata_ft"
    p = subprocess.run([sys.executable, str(REPO / "jobs/realdata_check.py"), "--input", str(real_rows_path),
                        "--out", str(out), "--finetune-folds", "3", "--finetune-epochs", "3"],
                       cwd=d, env=tiny["env"], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    m = json.loads((out / "metrics.json").read_text())
    ft = m["finetune"]
    assert ft["folds"] == 3 and ft["label"] == "zb_1" and ft["sample"] == "F814W < 22.5 galaxies"
    assert ft["settings"]["epochs"] == 3 and ft["settings"]["calibration"] == "refit"
    bright = m["samples"]["galaxies, F814W < 22.5"]
    gal = m["samples"]["all galaxies"]
    for entry, ref in ((ft, bright), (ft["all_galaxies"], gal)):
        b, a = entry["before"], entry["after_finetune"]
        assert b["n"] == a["n"] == ref["n"] > 0                      # the same objects before and after
        assert b["sigma_nmad"] == pytest.approx(ref["sigma_nmad"])   # "before" is the check's own number
        for k in ("sigma_nmad", "outlier_frac", "bias"):
            assert math.isfinite(b[k]) and math.isfinite(a[k]), k
    assert ft["all_galaxies"]["sample"] == "all galaxies" and ft["n_labelled_galaxies"] == gal["n"]
    runs = ft["fold_runs"]
    assert [r["fold"] for r in runs] == [1, 2, 3] and sum(r["n_predicted"] for r in runs) == 817
    assert all(r["n_train"] + r["n_validation"] < gal["n"] for r in runs)
    html = (out / "report.html").read_text()
    assert "Fine-tuning on real labels" in html and "after fine-tuning (3-fold)" in html
    assert "fine-tuning (3 folds, redshift network, label zb_1" in p.stdout
    assert "F814W < 22.5 galaxies: n " in p.stdout
