"""Multimodal emotion recognition (speech, face, fusion) on CREMA-D and any labelled corpus.

Layers (docs/architecture.md): ``core`` -> ``data`` -> ``protocols`` -> ``experts`` -> ``fusion`` -> ``report`` /
``demo``; torch, transformers and OpenCV are imported inside the functions that need them.
"""

__version__ = "0.2.0"
__all__ = ["__version__"]
