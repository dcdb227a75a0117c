"""spark-submit jobs/reprocess.py --catalog data/catalog --scores data/scores
[--model models:/galaxy-ensemble@champion] [--dry-run] [--force] [--prune] [--wait S]
— rescore only the Fields whose input or model changed; safe to run from cron or Airflow.

Per Field of the catalogue: rescore when there are no scores, the catalogue partition changed
(ingest-manifest fingerprint, else a fingerprint of its files), the model the URI resolves to now
differs from the one that scored it, the scoring options changed, the row counts differ, or
--force. Each Field is committed atomically; one ledger record per Field per run goes to
<scores>/_ledger.jsonl; <scores>/_reprocess.lock keeps two runs apart. See docs/reprocess.md.

Exit codes:
  0   done, or nothing to do (also --dry-run)
  1   a Field failed while rescoring (the others are committed; the failed one keeps its old scores)
  2   bad input or configuration, including a corrupt ledger (nothing was rescored)
  75  another run holds the lock (EX_TEMPFAIL): retry later, or pass --wait SECONDS
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from galaxy_spark.commands.reprocess import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
