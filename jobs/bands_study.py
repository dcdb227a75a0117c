"""python jobs/bands_study.py [options] — runs galaxy_spark/commands/bands_study.py (`--help` describes
the job; `galaxy-spark bands-study` is the same command from the installed package)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from galaxy_spark.commands.bands_study import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
