"""Multimodal emotion recognition (speech, face, fusion) on CREMA-D and any labelled corpus; layers:
docs/architecture.md."""

__version__ = "0.2.0"
__all__ = ["__version__"]
