"""Contracts every layer shares: label sets, the predictions CSV, metrics, run folders, the checkpoint index, configuration."""
