"""Airflow DAG: nightly incremental rescoring with jobs/reprocess.py (see docs/reprocess.md).

Exit codes of the job and what this DAG does with them:
  0   done, or nothing to do                              → task succeeds
  75  another run holds the lock (EX_TEMPFAIL)            → task fails and is retried later
                                                            (retries / retry_delay below)
  1   a Field failed while rescoring (others committed)  → retried too: the retry redoes only the
                                                            Fields still out of date
  2   bad input or configuration, incl. a corrupt ledger → a retry fails the same way at once,
                                                            before any work; after the retries the
                                                            task fails and alerts (needs a human)

BashOperator fails the task on any non-zero exit code; the command below only adds a log line
that names the case. Install: copy into the Airflow dags/ folder; set GALAXY_SPARK_HOME (where the
repository and its .venv live) in the worker's environment. The file compiles without Airflow.
"""
from __future__ import annotations

import os
from datetime import datetime, timedelta

try:
    from airflow import DAG
    try:                                   # Airflow 3 (standard provider)
        from airflow.providers.standard.operators.bash import BashOperator
    except ImportError:                    # Airflow 2
        from airflow.operators.bash import BashOperator
except ImportError:                        # no Airflow here: the module still imports
    DAG = BashOperator = None

HOME = os.environ.get("GALAXY_SPARK_HOME", "/opt/galaxy_spark")

REPROCESS = f"""
cd {HOME} || exit 2
source .venv/bin/activate
export SPARK_HOME=$PWD/.venv/lib/python3.11/site-packages/pyspark
export MLFLOW_TRACKING_URI=${{MLFLOW_TRACKING_URI:-sqlite:///$PWD/mlflow.db}}
spark-submit --master ${{SPARK_MASTER:-local[2]}} jobs/reprocess.py \\
    --catalog data/catalog --scores data/scores --model models:/galaxy-ensemble@champion
rc=$?
case $rc in
  0)  ;;
  75) echo "reprocess: another run holds the lock (exit 75): retry later" ;;
  2)  echo "reprocess: bad input, configuration or corrupt ledger (exit 2): needs a human" ;;
  *)  echo "reprocess: rescoring failed (exit $rc): the retry redoes what is still out of date" ;;
esac
exit $rc
"""

if DAG is not None:
    with DAG(
        dag_id="galaxy_spark_reprocess",
        description="Rescore only the catalogue Fields whose input or champion model changed",
        schedule="15 2 * * *",
        start_date=datetime(2025, 1, 1),
        catchup=False,
        max_active_runs=1,          # the job's own lock is the guarantee; this just avoids needless 75s
        default_args={"retries": 6, "retry_delay": timedelta(minutes=10), "email_on_failure": True},
        tags=["galaxy_spark"],
    ) as dag:
        BashOperator(
            task_id="reprocess",
            bash_command=REPROCESS,
            # on timeout Airflow sends SIGTERM: the job turns it into a clean exit and releases the lock
            execution_timeout=timedelta(hours=6),
        )
