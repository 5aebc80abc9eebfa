"""The visual stage's configuration (``config.json``), one group per ``--help`` section."""

from __future__ import annotations

import dataclasses

from mer_utils.core.config import field as _f
from mer_utils.core.config import NOT_RESULTS, group, one_of, run_folds_field
from mer_utils.data.manifest import DATASETS
from mer_utils.experts.visual.crops import CropConfig
from mer_utils.experts.visual.models import ModelSpec
from mer_utils.protocols import SplitOptions

MODES = ("frozen", "finetune")


@group("data")
class VisualData:
    data_root: str | None = _f(None, "corpus: a CREMA-D folder (VideoFlash/ ...) or a CSV with a video_path column; "
                                     "None: the embedded synthetic corpus")
    dataset: str = _f("auto", "corpus reader (auto: detected from the data root)",
                      choices=DATASETS)
    metadata_dir: str | None = _f(None, "folder with VideoDemographics.csv if the data root lacks it")


@group("face crops")
class FaceCrops:
    n_frames: int = _f(8, "frames sampled uniformly per clip (K)")
    crop_size: int = _f(64, "side of the cached RGB face crop in pixels (use 112+ for timm backbones)")
    margin: float = _f(0.1, "margin added on each side of the detected face, as a fraction of its size")
    smooth_window: int = _f(3, "running-median window for face boxes over the sampled frames (odd)")
    min_face: float = _f(0.12, "smallest face the detector looks for, as a fraction of the frame's shorter side")
    detect_width: int = _f(160, "frames wider than this are downscaled before face detection")
    n_jobs: int = _f(0, "parallel workers for face crops (0: all cores)")


@group("model")
class VisualModel:
    backbone: str = _f("fer2013", "frame encoder: fer2013 (FER2013 mini-Xception, offline) or timm:<name> "
                                  "(ImageNet weights from the Hugging Face Hub, e.g. timm:resnet18)")
    mode: str = _f("frozen", "frozen: train pooling + head on fixed frame features (fast on CPU); "
                             "finetune: train the encoder too", choices=MODES)
    pooling: str = _f("mean", "temporal pooling over the K frames", choices=("mean", "attention"))
    hidden: int = _f(0, "hidden units of the classifier head (0: a linear layer on the pooled features)")
    dropout: float = _f(0.2, "dropout in the classifier head")


@group("training")
class VisualTraining:
    epochs: int = _f(60, "maximum epochs (early stopping on validation UA may end sooner)")
    patience: int = _f(12, "epochs without validation-UA gain before early stopping")
    batch_size: int = _f(32, "clips per batch")
    lr: float = _f(1e-2, "learning rate of pooling and head")
    encoder_lr: float = _f(3e-4, "learning rate of the encoder (finetune mode)")
    weight_decay: float = _f(1e-4, "AdamW weight decay")
    augment: bool = _f(True, "mirror/shift/brightness augmentation (frozen mode: mirrored features and "
                             "random frame subsets)")
    run_folds: list[int] = run_folds_field()
    device: str | None = _f(None, "torch device (None: cuda if available, else cpu)")


@group("run")
class VisualRun:
    outputs: str = _f("outputs", "folder for run folders, splits, manifests and caches")
    checkpoints: str = _f("checkpoints", "folder for best_visual_model.* and the converted FER2013 weights")
    progress: bool = _f(True, "show progress bars")


# The groups in --help order; `mer visual prepare` and `zero-shot` train nothing: no model or training options.
GROUPS = (VisualData, SplitOptions, FaceCrops, VisualModel, VisualTraining, VisualRun)
PREPARE_GROUPS = (VisualData, FaceCrops, VisualRun)
ZERO_SHOT_GROUPS = (VisualData, SplitOptions, FaceCrops, VisualRun)


@dataclasses.dataclass
class VisualTrainConfig(*reversed(GROUPS)):  # reversed: a dataclass lists its last base's fields first
    """Everything a facial-expression run depends on (the fields of every group, flat)."""

    def __post_init__(self):
        one_of(self.mode, MODES, "mode")
        self.run_folds = tuple(int(f) for f in self.run_folds)
        if self.n_frames < 1 or self.crop_size < 16:
            raise ValueError(f"n_frames must be >= 1 and crop_size >= 16, got {self.n_frames} and {self.crop_size}")

    def crop_config(self):
        return CropConfig(n_frames=self.n_frames, crop_size=self.crop_size, margin=self.margin,
                          smooth_window=self.smooth_window, min_size_frac=self.min_face,
                          detect_width=self.detect_width)

    def model_spec(self, labels: tuple[str, ...]):
        return ModelSpec(backbone=self.backbone, pooling=self.pooling, hidden=self.hidden, dropout=self.dropout,
                         labels=tuple(labels))

    def result_settings(self) -> dict:
        """The options that change results: they address the run folder."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in NOT_RESULTS}

    def run_name(self) -> str:
        """``<protocol>_<backbone>_<mode>_seed<seed>``, safe as a folder name."""
        slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.backbone)
        return f"{self.protocol}_{slug}_{self.mode}_seed{self.seed}"
