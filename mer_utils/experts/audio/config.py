"""The audio stage's configuration: one flat dataclass of groups (each a section of ``mer audio train --help``),
saved as each run's ``config.json``. The Hugging Face token is no field: it is read from the environment."""

from __future__ import annotations

import dataclasses

from mer_utils.core.adaptation import ADAPTATIONS, DEFAULT_ADAPTATION, check_adaptation
from mer_utils.core.config import NOT_RESULTS as _NOT_RESULTS
from mer_utils.core.config import field as _f
from mer_utils.core.config import field_names, group, ignored_options, run_folds_field
from mer_utils.data.manifest import DATASETS
from mer_utils.experts.audio import (ACOUSTIC_BACKBONES, DEFAULT_BACKBONE, DEFAULT_C_GRID, DEFAULT_SSL_MODEL,
                                     is_acoustic_backbone)
from mer_utils.protocols import SplitOptions

MODES = ("auto", "finetune", "frozen")


@group("data")
class AudioData:
    data_root: str | None = _f(None, "corpus: a CREMA-D folder (AudioWAV/ ...), a RAVDESS or IEMOCAP folder, or a "
                                     "CSV with columns path, speaker, emotion; None: the embedded synthetic corpus")
    dataset: str = _f("auto", "corpus reader (auto: detected from the data root)",
                      choices=DATASETS)
    all_emotions: bool = _f(False, "keep every emotion a reader leaves out by default (RAVDESS: calm, surprised)")
    metadata_dir: str | None = _f(None, "folder with VideoDemographics.csv / processedResults/ if the data "
                                        "root lacks them")
    trim_top_db: float | None = _f(30.0, "trim leading/trailing audio quieter than peak minus this (dB); "
                                         "None (from Python or a replayed config.json): no trimming")
    max_seconds: float | None = _f(6.0, "cap clip length (seconds) after trimming")
    min_seconds: float = _f(0.5, "zero-pad shorter clips to this length (seconds)")


@group("model")
class AudioModel:
    backbone: str = _f(DEFAULT_BACKBONE, f"acoustic feature sets ({', '.join(ACOUSTIC_BACKBONES)}; '+' stacks, ',' averages models) or a Hugging Face "
                                         "model id / local folder (e.g. facebook/wav2vec2-base)")
    mode: str = _f("auto", "speech models: finetune or frozen (auto: finetune); acoustic backbones: auto",
                   choices=MODES)
    adapt: str = _f(DEFAULT_ADAPTATION, "how a test clip is scored: none = alone (the default; what published results "
                                         "and the demo do); speaker = features z-scored per speaker with that speaker's "
                                         "unlabelled clips (test-time adaptation, acoustic backbones); balanced = speaker "
                                         "+ per-sentence z-score + per-speaker prior matching (only corpora whose "
                                         "speakers were all recorded in every emotion alike: CREMA-D, RAVDESS)",
                    choices=ADAPTATIONS)


@group("training: acoustic backbones")
class AcousticTraining:
    c_grid: list[float] = _f(DEFAULT_C_GRID, "logistic-regression C values tried (chosen on val UA)")
    n_jobs: int = _f(1, "parallel processes for feature extraction (-1: all cores)")
    refit: bool = _f(True, "acoustic backbones: refit the C chosen on validation on train+validation for the test "
                           "predictions (validation predictions stay out-of-sample)")


@group("training: speech models, finetune and frozen modes")
class SpeechHead:
    head_hidden: int = _f(0, "hidden units of the classifier (0: linear)")


@group("training: speech models, finetune mode")
class FinetuneTraining:
    epochs: int = _f(10, "fine-tuning epochs (early stopping may end sooner)")
    batch_size: int = _f(8, "clips per batch on one device (GPU or CPU process)")
    grad_accum: int = _f(4, "batches per optimizer step on one process; the effective batch batch-size x "
                            "grad-accum is kept under N processes (each accumulates grad-accum / N)")
    effective_batch_size: int | None = _f(None, "clips per optimizer step over all processes (None: batch-size x "
                                                "grad-accum); each process accumulates effective / (batch-size x "
                                                "processes) batches")
    lr: float = _f(3e-5, "learning rate of the pretrained backbone")
    head_lr: float = _f(1e-3, "learning rate of layer weights, pooling and classifier")
    warmup_ratio: float = _f(0.1, "share of optimizer steps spent warming up the learning rate")
    patience: int = _f(3, "epochs without validation-UA gain before early stopping")
    freeze_feature_encoder: bool = _f(True, "keep the convolutional waveform encoder frozen")
    amp: bool = _f(True, "mixed precision (through Accelerate; see --amp-dtype)")
    amp_dtype: str = _f("auto", "auto: bf16 where the GPU supports it, else fp16, off on CPU; fp16 (GPU) or "
                                "bf16 (GPU or CPU)", choices=("auto", "fp16", "bf16"))
    layer: str = _f("weighted", "'weighted' (learnable sum of all layers) or a layer index")
    pooling: str = _f("mean", "mean or attentive pooling over frames", choices=("mean", "attentive"))
    save_every_steps: int = _f(50, "optimizer steps between resume checkpoints")


@group("training: speech models, frozen mode")
class FrozenTraining:
    probe: str = _f("logreg", "frozen mode: logreg (best single layer) or weighted (learnable layer sum)",
                    choices=("logreg", "weighted"))


@group("run")
class AudioRun:
    run_folds: list[int] = run_folds_field()
    outputs: str = _f("outputs", "folder for run folders, splits, manifests and caches")
    checkpoints: str = _f("checkpoints", "folder for the best checkpoints (stable names)")
    device: str | None = _f(None, "torch device (None: cuda if available, else cpu)")
    progress: bool = _f(True, "show progress bars")


# The groups in --help order; each mode reads the common groups and its own. Any other option set away from
# its default is refused, not silently ignored.
GROUPS = (AudioData, SplitOptions, AudioModel, AcousticTraining, SpeechHead, FinetuneTraining, FrozenTraining, AudioRun)
COMMON_FIELDS = field_names(AudioData, SplitOptions, AudioModel, AudioRun)
MODE_FIELDS = {
    "offline": field_names(AcousticTraining),
    "finetune": field_names(FinetuneTraining, SpeechHead),
    "frozen": field_names(FrozenTraining, SpeechHead),
}
NOT_RESULTS = _NOT_RESULTS | {"save_every_steps"}  # how often a fine-tune saves its resume state


@dataclasses.dataclass
class AudioTrainConfig(*reversed(GROUPS)):  # reversed: a dataclass lists its last base's fields first
    """Everything a speech-emotion run depends on (the fields of every group, flat)."""

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.is_acoustic and self.mode != "auto":
            raise ValueError(f"--mode {self.mode} applies to speech models, e.g. --backbone {DEFAULT_SSL_MODEL}; "
                             f"the acoustic backbone {self.backbone!r} has a single mode (leave --mode at auto)")
        check_adaptation(self.adapt)
        if self.adapt != DEFAULT_ADAPTATION and not self.is_acoustic:
            raise ValueError(f"--adapt {self.adapt} applies to acoustic backbones (e.g. --backbone {DEFAULT_BACKBONE}); "
                             f"speech models score each clip alone (--adapt none)")
        self.c_grid = tuple(float(c) for c in self.c_grid)
        self.run_folds = tuple(int(f) for f in self.run_folds)
        ignored = ignored_options(self, COMMON_FIELDS | MODE_FIELDS[self.resolved_mode] | NOT_RESULTS)
        if ignored:
            raise ValueError(f"{', '.join(ignored)}: not used by {self.resolved_mode} mode (backbone "
                             f"{self.backbone!r}); leave them at their defaults or choose a mode that uses them")

    def result_settings(self) -> dict:
        """The options that change results in this mode: they address the run folder."""
        relevant = (COMMON_FIELDS | MODE_FIELDS[self.resolved_mode]) - NOT_RESULTS
        return {k: v for k, v in dataclasses.asdict(self).items() if k in relevant}

    @property
    def is_acoustic(self) -> bool:
        return is_acoustic_backbone(self.backbone)

    @property
    def resolved_mode(self) -> str:
        """``offline`` for acoustic backbones, else ``finetune`` or ``frozen``."""
        return "offline" if self.is_acoustic else "finetune" if self.mode == "auto" else self.mode

    def run_name(self) -> str:
        """``<protocol>_<backbone>[_<mode>]_adapt-<adapt>_seed<seed>``, safe as a folder name."""
        slug = self.backbone.rstrip("/").split("/")[-1]
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in slug)
        mode = "" if self.is_acoustic else f"_{self.resolved_mode}"
        return f"{self.protocol}_{slug}{mode}_adapt-{self.adapt}_seed{self.seed}"

    @classmethod
    def upgrade_config(cls, stored: dict) -> dict:
        """A ``config.json`` written before ``adapt`` existed, in today's fields (``--config`` replay)."""
        if not {"speaker_norm", "sentence_norm", "balance"} & set(stored):
            return stored
        stored = dict(stored)
        norm, sentence, balance = (stored.pop("speaker_norm", None), stored.pop("sentence_norm", False),
                                   stored.pop("balance", False))
        if norm is None:
            stored["adapt"] = "none"
        elif norm == "meanstd" and sentence == balance:
            stored["adapt"] = "balanced" if balance else "speaker"
        else:
            raise ValueError(f"this config scored clips with speaker_norm={norm!r}, sentence_norm={sentence}, "
                             f"balance={balance}, a combination no longer offered; choose --adapt "
                             f"{' / '.join(ADAPTATIONS)}")
        return stored
