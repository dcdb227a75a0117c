"""The one skeleton of a job that writes staged outputs: recover → stage → run tasks → account →
manifest → commit. ingest, score and reprocess are each a `StagedJob` (their plan and tasks); this
module owns the order of the steps, the staging directories and their removal, and the row
accounting rule.

    res = run_staged(job, echo)

1. `job.recover(target)` for every target (finish or undo what a killed run left);
2. one staging sibling per target (`io.commit.staging_dir`, same parent: renames stay on one
   file system);
3. `job.run(staging, token)`: the Spark tasks write into the staging directories;
4. `job.account(result, staging)`: the counts that must agree (`check_rows`); a mismatch commits
   nothing;
5. `job.commit(result, staging, token)`: manifests and the journaled swap (`io.commit`) — all
   targets as one unit (ingest: catalogue + quarantine) or one part at a time (score: each Field,
   its manifest entry after its commit);
6. whatever is left of the staging directories is removed, on success and on failure alike.
"""
from __future__ import annotations

import uuid
from typing import Any, Callable, Protocol

from galaxy_spark.errors import GalaxySparkError
from galaxy_spark.io.commit import staging_dir
from galaxy_spark.io.fs import location, store


class AccountingError(GalaxySparkError):
    """Rows (or IDs) in and out of a job disagree: nothing was committed."""


def check_rows(counts: dict[str, int], where: str = "", checksums: tuple[int, int] | None = None) -> None:
    """The accounting rule of every staged job: each named count must be equal (e.g. rows in the
    input, rows read, rows written + quarantined, rows the staged files' footers hold), and the ID
    checksum of what was read must equal that of what was written (`checksums`: (read, written),
    sums of the int64 IDs modulo 2^64). Otherwise `AccountingError`, naming every count."""
    sums_equal = checksums is None or checksums[0] % (1 << 64) == checksums[1] % (1 << 64)
    if len(set(counts.values())) <= 1 and sums_equal:
        return
    sums = "" if checksums is None else f" (ID checksums of read and written rows {'equal' if sums_equal else 'differ'})"
    raise AccountingError(f"row accounting mismatch{' in ' + where if where else ''}: "
                          + ", ".join(f"{v} {k}" for k, v in counts.items()) + sums + "; nothing was committed")


class StagedJob(Protocol):
    name: str                       # the job's name: the prefix of its log lines
    targets: list                   # the output directories (paths or URIs)

    def recover(self, target) -> list[str]: ...
    def run(self, staging: dict, token: str) -> Any: ...
    def account(self, result: Any, staging: dict) -> None: ...
    def commit(self, result: Any, staging: dict, token: str) -> None: ...


def run_staged(job: StagedJob, echo: Callable[[str], None] = print, on_error: Callable[[BaseException], None] | None = None):
    """Run `job` through the skeleton (see the module docstring); returns what `job.run` returned.
    `on_error(e)`: translate an exception of the tasks into the job's own error (raise it there)."""
    targets = [location(t).absolute() for t in job.targets]
    for t in targets:
        store(t).mkdirs(t.parent)
        for note in job.recover(t):
            echo(f"{job.name}: {note}")
    token = uuid.uuid4().hex[:12]
    staging = {t: staging_dir(t, token) for t in targets}
    try:
        for st in staging.values():
            store(st).mkdir_new(st)
        try:
            result = job.run(staging, token)
        except BaseException as e:
            if on_error is not None:
                on_error(e)
            raise
        job.account(result, staging)
        job.commit(result, staging, token)
    finally:
        for st in staging.values():
            store(st).delete(st)
    return result
