"""A real Spark standalone cluster on 127.0.0.1 (master + one worker from the installed pyspark):
jobs/score.py submitted with --master spark://… writes the same scores as local Spark (the scoring
job's code on the shared local[2] session, run while the master starts), to the bit.

No shared checkout: the executors' Python cannot import galaxy_spark (a sitecustomize hides the
editable install and the repository from it, and says so in the executor's log); the job ships the
code with --py-files dist zip (galaxy_spark/deploy.py), as on YARN or Kubernetes. Submitted
without --py-files, the same job fails on the executor."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "tests"))
from synthetic import free_port, hide_project_code  # noqa: E402


def spark_home() -> str:
    import pyspark
    return str(Path(pyspark.__file__).parent)


def env_for(workdir):
    # The master's and worker's INFO lines tell when they are up: use Spark's default logging here,
    # not conf/log4j2.properties (warnings only), which `make` puts in SPARK_CONF_DIR.
    env = {k: v for k, v in os.environ.items() if k != "SPARK_CONF_DIR"}
    return {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir}/mlflow.db", "PYTHONPATH": str(REPO),
            "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable, "SPARK_HOME": spark_home(),
            "SPARK_LOCAL_IP": "127.0.0.1", "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def run(cmd, cwd, env, timeout=600):
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{cmd} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-4000:]}"
    return p


def start(cmd, env, log):
    fh = open(log, "w")
    return subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)       # its own session: the JVM and anything it started
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def wait_for(predicate, timeout, what):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


# Loaded by the executors' Python at start-up (PYTHONPATH): galaxy_spark must come from --py-files.
HIDDEN_MARKER = "galaxy_spark hidden from this executor Python"


def executor_python(tmp_path: Path) -> str:
    """A Python for the executors that cannot import galaxy_spark (synthetic.hide_project_code) and
    says so in the executor's log."""
    iso = tmp_path / "no_galaxy_spark"
    iso.mkdir()
    (iso / "sitecustomize.py").write_text(hide_project_code(str(REPO))
                                          + f"sys.stderr.write({HIDDEN_MARKER + chr(10)!r})\n")
    wrapper = iso / "python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{iso}${{PYTHONPATH:+:$PYTHONPATH}}" exec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def read(path):
    return ds.dataset(str(path), format="parquet", partitioning="hive").to_table().to_pandas() \
        .sort_values("ID").reset_index(drop=True)


@pytest.mark.timeout(1200)
def test_standalone_cluster_scores_equal_local(tmp_path, model_store, spark):
    from galaxy_spark.estimate.job import JobOptions, run_scoring
    from galaxy_spark.survey import load_survey
    from synthetic import canonical_frame, use_tracking_uri, write_partitioned

    env = env_for(model_store(tmp_path))    # the session's tiny model, in a private copy of its store
    write_partitioned(canonical_frame(load_survey(), n=1500, seed=11), tmp_path / "catalog")

    spark_class = str(Path(spark_home()) / "bin" / "spark-class")
    port, ui, wport, wui = free_port(), free_port(), free_port(), free_port()
    master = worker = None
    try:
        master = start([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                        "--port", str(port), "--webui-port", str(ui)], env, tmp_path / "master.log")
        # the local reference while the master starts: the scoring job's code on the local session
        with use_tracking_uri(env["MLFLOW_TRACKING_URI"]):
            run_scoring(JobOptions(catalog=str(tmp_path / "catalog"), out=str(tmp_path / "local"),
                                   model="models:/galaxy-ensemble@champion", mc_samples=4),
                        spark=spark, echo=lambda s: None)
        wait_for(lambda: "I have been elected leader" in (tmp_path / "master.log").read_text(), 90, "the master")
        worker = start([spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                        "--port", str(wport), "--webui-port", str(wui), "--cores", "1", "--memory", "1g",
                        "--work-dir", str(tmp_path / "work"), f"spark://127.0.0.1:{port}"],
                       {k: v for k, v in env.items() if k != "PYTHONPATH"}, tmp_path / "worker.log")
        wait_for(lambda: "Successfully registered with master" in (tmp_path / "worker.log").read_text(), 90,
                 "the worker")
        from galaxy_spark.deploy import build_pyfiles

        zipped = build_pyfiles(tmp_path / "dist" / "galaxy_spark.zip")
        submit = [str(BIN / "spark-submit"), "--master", f"spark://127.0.0.1:{port}",
                  "--conf", "spark.executor.memory=768m", "--conf", "spark.driver.host=127.0.0.1",
                  "--conf", f"spark.pyspark.python={executor_python(tmp_path)}",
                  "--conf", f"spark.pyspark.driver.python={sys.executable}"]
        job = [str(REPO / "jobs/score.py"), "--catalog", str(tmp_path / "catalog"), "--mc-samples", "4"]
        bare = subprocess.run(submit + job + ["--out", str(tmp_path / "bare")], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert bare.returncode != 0 and "galaxy_spark" in bare.stdout + bare.stderr   # no code on the executor
        p = run(submit + ["--py-files", str(zipped)] + job + ["--out", str(tmp_path / "cluster")], tmp_path, env)
        assert "1500 rows in = 1500 rows scored" in p.stdout
        # the work really ran on the standalone worker, in a Python without galaxy_spark
        logs = list((tmp_path / "work").glob("app-*/*/stderr"))
        assert logs and any(HIDDEN_MARKER in f.read_text() for f in logs)
    finally:
        stop(worker)
        stop(master)
    local, cluster = read(tmp_path / "local"), read(tmp_path / "cluster")
    assert len(cluster) == 1500
    pd.testing.assert_frame_equal(local.drop(columns="scored_at"), cluster.drop(columns="scored_at"),
                                  check_exact=True)
