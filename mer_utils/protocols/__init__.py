"""Splits as files: generated (random, speaker, speaker k-fold, leave-one-group-out) and CREMA-D's published ones."""
