"""Speech emotion recognition (SER): the audio expert (its modules: docs/architecture.md). Importing this package
is cheap: torch, transformers, librosa and opensmile are imported where they are used."""

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
