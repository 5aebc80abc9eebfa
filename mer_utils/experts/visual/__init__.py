"""The visual expert: facial expression recognition from video (decode, track the face, crop, classify)."""
