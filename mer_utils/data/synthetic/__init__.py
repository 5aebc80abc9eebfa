"""The embedded default corpus: synthetic, CREMA-D-shaped, learnable speech and face cues (no download)."""
