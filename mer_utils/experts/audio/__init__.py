"""Speech emotion recognition (SER): the audio expert.

Modules, each with one job:

- :mod:`~mer_utils.experts.audio.config` — :class:`AudioTrainConfig`, the one dataclass of the stage.
- :mod:`~mer_utils.experts.audio.backbone` — the backbone interface and :class:`ClipSet`.
- :mod:`~mer_utils.experts.audio.loading` — decode, resample, down-mix, trim, cap/pad.
- :mod:`~mer_utils.experts.audio.features` — acoustic feature sets (eGeMAPS, ComParE, librosa, GE2E).
- :mod:`~mer_utils.experts.audio.speaker_encoder` — the pretrained GE2E speaker encoder behind ``ge2e``.
- :mod:`~mer_utils.experts.audio.feature_cache` — on-disk cache of per-clip arrays.
- :mod:`~mer_utils.experts.audio.classical` — the offline backbone: features + logistic regression.
- :mod:`~mer_utils.experts.audio.ssl_model` — self-supervised speech models with a classification head.
- :mod:`~mer_utils.experts.audio.ssl_train` — fine-tuning on ``transformers.Trainer`` (resumable).
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

# "a+b" concatenates feature sets; each test clip is scored alone unless a run asks for test-time
# adaptation (mer_utils.core.adaptation; results in docs/ravdess.md).
FEATURE_SET_NAMES = ("egemaps", "compare", "librosa", "ge2e")  # see mer_utils.experts.audio.features.FEATURE_SETS
# Examples of acoustic backbones; any "+"/"," combination of FEATURE_SET_NAMES is one
# ("a+b": one model on both sets stacked; "a,b": one model per item, probabilities averaged).
ACOUSTIC_BACKBONES = ("ge2e", "egemaps,librosa,compare,ge2e", "egemaps,librosa,compare", "egemaps+librosa", "egemaps",
                      "compare", "librosa")
# The GE2E speaker-encoder statistics: the feature set with the best validation UA on unseen RAVDESS
# speakers, scored clip by clip and with adaptation alike (docs/ravdess.md).
DEFAULT_BACKBONE = "ge2e"


def is_acoustic_backbone(name: str) -> bool:
    """True when ``name`` combines offline feature sets (and is no speech-model id or folder).

    >>> is_acoustic_backbone("egemaps,librosa+compare"), is_acoustic_backbone("facebook/wav2vec2-base")
    (True, False)
    """
    return all(part in FEATURE_SET_NAMES for item in name.split(",") for part in item.split("+"))
DEFAULT_SSL_MODEL = "facebook/wav2vec2-base"
# Logistic-regression C values the offline backbones try, chosen by validation UA (one grid for all of them).
DEFAULT_C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
