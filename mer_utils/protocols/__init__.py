"""Splits as files: generated (random, speaker, speaker k-fold, leave-one-group-out) and CREMA-D's published ones."""

from mer_utils.core.config import field, group
from mer_utils.protocols.splits import PROTOCOLS


@group("split")
class SplitOptions:
    """The split options every training stage shares."""

    protocol: str = field("random", "split protocol: random, speaker, speaker-kfold, loso (IEMOCAP sessions) or an "
                                    "imported CREMA-D split (ogm-ge, audeering, hicmae)", choices=PROTOCOLS)
    seed: int = field(0, "seed of the split and of training")
    folds: int = field(5, "number of folds of speaker-kfold")
    published_dir: str | None = field(None, "folder with published split files (ogm-ge/, audeering/, hicmae/)")
