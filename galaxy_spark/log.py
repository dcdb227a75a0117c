"""Progress and diagnostics through `logging`: every module logs to ``get_logger(__name__)``.

Jobs call `setup()` once (`galaxy_spark.errors.cli_main` does): records of galaxy_spark's loggers
at INFO and above go to stdout as the bare message — the console output people read — warnings
prefixed ``warning:``. ``GALAXY_SPARK_LOG_LEVEL`` (DEBUG, INFO, WARNING, …) changes the level.
Machine-readable results stay one JSON line each (``score-result: {...}``,
``reprocess-result: {...}``), which the benchmarks parse; errors that end a job are printed by
`cli_main` on stderr.
"""
from __future__ import annotations

import logging
import os
import sys

ROOT = "galaxy_spark"
LEVEL_ENV = "GALAXY_SPARK_LOG_LEVEL"


def get_logger(name: str) -> logging.Logger:
    """The logger of a galaxy_spark module (pass ``__name__``)."""
    return logging.getLogger(name)


class _ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"error: {msg}"
        if record.levelno >= logging.WARNING:
            return f"warning: {msg}"
        return msg


def setup(level: str | int | None = None) -> logging.Logger:
    """Send galaxy_spark's records to stdout (idempotent). Returns the package's root logger."""
    root = logging.getLogger(ROOT)
    if not any(getattr(h, "_galaxy_spark_console", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler._galaxy_spark_console = True
        handler.setFormatter(_ConsoleFormatter())
        root.addHandler(handler)
        root.propagate = False
    root.setLevel(level or os.environ.get(LEVEL_ENV, "INFO").upper())
    return root
