"""The registered model outside this repository: self-contained (loads and predicts with the
galaxy_spark installation hidden) and served over REST by a real `mlflow models serve`.

Rows: the 817 real ALHAMBRA rows, ingested to the canonical schema by the real ingest."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic import free_port, hide_project_code, job_env

MODEL = "models:/galaxy-ensemble@champion"

# Run in a fresh interpreter: hide every way this process could import galaxy_spark (the editable
# install's finder and path entries, the repository, PYTHONPATH), load the model, predict.
ISOLATED = r"""
import json
try:
    import galaxy_spark
    raise SystemExit(f"galaxy_spark still importable from {galaxy_spark.__file__}")
except ImportError:
    pass
import pandas as pd, mlflow.pyfunc
model = mlflow.pyfunc.load_model(sys.argv[1])
pred = model.predict(pd.read_parquet(sys.argv[2]))
pred.to_parquet(sys.argv[2] + ".pred.parquet")          # every bit and dtype, unlike JSON
import galaxy_spark
print("ISOLATED " + json.dumps({"galaxy_spark": galaxy_spark.__file__,
                               "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory, model_store, real_rows_path, spark):
    """A private copy of the session's model store and the real rows in canonical form."""
    from galaxy_spark.catalog.ingest import run_ingest
    from galaxy_spark.model.registry import resolve_model
    from synthetic import use_tracking_uri

    d = model_store(tmp_path_factory.mktemp("serve"))
    run_ingest(str(real_rows_path), d / "catalog", d / "quarantine", spark=spark, echo=lambda *_: None)
    rows = pd.read_parquet(d / "catalog").sort_values("ID").reset_index(drop=True)
    env = job_env(d)
    with use_tracking_uri(env["MLFLOW_TRACKING_URI"]):
        ens = resolve_model(MODEL).ensemble
    cols = ens.feature_spec.required_columns()
    rows[cols].to_parquet(d / "rows.parquet")
    from galaxy_spark.estimate.batch import estimate_names, score_frame

    # what the batch scores hold for these rows (the Spark job runs the same function per batch)
    batch = score_frame(ens, rows)[estimate_names(ens)]
    assert batch["z_phot"].notna().sum() > 700
    return {"dir": d, "env": env, "rows": rows, "cols": cols, "expected": batch}


def _same(got: pd.DataFrame, expected: pd.DataFrame):
    """Served = batch: the same columns in the same order, every value to the bit (JSON carries
    Python floats' repr, exact), nulls in the same places, integers as integers."""
    assert list(got.columns) == list(expected.columns), (list(got.columns), list(expected.columns))
    for c in expected.columns:
        b = expected[c]
        if str(b.dtype) in ("Int32", "int32"):
            a = pd.array(got[c], dtype="Int32")
            assert a.isna().tolist() == b.isna().tolist(), c
            assert (a[~b.isna().to_numpy()] == b[~b.isna()].to_numpy()).all(), c
        else:
            a, b = got[c].to_numpy(float), b.to_numpy(float)
            np.testing.assert_array_equal(a, b, err_msg=c)


def test_model_is_self_contained(served):
    """Loads and predicts with galaxy_spark hidden: the code comes from the model's own artifact,
    the estimates equal the project's, and the model's requirements.txt pins every third-party
    package the shipped code imports."""
    from galaxy_spark.model.pyfunc import REQUIRED_DISTRIBUTIONS

    repo = str(Path(__file__).resolve().parent.parent)
    env = {k: v for k, v in served["env"].items() if k != "PYTHONPATH"}
    p = subprocess.run([sys.executable, "-c", hide_project_code(repo) + ISOLATED, MODEL, str(served["dir"] / "rows.parquet"), repo],
                       cwd=served["dir"], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    out = json.loads(next(ln for ln in p.stdout.splitlines() if ln.startswith("ISOLATED "))[9:])
    assert not out["galaxy_spark"].startswith(repo) and "/code/galaxy_spark/" in out["galaxy_spark"], out["galaxy_spark"]
    pred = pd.read_parquet(served["dir"] / "rows.parquet.pred.parquet")
    assert list(pred.dtypes.astype(str)) == list(served["expected"].dtypes.astype(str))
    _same(pred, served["expected"])

    import mlflow
    from synthetic import use_tracking_uri

    with use_tracking_uri(served["env"]["MLFLOW_TRACKING_URI"]):
        local = Path(mlflow.artifacts.download_artifacts(MODEL, dst_path=str(served["dir"] / "dl")))
    import yaml

    meta = yaml.safe_load((local / "MLmodel").read_text())["metadata"]
    assert "quality_flags bits 16 + 1" in meta["input_checks"] and "star_class" in meta["outputs"]
    reqs = (local / "requirements.txt").read_text().split()
    pinned = {r.split("==")[0].lower() for r in reqs if "==" in r}
    assert {d.lower() for d in REQUIRED_DISTRIBUTIONS} <= pinned, reqs
    import ast
    third_party = set()
    for f in (local / "code" / "galaxy_spark").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            third_party |= {n.split(".")[0] for n in names} - set(sys.stdlib_module_names) - {"galaxy_spark", "__future__"}
    assert third_party <= {"mlflow", "numpy", "pandas", "yaml", "numba"}, third_party


def _post(url: str, payload: dict):
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_rest_endpoint_answers_like_batch_scoring(served):
    """`mlflow models serve` (a real process, 127.0.0.1): the real rows get the project's
    estimates; a request missing columns or with text where numbers belong is a 4xx with a message."""
    port = free_port()
    bin_dir = Path(sys.executable).parent          # mlflow starts `uvicorn` from PATH
    env = {**served["env"], "PATH": f"{bin_dir}:{served['env'].get('PATH', '')}"}
    proc = subprocess.Popen([str(bin_dir / "mlflow"), "models", "serve", "-m", MODEL, "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port)], env=env, cwd=served["dir"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise AssertionError("server did not start:\n" + (proc.stdout.read() if proc.poll() is not None else ""))
            time.sleep(1)
        rows, cols = served["rows"], served["cols"]
        values = rows[cols].astype(object).where(rows[cols].notna(), None).to_numpy().tolist()
        body = {"columns": cols, "data": values}         # Python floats: exact in JSON (repr)
        status, answer = _post(f"http://127.0.0.1:{port}/invocations", {"dataframe_split": body})
        assert status == 200, answer
        got = pd.DataFrame(answer["predictions"])
        assert len(got) == len(rows)
        _same(got, served["expected"])

        missing = {"columns": cols[4:], "data": body["data"][:3]}
        missing["data"] = [r[4:] for r in missing["data"]]
        status, answer = _post(f"http://127.0.0.1:{port}/invocations", {"dataframe_split": missing})
        assert status == 400 and cols[0] in answer["message"], (status, answer)
        # MLflow's server prefixes the model's reason with the request's (truncated) repr; the reason
        # is ours: one line naming the columns
        reason = answer["message"].rsplit("Error: ", 1)[-1]
        assert reason.startswith("catalogue lacks 4 column(s)") and len(reason) < 200, answer["message"]
        assert "Traceback" not in answer["message"] and "Failed to enforce schema" not in answer["message"]

        # an undecoded sentinel in the detection band and a band state outside the survey's set:
        # those rows get null estimates and FLAG_INVALID_INPUT, the others their estimates
        from galaxy_spark.model.heads import FLAG_INVALID_INPUT

        odd = [list(r) for r in body["data"][:4]]
        odd[0][0] = 99.0                                   # first band's magnitude = the sentinel
        odd[0][3] = 0                                      # ... claimed detected
        odd[1][7] = 7                                      # second band's state: not a state
        status, answer = _post(f"http://127.0.0.1:{port}/invocations",
                               {"dataframe_split": {"columns": cols, "data": odd}})
        assert status == 200, answer
        got = pd.DataFrame(answer["predictions"])
        assert [(f & FLAG_INVALID_INPUT) > 0 for f in got["quality_flags"]] == [True, True, False, False]
        assert got["z_phot"][:2].isna().all() and got["z_phot"][2:].notna().all()

        texty = {"columns": cols, "data": [["bright"] + r[1:] for r in body["data"][:2]]}
        status, answer = _post(f"http://127.0.0.1:{port}/invocations", {"dataframe_split": texty})
        assert 400 <= status < 500 and answer.get("message"), (status, answer)
        assert "Traceback" not in answer.get("message", "")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
