"""The visual expert: facial expression recognition from video (decode, track the face, crop, classify).

OpenCV and torch are imported inside the functions that use them.
"""
