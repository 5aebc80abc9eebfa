"""The one training loop of the speech and visual experts: :class:`transformers.Trainer` plus a class-balanced loss,
an effective batch kept for any process count, and a checked checkpoint to resume from (docs/scaling.md)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch.nn import functional as F
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback
from transformers.trainer_pt_utils import safe_globals

from mer_utils.core.config import one_of
from mer_utils.core.metrics import ua_score
from mer_utils.experts import distributed

STATE_DIR = "train_state"
logger = logging.getLogger(__name__)


def mixed_precision(amp: bool, dtype: str, device_type: str) -> str:
    """``no``, ``fp16`` or ``bf16`` for ``--amp`` / ``--amp-dtype`` (``auto``: bf16 where supported, no on CPU).

    >>> mixed_precision(True, "auto", "cpu"), mixed_precision(True, "bf16", "cpu"), mixed_precision(False, "fp16", "cuda")
    ('no', 'bf16', 'no')
    """
    one_of(dtype, ("auto", "fp16", "bf16"), "amp dtype")
    if not amp:
        return "no"
    if dtype == "auto":
        return ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if device_type == "cuda" else "no"
    if dtype == "fp16" and device_type != "cuda":
        raise ValueError("--amp-dtype fp16 needs a GPU; on CPU use --amp-dtype bf16 or --no-amp")
    return dtype


def accumulation_steps(*, batch_size: int, grad_accum: int, effective_batch_size: int | None,
                       num_processes: int) -> tuple[int, int]:
    """``(accumulation steps per process, effective batch)``, the effective batch kept for any process count.

    >>> accumulation_steps(batch_size=8, grad_accum=4, effective_batch_size=None, num_processes=2)
    (2, 32)
    >>> accumulation_steps(batch_size=4, grad_accum=1, effective_batch_size=32, num_processes=4)
    (2, 32)
    """
    effective = int(effective_batch_size or batch_size * grad_accum)
    per_step = batch_size * num_processes
    if effective < per_step or effective % per_step:
        raise ValueError(f"an effective batch of {effective} clips cannot be split into {num_processes} "
                         f"process(es) x batch {batch_size} x whole accumulation steps; pass --batch-size so that "
                         f"batch size x {num_processes} divides {effective}, or another --effective-batch-size")
    return effective // per_step, effective


def training_arguments(work_dir: str | os.PathLike, *, epochs: int, batch_size: int, grad_accum: int, seed: int,
                       device: str | None, precision: str = "no", eval_batch_size: int = 1, progress: bool = True,
                       **options) -> TrainingArguments:
    """Evaluation, selection on ``ua`` and a checkpoint (best and newest kept) at each epoch end, plus ``options``."""
    if (not distributed.is_distributed() and os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true"
            and "MASTER_PORT" in os.environ):
        logger.warning("accelerate launch --cpu started a single process (several CPU processes need "
                       "--mpirun_hostfile); for N processes on CPU use `accelerate launch --multi_gpu "
                       "--num_processes N ...` (gloo) or `torchrun --nproc_per_node N -m mer_utils ...`")
    cpu = distributed.use_cpu(device)
    return TrainingArguments(
        output_dir=str(Path(work_dir) / STATE_DIR), num_train_epochs=epochs, per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum, per_device_eval_batch_size=eval_batch_size, seed=seed,
        eval_strategy="epoch", save_strategy="epoch", logging_strategy="epoch", save_total_limit=1,
        load_best_model_at_end=True, metric_for_best_model="ua", greater_is_better=True,
        restore_callback_states_from_checkpoint=True,  # the early-stopping count carries over a resume
        label_names=["labels"], remove_unused_columns=False, use_cpu=cpu, dataloader_pin_memory=not cpu,
        bf16=precision == "bf16", fp16=precision == "fp16", disable_tqdm=not progress, report_to="none", **options)


class ClassBalancedTrainer(Trainer):
    """Cross-entropy weighted by ``class_weights``; the model maps a batch's tensors but ``labels`` to logits."""

    def __init__(self, *args, class_weights, **kwargs):
        super().__init__(*args, **kwargs)
        self.class_weights = torch.as_tensor(class_weights, dtype=torch.float32)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        logits = model(**{name: tensor for name, tensor in inputs.items() if name != "labels"})
        loss = F.cross_entropy(logits.float(), inputs["labels"], weight=self.class_weights.to(logits.device))
        return (loss, {"logits": logits}) if return_outputs else loss


class SaveEvery(TrainerCallback):
    """A checkpoint every ``steps`` optimizer steps inside an epoch, not at its end (it would skip the evaluation)."""

    def __init__(self, steps: int):
        self.steps = steps

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.steps == 0 and not float(state.epoch).is_integer():
            control.should_save = True


def fine_tune(model: torch.nn.Module, train_set, val_set, *, args: TrainingArguments, collate, class_weights,
              optimizer: torch.optim.Optimizer, patience: int, save_every: int | None = None
              ) -> tuple[ClassBalancedTrainer, dict]:
    """Train ``model`` (resuming from ``args.output_dir``) and end with the best validation UA's weights; returns
    the trainer (for :func:`predict_proba`) and a report (best epoch and UA, history, layout)."""
    n, batch, accum = args.world_size, args.per_device_train_batch_size, args.gradient_accumulation_steps
    precision = "bf16" if args.bf16 else "fp16" if args.fp16 else "no"
    layout = {"num_processes": n, "per_device_batch_size": batch, "grad_accum_per_process": accum,
              "effective_batch_size": n * batch * accum, "mixed_precision": precision, "device": str(args.device)}
    if args.process_index == 0:
        print(f"fine-tuning on {n} process(es) ({args.device.type}, precision {precision}): effective batch "
              f"{n * batch * accum} = {batch} per device x {n} x {accum} accumulated", flush=True)
    callbacks = [EarlyStoppingCallback(patience)] + ([SaveEvery(save_every)] if save_every else [])
    trainer = ClassBalancedTrainer(
        model=model, args=args, data_collator=collate, train_dataset=train_set, eval_dataset=val_set,
        optimizers=(optimizer, None), callbacks=callbacks, class_weights=class_weights,
        compute_metrics=lambda p: {"ua": ua_score(p.label_ids, p.predictions.argmax(axis=-1))})
    if args.disable_tqdm:
        trainer.remove_callback(PrinterCallback)  # --no-progress: no metrics dict printed per epoch either
    checkpoint = resumable_checkpoint(args.output_dir)
    trainer.train(resume_from_checkpoint=checkpoint)
    state = trainer.state
    losses = {row["step"]: row["loss"] for row in state.log_history if "loss" in row}
    evaluations = [row for row in state.log_history if "eval_ua" in row]
    history = [{"epoch": round(row["epoch"]), "train_loss": losses.get(row["step"]), "val_loss": row["eval_loss"],
                "val_ua": row["eval_ua"]} for row in evaluations]
    best = [h["epoch"] for h, row in zip(history, evaluations) if row["step"] == state.best_global_step]
    report = {"best_epoch": best[0] if best else None, "best_val_ua": state.best_metric, "history": history,
              "optimizer_steps": state.global_step, "resumed_from": None if checkpoint is None else
              {"checkpoint": Path(checkpoint).name, "step": int(Path(checkpoint).name.split("-")[-1])}, **layout}
    return trainer, report


def predict_proba(trainer: Trainer, inputs: list) -> np.ndarray:
    """Class probabilities of ``inputs`` (unlabelled items) in order on every process, each scored exactly once."""
    if not inputs:
        return np.zeros((0, len(trainer.class_weights)), dtype=np.float32)
    trainer.compute_metrics = None  # the labels below are placeholders: nothing to score
    logits = trainer.predict([(item, 0) for item in inputs]).predictions
    if len(logits) != len(inputs):
        raise RuntimeError(f"sharded prediction returned {len(logits)} rows for {len(inputs)} items")
    return torch.softmax(torch.as_tensor(logits).float(), dim=-1).numpy()


def resumable_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest checkpoint in ``output_dir`` that is complete and readable, the same on every process; a newer,
    unreadable one is renamed ``corrupt-checkpoint-<step>`` and said so: it never blocks the run."""
    chosen, bad = None, []
    if distributed.is_main_process():
        folders = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]),
                         reverse=True)
        for folder in folders:
            try:
                _check_readable(folder)
                chosen = str(folder)
                break
            except Exception as err:  # whatever a damaged file raises: never block the run
                bad.append((folder, err))
        for folder, err in bad:
            target = folder.with_name(f"corrupt-{folder.name}")
            shutil.rmtree(target, ignore_errors=True)
            os.replace(folder, target)
            message = (f"resume state {folder} is unreadable ({type(err).__name__}: {str(err).splitlines()[0]}); set "
                       f"aside as {target.name}; " + (f"this fold resumes from {Path(chosen).name}" if chosen else
                                                      "this fold restarts from scratch"))
            print(message, flush=True)
            logger.warning(message)
    return distributed.broadcast(chosen)


def _check_readable(folder: Path) -> None:
    """Raise unless ``folder`` holds every file a resume reads, each of them readable."""
    n = distributed.world_size()
    rng = ["rng_state.pth"] if n == 1 else [f"rng_state_{i}.pth" for i in range(n)]
    if missing := [name for name in ("trainer_state.json", "model.safetensors", "optimizer.pt", "scheduler.pt", *rng)
                   if not (folder / name).is_file()]:
        raise FileNotFoundError(f"{', '.join(missing)} missing")
    for path in sorted(folder.iterdir()):
        try:
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".safetensors":
                load_file(path)
            elif path.suffix in (".pt", ".pth"):
                with safe_globals():  # the numpy RNG state's types, as Trainer loads it
                    torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise RuntimeError(f"{path.name}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") \
                from err
