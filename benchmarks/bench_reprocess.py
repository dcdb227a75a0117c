"""Benchmark: jobs/reprocess.py — a no-op run, one Field rescored, every Field rescored.

    python benchmarks/bench_reprocess.py --objects 40000 --out reports/bench/reprocess.json
    python benchmarks/bench_reprocess.py --model models:/galaxy-ensemble@champion   # real store

Steps (each a fresh `spark-submit jobs/reprocess.py` process, as a scheduler would start it):
1. first run into empty scores (every Field rescored; also warms the OS file cache);
2. no-op run (nothing changed): process wall time, and the job's own split — time before Spark
   (imports excluded: arguments, lock, ledger check, model alias → version, plan from manifests and
   Parquet footers) and Spark start-up (0: a no-op run never starts a SparkSession);
   also the same no-op with plain `python` (no spark-submit JVM);
3. one Field rescored: one catalogue file's mtime bumped (the catalogue has no ingest manifest,
   so the file fingerprint changes);
4. every Field rescored (`--force`).
JSON on stdout (and in --out): wall seconds per step and the job's `seconds` (before_spark,
spark_start, rescore, total).

Without --model a tiny model of the default preset is trained first (1 epoch) into a SQLite MLflow
store in --workdir (scoring cost depends on the preset's network sizes, not on the training).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import emit  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
BIN = Path(sys.executable).parent


def timed(cmd, env, cwd) -> dict:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{cmd} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    res = next((json.loads(ln.split("reprocess-result: ", 1)[1]) for ln in p.stdout.splitlines()
                if ln.startswith("reprocess-result: ")), None)
    out = {"wall_s": round(wall, 2), "seconds": res["seconds"], "rescored": res["rescored"], "counts": res["counts"]}
    scores = Path(cmd[cmd.index("--scores") + 1])
    recs = [json.loads(ln) for ln in (scores / "_ledger.jsonl").read_text().splitlines() if ln.strip()]
    per_field = {str(r["field"]): r["seconds"] for r in recs if r["run_id"] == res["run_id"] and r["action"] == "rescored"}
    if per_field:
        out["field_seconds"] = per_field       # from the ledger: first Field pays the first-job warm-up
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=40000, help="catalogue rows (7 Fields)")
    ap.add_argument("--model", default=None, help="MLflow model URI (default: train a tiny one)")
    ap.add_argument("--workdir", default=str(REPO / ".bench" / "reprocess"))
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--repeat", type=int, default=2, help="no-op runs to time (best is reported too)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args(argv)

    from galaxy_spark.survey import load_survey
    from synthetic import canonical_frame, write_partitioned

    wd = Path(a.workdir).absolute()
    wd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable, "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
           "SPARK_HOME": os.environ.get("SPARK_HOME") or str(Path(__import__("pyspark").__file__).parent),
           "SPARK_CONF_DIR": str(REPO / "conf"), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    for d in ("catalog", "scores"):
        shutil.rmtree(wd / d, ignore_errors=True)
    if a.model is None:
        shutil.rmtree(wd / "mlruns", ignore_errors=True)
        (wd / "mlflow.db").unlink(missing_ok=True)
    print(f"bench: writing a {a.objects:,}-row catalogue", flush=True)
    df = canonical_frame(load_survey(), n=a.objects, seed=7)
    write_partitioned(df, wd / "catalog")
    model = a.model
    if model is None:
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{wd}/mlflow.db"
        print("bench: training a 1-epoch default-preset model", flush=True)
        from synthetic import train_tiny_model
        train_tiny_model(wd / "catalog", wd, env, "--promote", timeout=3600)
        model = "models:/galaxy-ensemble@champion"
    args = [str(REPO / "jobs/reprocess.py"), "--catalog", str(wd / "catalog"), "--scores", str(wd / "scores"),
            "--model", model]
    submit = [str(BIN / "spark-submit"), "--master", a.master, "--driver-memory", "2g", *args]
    fields = sorted(int(x) for x in df["Field"].unique())
    out: dict = {"objects": a.objects, "fields": len(fields), "master": a.master, "model": model,
                 "cores": os.cpu_count()}

    print("bench: first run (every Field)", flush=True)
    out["first_run_all_fields"] = timed(submit, env, wd)
    print("bench: no-op runs", flush=True)
    noop = [timed(submit, env, wd) for _ in range(a.repeat)]
    out["noop_spark_submit"] = min(noop, key=lambda r: r["wall_s"])
    out["noop_spark_submit"]["wall_s_all"] = [r["wall_s"] for r in noop]
    out["noop_plain_python"] = timed([sys.executable, *args], env, wd)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import pyspark, mlflow, galaxy_spark.estimate.reprocess"], env=env, check=True)
    out["python_imports_s"] = round(time.perf_counter() - t0, 2)

    f = fields[len(fields) // 2]
    part = next((wd / "catalog" / f"Field={f}").glob("*.parquet"))
    st = part.stat()
    os.utime(part, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    print(f"bench: one Field ({f}) changed", flush=True)
    out["one_field"] = {"field": f, "rows": int((df["Field"] == f).sum()), **timed(submit, env, wd)}
    print("bench: --force (every Field)", flush=True)
    out["all_fields"] = {"rows": len(df), **timed(submit + ["--force"], env, wd)}
    fs = list(out["all_fields"].get("field_seconds", {}).values())
    if len(fs) > 1:
        out["all_fields"]["first_field_s"] = fs[0]
        out["all_fields"]["later_fields_mean_s"] = round(sum(fs[1:]) / len(fs[1:]), 3)
    out["ratio_rescore_one_to_all"] = round(out["one_field"]["seconds"]["rescore"]
                                            / out["all_fields"]["seconds"]["rescore"], 3)
    return emit(out, a.out)


if __name__ == "__main__":
    sys.exit(main())
