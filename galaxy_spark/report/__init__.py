"""The evaluation report: the pages made from a finished evaluation (drawing: galaxy_spark.drawing)."""
