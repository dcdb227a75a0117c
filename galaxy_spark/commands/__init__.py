"""The command-line jobs. `galaxy-spark <job> [options]` (the console script of the installed
package, or ``python -m galaxy_spark.commands``) and the `jobs/<job>.py` files spark-submit takes
both run these modules' `main`.

    galaxy-spark mock|ingest|train|score|evaluate|realdata-check|reprocess|bands-study --help
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {"mock": "a simulated survey catalogue", "ingest": "raw catalogue -> Parquet by Field + quarantine",
            "train": "the preset's networks, tracked in MLflow, one registered ensemble",
            "score": "score a catalogue with a registered model (Spark)",
            "evaluate": "metrics, baselines and the HTML report", "realdata-check": "real rows vs the survey's BPZ",
            "reprocess": "rescore what changed (for a scheduler)",
            "bands-study": "accuracy vs number of bands: one population through several survey files"}


def usage() -> str:
    return ("usage: galaxy-spark <job> [options]   (galaxy-spark <job> --help for its options)\n\njobs:\n"
            + "\n".join(f"  {k:<15} {v}" for k, v in COMMANDS.items()))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"error: unknown job {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    sys.argv[0] = f"galaxy-spark {argv[0]}"          # argparse's prog in --help and errors
    job = importlib.import_module(f"galaxy_spark.commands.{argv[0].replace('-', '_')}")
    return job.main(argv[1:])
