"""Time a full-size mock generation (default 446,343 objects, CSV) and report wall time and peak RSS.

    python benchmarks/bench_mock.py [--objects N] [--seed S] [--format csv|ascii] [--out result.json]

The generation runs as a child process (`jobs/mock.py`), so the peak RSS is that of the job alone
(getrusage RUSAGE_CHILDREN). The result is printed as JSON on stdout and written to --out if given.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import emit  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--objects", type=int, default=446_343)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--format", choices=("csv", "ascii"), default="csv")
    p.add_argument("--out", help="write the JSON result here too")
    p.add_argument("--keep", help="keep the generated catalogue at this path")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        target = a.keep or os.path.join(tmp, "mock.csv" if a.format == "csv" else "mock_ascii")
        cmd = [sys.executable, str(ROOT / "jobs" / "mock.py"), "--objects", str(a.objects), "--seed", str(a.seed),
               "--format", a.format, "--out", target, "--quiet"]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            print(r.stderr, file=sys.stderr)
            return r.returncode
        size = (Path(target).stat().st_size if a.format == "csv"
                else sum(f.stat().st_size for f in Path(target).iterdir()))
    rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = {
        "benchmark": "mock_generation", "objects": a.objects, "seed": a.seed, "format": a.format,
        "wall_s": round(wall, 2), "peak_rss_mb": round(rss_kb / 1024, 1), "output_bytes": size,
        "objects_per_s": round(a.objects / wall, 1), "cpu_count": os.cpu_count(),
        "python": platform.python_version(), "command": " ".join(cmd[1:]),
    }
    return emit(result, a.out)


if __name__ == "__main__":
    sys.exit(main())
