"""SparkSession from galaxy_spark/conf/pipeline.yaml, with a plain-language check for Java first.

Jobs call `get_spark()`. Under spark-submit the master and settings given there win; under plain
`python` the conf file's master (local[2] by default) is used.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd   # module level: the pandas UDF's string type hints are resolved in these globals

from galaxy_spark.config import load_pipeline_config
from galaxy_spark.errors import JavaMissingError  # noqa: F401  (raised here; importable from here as before)

MIN_JAVA = 17


def java_version() -> int | None:
    """Major version of the `java` Spark will use (JAVA_HOME first, then PATH), or None."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 and m.group(2) else major


def check_java() -> int:
    v = java_version()
    if v is None:
        raise JavaMissingError(
            f"Java not found. Spark 4 needs Java {MIN_JAVA} or newer: install it "
            f"(Debian: apt-get install openjdk-{MIN_JAVA}-jre-headless) or set JAVA_HOME.")
    if v < MIN_JAVA:
        raise JavaMissingError(
            f"Java {v} found, but Spark 4 needs Java {MIN_JAVA} or newer: install a newer JDK "
            f"or point JAVA_HOME at one.")
    return v


def get_spark(app_name: str | None = None, master: str | None = None, extra_conf: dict | None = None):
    """A SparkSession configured from galaxy_spark/conf/pipeline.yaml (spark-submit settings take precedence)."""
    check_java()
    from pyspark.sql import SparkSession

    cfg = load_pipeline_config()["spark"]
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name or cfg.get("app_name", "galaxy_spark"))
    under_submit = "spark.master" in os.environ.get("PYSPARK_SUBMIT_ARGS", "") or _submitted()
    if master:
        builder = builder.master(master)
    elif not under_submit:
        builder = builder.master(os.environ.get("GALAXY_SPARK_MASTER", cfg.get("master", "local[2]")))
    conf = {**cfg.get("config", {}), **(extra_conf or {})}
    if not sys.stderr.isatty():
        # Spark's [Stage …] progress line has no newline: piped or logged, a later `error:` line
        # would be glued to it (and vanish under `grep -v Stage`)
        conf["spark.ui.showConsoleProgress"] = "false"
    for k, v in conf.items():
        if under_submit and k == "spark.driver.memory":
            continue  # fixed when the driver JVM started
        builder = builder.config(k, str(v))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("GALAXY_SPARK_LOG_LEVEL", "WARN"))
    return spark


def _submitted() -> bool:
    # spark-submit starts the Python driver with the gateway already running
    return "PYSPARK_GATEWAY_PORT" in os.environ


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--check-java"]:
        try:
            v = check_java()
        except JavaMissingError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"Java {v} found (Spark needs >= {MIN_JAVA}).")
        return 0
    print("usage: python -m galaxy_spark.spark --check-java", file=sys.stderr)
    return 2


def test_split_filter(id_column: str):
    """A Spark boolean column: the row's ID is in the test split — to filter before anything
    reaches the driver."""
    from pyspark.sql import functions as F

    from galaxy_spark.features import in_test_split

    @F.pandas_udf("boolean")
    def in_test(ids: pd.Series) -> pd.Series:
        return pd.Series(in_test_split(ids.to_numpy(np.int64)))

    return in_test(F.col(id_column))


if __name__ == "__main__":
    sys.exit(main())
