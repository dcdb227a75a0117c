"""The canonical catalogue schema every reader produces and every later stage reads.

Per band B (from the survey file) the canonical table holds:
  B          magnitude (AB) when detected, else null
  dB         its 1-sigma error when detected, else null
  B_lim      1-sigma limiting magnitude when not detected, else null
  B_state    0 detected, 1 not detected (limit in B_lim), 2 not observed
The non-photometric columns keep their public names and types; null-sentinels (Chi2 = 99, …)
become null. `F814W_Image` (CSV only) and the mock's truth columns are nullable extras.
`source_file` records where each row came from. The table is partitioned by `Field`.
"""
from __future__ import annotations

from pyspark.sql import types as T

from galaxy_spark.survey import Survey, lim_column, state_column

_SPARK = {"long": T.LongType(), "int": T.IntegerType(), "double": T.DoubleType(), "string": T.StringType()}

PARTITION_COLUMN = "Field"
SOURCE_COLUMN = "source_file"


def spark_type(name: str) -> T.DataType:
    """The Spark type of a survey-file column type ('long', 'int', 'double', 'string')."""
    return _SPARK[name]


def canonical_fields(survey: Survey) -> list[T.StructField]:
    """The canonical table's columns in order: ID (not null), the other leading columns, the
    four columns of every band, trailing, CSV extras, truth, source_file."""
    id_field = [T.StructField(survey.id_column, T.LongType(), False)]
    fields = id_field + [T.StructField(c.name, spark_type(c.type), True)
                         for c in survey.leading if c.name != survey.id_column]
    for b in survey.band_names:
        fields += [
            T.StructField(b, T.DoubleType(), True),
            T.StructField(survey.error_column(b), T.DoubleType(), True),
            T.StructField(lim_column(b), T.DoubleType(), True),
            T.StructField(state_column(b), T.ByteType(), False),
        ]
    fields += [T.StructField(c.name, spark_type(c.type), True) for c in survey.trailing]
    fields += [T.StructField(c.name, spark_type(c.type), True) for c in survey.csv_extra]
    fields += [T.StructField(c.name, spark_type(c.type), True) for c in survey.truth]
    fields.append(T.StructField(SOURCE_COLUMN, T.StringType(), True))
    return fields


def canonical_schema(survey: Survey) -> T.StructType:
    """`canonical_fields` as a Spark schema."""
    return T.StructType(canonical_fields(survey))
