"""Late fusion of the audio and visual experts' predictions.

The experts hand over predictions CSVs (:mod:`mer_utils.core.predictions`); this
subpackage joins them clip by clip (:mod:`.join`), calibrates and combines them
with strategies tuned on validation only (:mod:`.calibration`,
:mod:`.strategies`, :mod:`.tuning`), tests the result (:mod:`.significance`,
:mod:`.results`) and writes a run folder in the same contract (:mod:`.run`).
"""
