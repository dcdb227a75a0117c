"""Estimation: batch scoring (features → estimates, Monte Carlo, flags), the Spark job, reprocessing."""
