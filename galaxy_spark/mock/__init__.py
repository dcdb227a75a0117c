"""Physically based mock ALHAMBRA catalogue (see docs/mock.md).

    from galaxy_spark.mock import generate, generate_table
    for (field, pointing, ccd), columns in generate(load_survey(), 446_343, seed=42): ...
"""
from galaxy_spark.mock.core import generate, generate_table, split_counts  # noqa: F401
