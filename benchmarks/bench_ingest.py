"""Benchmark: the Spark ingest job vs a plain pyarrow CSV -> Parquet of the same file.

    python benchmarks/bench_ingest.py --input data/raw/alhambra_mock.csv --out .bench/ingest
    python benchmarks/bench_ingest.py --input .bench/big.csv --make-input 446343 --out .bench/ingest

Each contender runs in its own child process (a fresh measuring helper per contender, so
`getrusage(RUSAGE_CHILDREN)` sees only that contender and its descendants: the JVM, Python workers).
Reported per contender: wall time, peak RSS of the largest single process (ru_maxrss) and the peak
of the summed RSS of the whole process tree (sampled from /proc every 0.1 s). Output: JSON on
stdout (and in --json if given).

`--make-input N` writes a test input first when the file is missing: the 817 real ALHAMBRA rows
(VizieR flavour, ../shared/data) converted to the public CSV convention, replicated to N rows
spread over the 48 CCD catalogues with fresh, valid IDs.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

REAL_ROWS = REPO.parent / "shared" / "data" / "alhambra_f02_vizier_sample.csv"


# ---- input generation --------------------------------------------------------------------------
def make_input(path: Path, n: int, real_rows: Path = REAL_ROWS, survey_name: str | None = None) -> None:
    import numpy as np
    import pandas as pd

    from galaxy_spark.catalog.readers import vizier_frame_to_public
    from galaxy_spark.survey import load_survey

    sv = load_survey(survey_name)
    vz = pd.read_csv(real_rows, dtype=str, keep_default_na=False)
    pub = vizier_frame_to_public(vz, sv)
    cats = sv.ccd_catalogues()
    i = np.arange(n)
    src = pub.iloc[i % len(pub)].reset_index(drop=True)
    k = i % len(cats)
    f = np.array([c[0] for c in cats])[k]
    p = np.array([c[1] for c in cats])[k]
    c = np.array([c[2] for c in cats])[k]
    run = i // len(cats) + 1
    base, kf, kp, kc = (sv.make_id(0, 0, 0, 0), sv.make_id(1, 0, 0, 0) - sv.make_id(0, 0, 0, 0),
                        sv.make_id(0, 1, 0, 0) - sv.make_id(0, 0, 0, 0),
                        sv.make_id(0, 0, 1, 0) - sv.make_id(0, 0, 0, 0))
    src[sv.id_column] = (base + f * kf + p * kp + c * kc + run).astype("int64").astype(str)
    src["Field"], src["Pointing"], src["CCD"] = f.astype(str), p.astype(str), c.astype(str)
    for extra in sv.csv_extra:
        src[extra.name] = [f"f0{a}p0{b}c0{d}_{sv.detection_band}.fits" for a, b, d in zip(f, p, c)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    src.to_csv(tmp, index=False)
    os.replace(tmp, path)


# ---- measuring ---------------------------------------------------------------------------------
def _tree_rss_kib(root: int) -> int:
    """Summed VmRSS of `root` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                parts = fh.read().rsplit(")", 1)[1].split()
            ppid = int(parts[1])
            with open(f"/proc/{d}/status") as fh:
                v = next((ln for ln in fh if ln.startswith("VmRSS:")), None)
            children.setdefault(ppid, []).append(int(d))
            rss[int(d)] = int(v.split()[1]) if v else 0
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack += children.get(pid, [])
    return total


def measure(cmd: list[str]) -> dict:
    """Run cmd, sample its process-tree RSS; report wall time and peaks (this process's children)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak_tree = 0
    out_chunks = []
    import threading

    def drain():
        for line in proc.stdout:
            out_chunks.append(line)

    th = threading.Thread(target=drain, daemon=True)
    th.start()
    while proc.poll() is None:
        peak_tree = max(peak_tree, _tree_rss_kib(proc.pid))
        time.sleep(0.1)
    th.join()
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cmd": cmd, "rc": proc.returncode, "wall_s": round(wall, 2),
            "peak_rss_largest_process_mb": round(ru.ru_maxrss / 1024, 1),
            "peak_rss_process_tree_mb": round(peak_tree / 1024, 1),
            "cpu_user_s": round(ru.ru_utime, 1), "cpu_sys_s": round(ru.ru_stime, 1),
            "output_tail": "".join(out_chunks)[-2000:]}


def _measured(cmd: list[str]) -> dict:
    """Measure `cmd` from a fresh helper process (isolates RUSAGE_CHILDREN)."""
    res = subprocess.run([sys.executable, __file__, "--_measure", "--", *cmd],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"measuring helper failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout)


def _pyarrow_child(csv: str, out: str) -> None:
    import pyarrow.csv as pc
    import pyarrow.parquet as pq

    table = pc.read_csv(csv)
    pq.write_table(table, out)
    print(f"pyarrow: {table.num_rows} rows, {table.num_columns} columns")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_measure"]:
        print(json.dumps(measure(argv[2:] if argv[1:2] == ["--"] else argv[1:])))
        return 0
    if argv[:1] == ["--_pyarrow"]:
        _pyarrow_child(argv[1], argv[2])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", required=True, help="CSV catalogue (public columns + F814W_Image)")
    ap.add_argument("--out", required=True, help="scratch directory for both outputs")
    ap.add_argument("--make-input", type=int, metavar="N",
                    help="if --input is missing, build it from the real rows replicated to N rows")
    ap.add_argument("--json", help="also write the result here")
    ap.add_argument("--spark-submit", action="store_true",
                    help="run the job with spark-submit --master local[2] instead of python")
    a = ap.parse_args(argv)
    inp, out = Path(a.input), Path(a.out)
    if not inp.exists():
        if not a.make_input:
            print(f"error: input not found: {inp} (give --make-input N to build one)", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        make_input(inp, a.make_input)
        print(f"built {inp} ({a.make_input} rows) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    py = sys.executable
    if a.spark_submit:
        job = [str(Path(py).parent / "spark-submit"), "--master", "local[2]", str(REPO / "jobs" / "ingest.py")]
    else:
        job = [py, str(REPO / "jobs" / "ingest.py")]
    ingest = _measured(job + ["--input", str(inp), "--out", str(out / "catalog"),
                              "--quarantine", str(out / "quarantine"), "--quiet"])
    arrow = _measured([py, __file__, "--_pyarrow", str(inp), str(out / "pyarrow.parquet")])
    result = {"input": {"path": str(inp), "size_mb": round(inp.stat().st_size / 2**20, 1)},
              "cpus": os.cpu_count(), "ingest": ingest, "pyarrow": arrow}
    man = out / "catalog" / "_manifest.json"
    if man.exists():
        m = json.loads(man.read_text())
        result["input"]["rows"] = m["rows"]["read"]
        result["ingest"]["rows"] = m["rows"]
        result["ingest"]["job_timings_s"] = m["timings_s"]
    if ingest["rc"] == 0 and arrow["rc"] == 0:
        result["wall_ratio_ingest_over_pyarrow"] = round(ingest["wall_s"] / arrow["wall_s"], 2)
        result["peak_tree_rss_ratio"] = round(
            ingest["peak_rss_process_tree_mb"] / max(arrow["peak_rss_process_tree_mb"], 1), 2)
    text = json.dumps(result, indent=2)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n")
    return 0 if ingest["rc"] == 0 and arrow["rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
