"""Training: fit one network + calibration, the MLflow-tracked driver, the champion rule, fine-tuning."""
