"""Shipping the code to a cluster whose executors do not have galaxy_spark installed.

    python -m galaxy_spark.deploy pyfiles dist/galaxy_spark.zip     (make pyfiles)
    spark-submit --master … --py-files dist/galaxy_spark.zip jobs/score.py …

The zip is the package as it is on disk (survey files, presets and pipeline defaults included:
they are read through importlib.resources, which reads from a zip too); Spark puts it on every
Python worker's path. Executors need only the runtime libraries (NumPy, pandas, pyarrow, PyYAML,
Numba, pyspark), e.g. from a packed virtualenv given with ``--archives`` (docs/scoring.md).
"""
from __future__ import annotations

import sys
import zipfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def build_pyfiles(dest: str | Path) -> Path:
    """Write the galaxy_spark package (no __pycache__) into the zip `dest`; returns its path."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(PACKAGE.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts and f.suffix not in (".pyc", ".nbi", ".nbc"):
                z.write(f, Path("galaxy_spark") / f.relative_to(PACKAGE))
    tmp.replace(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "pyfiles":
        print("usage: python -m galaxy_spark.deploy pyfiles DEST.zip", file=sys.stderr)
        return 2
    print(build_pyfiles(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
