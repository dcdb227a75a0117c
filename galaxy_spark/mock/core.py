"""Generation driver: split N objects over the survey's CCDs and build each CCD catalogue.

Every CCD catalogue is drawn from its own numpy Generator, seeded by
SeedSequence(seed).spawn(n_ccd)[i]; the split of N over CCDs is deterministic (proportional to
area, largest remainder). So the output depends only on (N, seed), never on how the work is run.
"""
from __future__ import annotations

import time
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
    try:
        from tqdm import tqdm
        it = tqdm(list(zip(ccds, counts, seqs)), desc="mock CCDs", unit="ccd", disable=not progress)
    except ImportError:  # pragma: no cover
        it = zip(ccds, counts, seqs)
    for (f, p, c), n, sq in it:
        if n == 0:
            continue
        yield (f, p, c), make_ccd(ctx, f, p, c, int(n), sq)


def generate_table(survey, n_objects: int, seed: int, progress: bool = False) -> dict:
    """All CCDs concatenated into one column dict (for validation and tests)."""
    parts = [cols for _, cols in generate(survey, n_objects, seed, progress)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
