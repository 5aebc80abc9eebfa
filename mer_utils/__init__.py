"""Multimodal emotion recognition (speech, face, fusion) on CREMA-D.

The data layer (manifest, splits, metrics, predictions contract) imports with
numpy and pandas alone; torch, transformers and OpenCV are imported inside the
functions that need them.
"""

from mer_utils.constants import EMOTIONS, PROB_COLUMNS

__version__ = "0.1.0"
__all__ = ["EMOTIONS", "PROB_COLUMNS", "__version__"]
