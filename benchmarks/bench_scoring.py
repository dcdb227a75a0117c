"""Benchmark: survey-scale scoring, jobs/score.py against what a user would otherwise write.

    python benchmarks/bench_scoring.py --objects 446343 --scale 10 --out reports/bench/scoring.json
    python benchmarks/bench_scoring.py --objects 20000 --scale 2 --skip-peer   # a quick look

All in one run, on the same catalogue, model and machine (JSON on stdout and in --out):
- `reference_1core`: one plain Python process with one core (OMP/OpenBLAS/Numba threads = 1):
  `mlflow.pyfunc.load_model` of the registered model, the catalogue's Parquet read in batches of
  100,000 rows with pyarrow, `predict`, Parquet written with pyarrow — what a user without Spark
  writes. Model loading is reported apart from the read–predict–write time.
- `score`: `spark-submit jobs/score.py` on `--master` (local[2]); the job's own time (Spark's
  session start-up reported beside it, not in it), the Python workers' time per phase (read,
  features, networks, flags, write) and peak memory (whole process tree, the JVM, the Python
  workers; sampled from /proc).
- `peer_spark_udf`: `mlflow.pyfunc.spark_udf` over the same registered model, same catalogue and
  master, Spark reading the columns the model needs and writing Parquet — what a Spark user writes.
- each of the three on the catalogue (`--objects` rows) and on `--scale`× it (the rows repeated
  with new, valid IDs); the ratios the README quotes;
- `--mc-samples 32` throughput on `--mc-objects` rows; with `--baseline REF` also the same job of
  the commit REF (a git worktree under --workdir), so "n× the previous release" is measured in
  this run, not quoted from another day.

Without --model a 1-epoch model of the default preset is trained first into a SQLite MLflow store
in --workdir: the network sizes, hence the cost of scoring, are the preset's.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import emit  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
BIN = Path(sys.executable).parent
ONE_CORE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
ROW_GROUP_ROWS = 20_000      # as jobs/ingest.py writes the catalogue


def _procs():
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/status") as fh:
                v = next((ln for ln in fh if ln.startswith("VmRSS:")), None)
            with open(f"/proc/{d}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
            out[int(d)] = (ppid, int(v.split()[1]) if v else 0, cmd)
        except (OSError, IndexError, ValueError):
            continue
    return out


def _tree(root, procs):
    kids = {}
    for pid, (ppid, _, _) in procs.items():
        kids.setdefault(ppid, []).append(pid)
    stack, seen = [root], []
    while stack:
        p = stack.pop()
        seen.append(p)
        stack += kids.get(p, [])
    return seen


def measure(cmd, env, cwd, marker: str) -> dict:
    """Run cmd; sample the RSS of its process tree, of the JVM and of the Python workers every
    0.2 s; parse the JSON the command prints after `marker`."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
    lines = []
    th = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    th.start()
    peak = {"tree": 0, "jvm": 0, "python_workers": 0}
    while proc.poll() is None:
        ps = _procs()
        pids = [p for p in _tree(proc.pid, ps) if p in ps]
        tree = sum(ps[p][1] for p in pids)
        jvm = sum(ps[p][1] for p in pids if "java" in ps[p][2].split(" ")[0])
        workers = sum(ps[p][1] for p in pids if "pyspark" in ps[p][2] and ("daemon" in ps[p][2] or "worker" in ps[p][2]))
        peak = {"tree": max(peak["tree"], tree), "jvm": max(peak["jvm"], jvm),
                "python_workers": max(peak["python_workers"], workers)}
        time.sleep(0.2)
    th.join()
    text = "".join(lines)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{text[-4000:]}")
    res = next((json.loads(ln.split(marker, 1)[1]) for ln in text.splitlines() if ln.startswith(marker)), None)
    return {"wall_s": round(time.perf_counter() - t0, 2), "result": res,
            "peak_rss_mb": {k: round(v / 1024, 1) for k, v in peak.items()}}


# ---- catalogues ---------------------------------------------------------------------------------
def make_catalogue(path: Path, n: int, seed: int = 7, copies: int = 1) -> int:
    """A synthetic canonical catalogue of `n` rows × `copies` (each copy's rows with new, valid,
    unique IDs), partitioned by Field with row groups of ROW_GROUP_ROWS; returns the row count."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from galaxy_spark.survey import load_survey
    from synthetic import canonical_frame

    sv = load_survey()
    df = canonical_frame(sv, n=n, seed=seed)
    run = df.groupby(["Field", "Pointing", "CCD"]).cumcount().to_numpy() + 1
    per_ccd = int(run.max())
    if per_ccd * copies >= 100000:
        raise SystemExit("too many rows per CCD catalogue for 5-digit running numbers")
    base = np.array([sv.make_id(f, p, c, 0) for f, p, c in zip(df["Field"], df["Pointing"], df["CCD"])], np.int64)
    shutil.rmtree(path, ignore_errors=True)
    for k in range(copies):
        df[sv.id_column] = base + k * per_ccd + run
        for f, part in df.groupby("Field"):
            d = path / f"Field={f}"
            d.mkdir(parents=True, exist_ok=True)
            table = pa.Table.from_pandas(part.drop(columns=["Field"]), preserve_index=False)
            pq.write_table(table, d / f"copy-{k:03d}.parquet", row_group_size=ROW_GROUP_ROWS)
    return n * copies


# ---- the three ways to score ------------------------------------------------------------------------
REFERENCE = r"""
import json, sys, time
t0 = time.perf_counter()
import mlflow.pyfunc, pyarrow as pa, pyarrow.dataset as ds, pyarrow.parquet as pq
model = mlflow.pyfunc.load_model(sys.argv[1])
cols = [c.name for c in model.metadata.get_input_schema().inputs]
t1 = time.perf_counter()
data = ds.dataset(sys.argv[2], format="parquet", partitioning="hive")
rows, writer = 0, None
for rb in data.to_batches(columns=list(dict.fromkeys(["ID"] + cols)), batch_size=100_000):
    df = rb.to_pandas()
    pred = model.predict(df[cols])
    pred.insert(0, "ID", df["ID"].to_numpy())
    table = pa.Table.from_pandas(pred, preserve_index=False)
    writer = writer or pq.ParquetWriter(sys.argv[3], table.schema)
    writer.write_table(table)
    rows += len(df)
writer.close()
t2 = time.perf_counter()
print("reference-result: " + json.dumps({"rows": rows, "load_model_s": round(t1 - t0, 3), "job": round(t2 - t1, 3)}))
"""

PEER = r"""
import json, sys, time
t0 = time.perf_counter()
import mlflow.pyfunc
from pyspark.sql import SparkSession, functions as F
spark = SparkSession.builder.appName("peer-spark-udf").getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
t1 = time.perf_counter()
uri, catalog, out = sys.argv[1:4]
cols = [c.name for c in mlflow.pyfunc.load_model(uri).metadata.get_input_schema().inputs]
predict = mlflow.pyfunc.spark_udf(spark, uri, env_manager="local")
df = spark.read.parquet(catalog).select(*dict.fromkeys(["ID", "Field", *cols]))
scored = df.withColumn("p", predict(F.struct(*[F.col(c) for c in cols]))).select("ID", "Field", "p.*")
scored.write.mode("overwrite").partitionBy("Field").parquet(out)
t2 = time.perf_counter()
print("peer-result: " + json.dumps({"spark_start": round(t1 - t0, 3), "job": round(t2 - t1, 3)}))
spark.stop()
"""


def run_reference(model: str, catalog: Path, out: Path, env, cwd) -> dict:
    out.unlink(missing_ok=True)
    r = measure([sys.executable, "-c", REFERENCE, model, str(catalog), str(out)], {**env, **ONE_CORE}, cwd,
                "reference-result: ")
    res = r["result"]
    return {"rows": res["rows"], "job_s": res["job"], "rows_per_s": round(res["rows"] / res["job"], 1),
            "load_model_s": res["load_model_s"], "wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"]}


def run_score(submit, catalog: Path, out: Path, env, cwd, extra=(), repo: Path = REPO) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    r = measure(submit + [str(repo / "jobs/score.py"), "--catalog", str(catalog), "--out", str(out), *extra],
                env, cwd, "score-result: ")
    res = r["result"]
    return {"rows": res["rows_out"], "job_s": res["seconds"]["job"], "rows_per_s": round(res["rows_out"] / res["seconds"]["job"], 1),
            "spark_start_s": res["seconds"]["spark_start"], "wall_s": r["wall_s"],
            "python_workers_s": res["seconds"].get("python_workers"), "peak_rss_mb": r["peak_rss_mb"]}


def run_peer(submit, model: str, catalog: Path, out: Path, rows: int, env, cwd) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    r = measure(submit + [str(_peer_script(cwd)), model, str(catalog), str(out)], env, cwd,
                "peer-result: ")
    res = r["result"]
    return {"rows": rows, "job_s": res["job"], "rows_per_s": round(rows / res["job"], 1),
            "spark_start_s": res["spark_start"], "wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"]}


def _peer_script(wd: Path) -> Path:
    p = Path(wd) / "peer_spark_udf.py"
    p.write_text(PEER)
    return p


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=446343)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--mc-samples", type=int, default=32)
    ap.add_argument("--mc-objects", type=int, default=40000)
    ap.add_argument("--model", default=None, help="MLflow model URI (default: train a tiny one)")
    ap.add_argument("--workdir", default=str(REPO / ".bench" / "scoring"))
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--skip-peer", action="store_true", help="leave out mlflow.pyfunc.spark_udf")
    ap.add_argument("--baseline", default=None, metavar="GIT_REF",
                    help="also time jobs/score.py of this commit (e.g. the previous release) on the same data")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args(argv)

    wd = Path(a.workdir).absolute()
    wd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable, "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{wd}/mlflow.db")
    print(f"bench: writing a {a.objects:,}-row catalogue", flush=True)
    make_catalogue(wd / "catalog", a.objects)
    model = a.model
    if model is None:
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{wd}/mlflow.db"
        print("bench: training a 1-epoch default-preset model", flush=True)
        from synthetic import train_tiny_model
        train_tiny_model(wd / "catalog", wd, env, "--promote", timeout=3600)
        model = "models:/galaxy-ensemble@champion"

    submit = [str(BIN / "spark-submit"), "--master", a.master, "--driver-memory", "2g"]
    out: dict = {"objects": a.objects, "scale": a.scale, "master": a.master, "model": model, "cores": os.cpu_count()}
    sizes = [("1x", wd / "catalog", a.objects)]
    if not a.skip_scale:
        print(f"bench: writing the {a.scale}x catalogue", flush=True)
        sizes.append((f"{a.scale}x", wd / "catalog_x", make_catalogue(wd / "catalog_x", a.objects, copies=a.scale)))
    for label, catalog, rows in sizes:
        print(f"bench [{label}]: in-process reference (1 core)", flush=True)
        out[f"reference_1core_{label}"] = run_reference(model, catalog, wd / "reference.parquet", env, wd)
        print(f"bench [{label}]: jobs/score.py on {a.master}", flush=True)
        out[f"score_{label}"] = run_score(submit, catalog, wd / "scores", env, wd)
        out[f"ratio_score_to_reference_{label}"] = round(out[f"score_{label}"]["rows_per_s"]
                                                         / out[f"reference_1core_{label}"]["rows_per_s"], 3)
        if not a.skip_peer:
            print(f"bench [{label}]: mlflow.pyfunc.spark_udf on {a.master}", flush=True)
            out[f"peer_spark_udf_{label}"] = run_peer(submit, model, catalog, wd / "peer", rows, env, wd)
            out[f"ratio_score_to_spark_udf_{label}"] = round(out[f"score_{label}"]["rows_per_s"]
                                                             / out[f"peer_spark_udf_{label}"]["rows_per_s"], 3)
        shutil.rmtree(wd / "scores", ignore_errors=True)
        shutil.rmtree(wd / "peer", ignore_errors=True)
    if not a.skip_scale:
        out["time_ratio_scaled_to_1x"] = round(out[f"score_{a.scale}x"]["job_s"] / out["score_1x"]["job_s"], 3)
        shutil.rmtree(wd / "catalog_x", ignore_errors=True)

    print(f"bench: jobs/score.py --mc-samples {a.mc_samples} on {a.mc_objects:,} rows", flush=True)
    make_catalogue(wd / "catalog_mc", a.mc_objects, seed=8)
    mc = ["--mc-samples", str(a.mc_samples)]
    out[f"score_mc{a.mc_samples}"] = run_score(submit, wd / "catalog_mc", wd / "scores_mc", env, wd, mc)
    if a.baseline:
        base = wd / "baseline"
        if not base.exists():
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(base), a.baseline], check=True)
        subprocess.run(["git", "-C", str(base), "checkout", "-q", "--detach", a.baseline], check=True)
        benv = {**env, "PYTHONPATH": str(base)}
        print(f"bench: the same jobs at {a.baseline}", flush=True)
        out["baseline"] = {"ref": a.baseline,
                           "score_1x": run_score(submit, wd / "catalog", wd / "scores_b", benv, wd, repo=base),
                           f"score_mc{a.mc_samples}": run_score(submit, wd / "catalog_mc", wd / "scores_b", benv, wd,
                                                                mc, repo=base)}
        out["ratio_to_baseline"] = {k: round(out[k]["rows_per_s"] / out["baseline"][k]["rows_per_s"], 3)
                                    for k in ("score_1x", f"score_mc{a.mc_samples}")}
        shutil.rmtree(wd / "scores_b", ignore_errors=True)
    return emit(out, a.out)


if __name__ == "__main__":
    sys.exit(main())
