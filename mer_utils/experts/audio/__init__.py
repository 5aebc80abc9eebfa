"""Speech emotion recognition (SER): the audio expert.

Modules, each with one job:

- :mod:`~mer_utils.experts.audio.config` — :class:`AudioTrainConfig`, the one dataclass of the stage.
- :mod:`~mer_utils.experts.audio.backbone` — the backbone interface and :class:`ClipSet`.
- :mod:`~mer_utils.experts.audio.loading` — decode, resample, down-mix, trim, cap/pad.
- :mod:`~mer_utils.experts.audio.features` — acoustic feature sets (eGeMAPS, ComParE, librosa).
- :mod:`~mer_utils.experts.audio.feature_cache` — on-disk cache of per-clip arrays.
- :mod:`~mer_utils.experts.audio.classical` — the offline backbone: features + logistic regression.
- :mod:`~mer_utils.experts.audio.ssl_model` — self-supervised speech models with a classification head.
- :mod:`~mer_utils.experts.audio.ssl_train` — fine-tuning loop (resumable).
- :mod:`~mer_utils.experts.audio.frozen` — cached per-layer embeddings and a fast probe.
- :mod:`~mer_utils.experts.audio.checkpoint` — :func:`load_audio_expert` for the demo.
- :mod:`~mer_utils.experts.audio.train` — the protocol runner behind ``mer audio train``.
- :mod:`~mer_utils.experts.audio.compare` — random vs speaker-independent side by side.

For the demo and fusion: ``load_audio_expert(path).predict_proba(paths_or_waveforms)``
(:mod:`~mer_utils.experts.audio.checkpoint`) and ``resolve_latest(outputs, "audio", protocol)``
(:mod:`mer_utils.core.runs`).

Importing this package is cheap: torch, transformers, librosa and opensmile
are imported inside the functions that use them.
"""

# "a+b" concatenates feature sets; acoustic backbones z-score each speaker's clips by default
# (mer_utils.experts.audio.speaker_norm; results in docs/ravdess.md).
ACOUSTIC_BACKBONES = ("egemaps+librosa", "egemaps", "compare", "librosa")
DEFAULT_BACKBONE = "egemaps+librosa"
DEFAULT_SSL_MODEL = "facebook/wav2vec2-base"
# Logistic-regression C values the offline backbones try, chosen by validation UA (one grid for all of them).
DEFAULT_C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
