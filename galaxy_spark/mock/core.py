"""Generation driver: split N objects over the survey's CCDs and build each CCD catalogue.

Every CCD catalogue is drawn from its own numpy Generator, seeded by
SeedSequence(seed).spawn(n_ccd)[i]; the split of N over CCDs is deterministic (proportional to
area, largest remainder). So the output depends only on (N, seed), never on how the work is run.
"""
from __future__ import annotations

import multiprocessing
import os
from typing import Iterator

import numpy as np

from galaxy_spark.errors import InputError
from galaxy_spark.mock.columns import Context, make_ccd

_CONTEXTS: dict[str, Context] = {}


def context(survey) -> Context:
    key = f"{survey.name}:{survey.source}"
    if key not in _CONTEXTS:
        _CONTEXTS[key] = Context(survey)
    return _CONTEXTS[key]


def ccd_areas(survey) -> np.ndarray:
    """Relative effective areas of the CCD catalogues (all LAICA CCDs are alike)."""
    return np.ones(len(survey.ccd_catalogues()))


def split_counts(n: int, weights: np.ndarray) -> np.ndarray:
    w = np.asarray(weights, float) / np.sum(weights)
    exact = n * w
    base = np.floor(exact).astype(int)
    rem = n - base.sum()
    order = np.argsort(-(exact - base), kind="stable")
    base[order[:rem]] += 1
    return base


def generate(survey, n_objects: int, seed: int, progress: bool = False) -> Iterator[tuple[tuple[int, int, int], dict]]:
    """Yield ((field, pointing, ccd), columns) for every CCD catalogue of the survey."""
    if n_objects <= 0:
        raise InputError(f"--objects must be a positive integer, got {n_objects}")
    ccds = survey.ccd_catalogues()
    counts = split_counts(n_objects, ccd_areas(survey))
    id_room = 10 ** (survey.id_digits - len(str(survey.id_prefix)) - 3)
    if counts.max() >= id_room:
        raise InputError(f"--objects {n_objects} is too many: a CCD catalogue holds at most {id_room - 1} "
                         f"objects in the {survey.id_digits}-digit ID scheme")
    ctx = context(survey)
    seqs = np.random.SeedSequence(int(seed)).spawn(len(ccds))
    jobs = [((f, p, c), int(n), sq) for (f, p, c), n, sq in zip(ccds, counts, seqs) if n > 0]
    from tqdm import tqdm

    bar = tqdm(total=int(sum(n for _, n, _ in jobs)), desc="mock objects", unit="obj", disable=not progress)
    workers = generation_workers(n_objects)
    if workers <= 1:
        results = (make_ccd(ctx, *key, n, sq) for key, n, sq in jobs)
    else:
        # forked workers inherit the context (grids, labelling templates): nothing is pickled but
        # the seeds in and the columns out; each CCD has its own seed, so the bytes do not depend
        # on the number of workers
        global _WORKER_CTX
        _WORKER_CTX = ctx
        pool = multiprocessing.get_context("fork").Pool(workers)
        results = pool.imap(_make_ccd_job, [(key, n, sq) for key, n, sq in jobs])
    try:
        for (key, n, _), cols in zip(jobs, results):
            bar.update(n)
            yield key, cols
    finally:
        bar.close()
        if workers > 1:
            pool.terminate()


_WORKER_CTX: Context | None = None
PARALLEL_MIN_OBJECTS = 20_000     # below this, forking costs more than it saves


def generation_workers(n_objects: int) -> int:
    """Processes for generation: every core for a large mock (labelling by template fitting is
    most of the work), one for a small one."""
    return max(1, os.cpu_count() or 1) if n_objects >= PARALLEL_MIN_OBJECTS else 1


def _make_ccd_job(job):
    (f, p, c), n, sq = job
    return make_ccd(_WORKER_CTX, f, p, c, n, sq)


def generate_table(survey, n_objects: int, seed: int, progress: bool = False) -> dict:
    """All CCDs concatenated into one column dict (for validation and tests)."""
    parts = [cols for _, cols in generate(survey, n_objects, seed, progress)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
