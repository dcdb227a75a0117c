"""User-facing errors: each one is printed as a single clear line and ends the job non-zero."""
from __future__ import annotations

import functools
import sys


class GalaxySparkError(Exception):
    """An error caused by input or configuration that the user can fix. exit_code is the job's."""

    exit_code = 2


class InputError(GalaxySparkError):
    """A missing, unreadable or malformed input (file, column, row)."""


class JavaMissingError(RuntimeError):
    """No Java, or one too old for Spark (galaxy_spark.spark.check_java)."""


def cli_main(fn):
    """Wrap a job's main(): logging to stdout (galaxy_spark.log.setup); known errors -> 'error: …' on stderr and their exit code, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from galaxy_spark.log import setup
        from galaxy_spark.survey import SurveyConfigError

        setup()
        try:
            return fn(*args, **kwargs)
        except (GalaxySparkError, SurveyConfigError, JavaMissingError) as e:
            # on a terminal a progress line may be open: the error starts on a line of its own
            print(f"{chr(10) if sys.stderr.isatty() else ''}error: {e}", file=sys.stderr)
            return getattr(e, "exit_code", 2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper
