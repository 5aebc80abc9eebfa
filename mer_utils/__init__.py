"""Multimodal emotion recognition (speech, face, fusion) on CREMA-D and any labelled corpus.

Layers, each a sub-package (see docs/architecture.md):
``core`` (contracts: predictions, metrics, run folders) -> ``data`` (corpus
readers, manifest, media health) -> ``protocols`` (splits) -> ``experts``
(audio, visual, one protocol runner) -> ``fusion`` -> ``report`` / ``demo``.

The data and protocol layers import with numpy, pandas and scikit-learn alone;
torch, transformers and OpenCV are imported inside the functions that need them.
"""

__version__ = "0.2.0"
__all__ = ["__version__"]
