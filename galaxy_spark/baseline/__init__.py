"""Baselines the learned models are compared against (template-fitting photo-z)."""
from galaxy_spark.baseline.bpz import BPZModel, fit_bpz

__all__ = ["BPZModel", "fit_bpz"]
