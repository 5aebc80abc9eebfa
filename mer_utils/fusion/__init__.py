"""Late fusion of the audio and visual experts' predictions, tuned on validation only (docs/fusion.md)."""
