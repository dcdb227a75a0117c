"""Benchmark: survey-scale scoring (jobs/score.py) against the in-process ensemble.

    python benchmarks/bench_scoring.py --objects 100000 --out reports/bench/scoring.json
    python benchmarks/bench_scoring.py --objects 446343 --model models:/galaxy-ensemble@champion  # real store

Measured (JSON on stdout and in --out):
- reference: in-process `Ensemble.predict` on one core (BLAS limited to one thread), rows/s;
- `jobs/score.py` on local[2] (spark-submit), rows/s from the job's own timing (Spark session
  start-up excluded: the job prints `score-result: {...}` with `seconds.job`), and the ratio;
- the same at `--scale`× the catalogue (rows replicated with new IDs): time ratio and peak memory
  of the executor side (local mode: the JVM + the Python workers, sampled from /proc);
- `--mc-samples 32` throughput (on `--mc-objects` rows, to keep the run short on two cores).

Without --model a tiny model of the default preset is trained first (1 epoch) into a SQLite
MLflow store in --workdir: the network sizes, hence the cost of scoring, are the preset's.
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


def measure(cmd, env, cwd) -> dict:
    """Run cmd; sample RSS of the whole tree, of the JVM and of the Python workers every 0.2 s."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
    lines = []
    th = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    th.start()
    peak = {"tree": 0, "jvm": 0, "python_workers": 0}
    while proc.poll() is None:
        ps = _procs()
        pids = _tree(proc.pid, ps)
        tree = sum(ps[p][1] for p in pids if p in ps)
        jvm = sum(ps[p][1] for p in pids if p in ps and "java" in ps[p][2].split(" ")[0])
        workers = sum(ps[p][1] for p in pids if p in ps and "pyspark" in ps[p][2] and "daemon" in ps[p][2])
        peak = {"tree": max(peak["tree"], tree), "jvm": max(peak["jvm"], jvm),
                "python_workers": max(peak["python_workers"], workers)}
        time.sleep(0.2)
    th.join()
    text = "".join(lines)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed ({proc.returncode}):\n{text[-4000:]}")
    res = next((json.loads(ln.split("score-result: ", 1)[1]) for ln in text.splitlines()
                if ln.startswith("score-result: ")), None)
    return {"wall_s": round(time.perf_counter() - t0, 2), "result": res,
            "peak_rss_mb": {k: round(v / 1024, 1) for k, v in peak.items()}}


def make_catalogue(path: Path, n: int, seed: int = 7):

    from galaxy_spark.survey import load_survey
    from synthetic import canonical_frame, write_partitioned

    df = renumber(canonical_frame(load_survey(), n=n, seed=seed))
    write_partitioned(df, path)
    return df


def renumber(df):
    """Valid, unique survey IDs: running number 1.. within each (Field, Pointing, CCD)."""
    import numpy as np

    from galaxy_spark.survey import load_survey

    sv = load_survey()
    run = df.groupby(["Field", "Pointing", "CCD"]).cumcount().to_numpy() + 1
    if run.max() >= 100000:
        raise SystemExit("too many rows per CCD catalogue for 5-digit running numbers")
    base = np.array([sv.make_id(f, p, c, 0) for f, p, c in zip(df["Field"], df["Pointing"], df["CCD"])])
    df = df.copy()
    df["ID"] = (base + run).astype(np.int64)
    return df


def replicate(df, k: int, path: Path):
    """k copies of df with fresh IDs (running number shifted per copy; IDs stay valid and unique)."""
    import pandas as pd

    from synthetic import write_partitioned

    big = renumber(pd.concat([df] * k, ignore_index=True))
    assert big["ID"].is_unique
    write_partitioned(big, path)
    return len(big)


def reference(model_uri: str, catalog: Path, env, cwd) -> dict:
    """Ensemble.predict in a fresh process with one BLAS thread."""
    code = f"""
import json, time, numpy as np, pyarrow.dataset as ds
from galaxy_spark.model.registry import resolve_model
m = resolve_model({model_uri!r})
df = ds.dataset({str(catalog)!r}, format="parquet", partitioning="hive").to_table().to_pandas()
best = 1e9
for _ in range(2):
    t0 = time.perf_counter(); m.ensemble.predict(df); best = min(best, time.perf_counter() - t0)
print("REF", json.dumps({{"rows": len(df), "seconds": best, "rows_per_s": len(df) / best}}))
"""
    e = {**env, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-c", code], env=e, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(p.stderr[-3000:])
    return json.loads(next(ln for ln in p.stdout.splitlines() if ln.startswith("REF "))[4:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=100000)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--mc-samples", type=int, default=32)
    ap.add_argument("--mc-objects", type=int, default=20000)
    ap.add_argument("--model", default=None, help="MLflow model URI (default: train a tiny one)")
    ap.add_argument("--workdir", default=str(REPO / ".bench" / "scoring"))
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args(argv)

    wd = Path(a.workdir).absolute()
    wd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable, "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{wd}/mlflow.db")
    for d in ("catalog", "catalog_x", "catalog_mc", "scores", "scores_x", "scores_mc"):
        shutil.rmtree(wd / d, ignore_errors=True)
    print(f"bench: writing a {a.objects:,}-row catalogue", flush=True)
    df = make_catalogue(wd / "catalog", a.objects)
    model = a.model
    if model is None:
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{wd}/mlflow.db"
        print("bench: training a 1-epoch default-preset model", flush=True)
        from synthetic import train_tiny_model
        train_tiny_model(wd / "catalog", wd, env, "--promote", timeout=3600)
        model = "models:/galaxy-ensemble@champion"

    submit = [str(BIN / "spark-submit"), "--master", a.master, "--driver-memory", "2g", str(REPO / "jobs/score.py"),
              "--model", model]
    out: dict = {"objects": a.objects, "master": a.master, "model": model, "cores": os.cpu_count()}
    print("bench: in-process reference (1 core)", flush=True)
    out["reference_1core"] = reference(model, wd / "catalog", env, wd)
    print("bench: jobs/score.py 1x", flush=True)
    r1 = measure(submit + ["--catalog", str(wd / "catalog"), "--out", str(wd / "scores")], env, wd)
    job1 = r1["result"]["seconds"]["job"]
    out["score_1x"] = {"rows": r1["result"]["rows_out"], "job_s": job1, "rows_per_s": round(a.objects / job1, 1),
                       "wall_s": r1["wall_s"], "seconds": r1["result"]["seconds"], "peak_rss_mb": r1["peak_rss_mb"]}
    out["ratio_score_to_reference"] = round(out["score_1x"]["rows_per_s"] / out["reference_1core"]["rows_per_s"], 3)
    if not a.skip_scale:
        print(f"bench: jobs/score.py {a.scale}x", flush=True)
        n_big = replicate(df, a.scale, wd / "catalog_x")
        rx = measure(submit + ["--catalog", str(wd / "catalog_x"), "--out", str(wd / "scores_x")], env, wd)
        jobx = rx["result"]["seconds"]["job"]
        out[f"score_{a.scale}x"] = {"rows": rx["result"]["rows_out"], "job_s": jobx,
                                    "rows_per_s": round(n_big / jobx, 1), "wall_s": rx["wall_s"],
                                    "seconds": rx["result"]["seconds"], "peak_rss_mb": rx["peak_rss_mb"]}
        out["time_ratio_scaled_to_1x"] = round(jobx / job1, 3)
        shutil.rmtree(wd / "catalog_x", ignore_errors=True)
        shutil.rmtree(wd / "scores_x", ignore_errors=True)
    print(f"bench: jobs/score.py --mc-samples {a.mc_samples} on {a.mc_objects:,} rows", flush=True)
    make_catalogue(wd / "catalog_mc", a.mc_objects, seed=8)
    rm = measure(submit + ["--catalog", str(wd / "catalog_mc"), "--out", str(wd / "scores_mc"),
                           "--mc-samples", str(a.mc_samples)], env, wd)
    jm = rm["result"]["seconds"]["job"]
    out[f"score_mc{a.mc_samples}"] = {"rows": rm["result"]["rows_out"], "job_s": jm,
                                      "rows_per_s": round(a.mc_objects / jm, 1),
                                      "row_samples_per_s": round(a.mc_objects * a.mc_samples / jm, 1),
                                      "peak_rss_mb": rm["peak_rss_mb"]}
    return emit(out, a.out)


if __name__ == "__main__":
    sys.exit(main())
