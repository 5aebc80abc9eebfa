"""One fold's training loop: class-balanced loss, early stopping on
validation UA, augmentation, and resume after an interruption.

Two regimes share the loop:

- frozen encoder: frame features are computed once (also for the mirrored
  crops) and only pooling + head are trained; augmentation picks the
  mirrored features and a random subset of frames;
- fine-tuning: crops go through the whole network, augmented on the fly
  (mirror, shift, brightness and contrast).

Randomness of epoch ``e`` comes from a generator seeded with ``(seed, fold,
e)``, so a resumed run continues exactly as an uninterrupted one would.
The resume state is a ``torch.save`` of tensors and plain values, read back
with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from mer_utils.core.labels import class_weights


@dataclasses.dataclass(frozen=True)
class FitSettings:
    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-2
    encoder_lr: float = 3e-4
    weight_decay: float = 1e-4
    patience: int = 12
    augment: bool = True
    frozen: bool = True
    seed: int = 0
    device: str = "cpu"


def augment_crops(crops, generator):
    """Mirror, shift by up to 1/16 of the side, jitter brightness/contrast: uint8 -> float 0..255."""
    import torch

    x = crops.float()
    batch, side = x.shape[0], x.shape[-2]
    flip = torch.rand(batch, generator=generator) < 0.5
    x[flip] = x[flip].flip(-2)  # (B, K, S, S, 3): dim -2 is the width
    shift = max(1, side // 16)
    dy, dx = (int(v) for v in torch.randint(-shift, shift + 1, (2,), generator=generator))
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    gain = 1 + 0.2 * (torch.rand(batch, 1, 1, 1, 1, generator=generator) - 0.5) * 2
    bias = 20 * (torch.rand(batch, 1, 1, 1, 1, generator=generator) - 0.5) * 2
    mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)
    return ((x - mean) * gain + mean + bias).clamp(0, 255)


def _batch_inputs(model, data: dict, index, *, train: bool, settings: FitSettings, generator):
    """Logits for the clips in ``index`` (a LongTensor); ``data`` stays on the CPU, batches move."""
    import torch

    if settings.frozen:
        features = data["features"][index]
        if train and settings.augment:
            mirror = torch.rand(len(index), generator=generator) < 0.5
            features = torch.where(mirror[:, None, None], data["mirrored"][index], features)
            k = features.shape[1]
            keep = max(1, k // 2) + int(torch.randint(0, k - max(1, k // 2) + 1, (1,), generator=generator))
            frames = torch.randperm(k, generator=generator)[:keep].sort().values
            features = features[:, frames]
        return model.classify_features(features.to(settings.device))[0]
    crops = data["crops"][index]
    if train and settings.augment:
        crops = augment_crops(crops, generator)
    return model(crops.to(settings.device))


def predict_proba(model, data: dict, index: np.ndarray, *, settings: FitSettings, batch_size: int = 128,
                  accelerator=None) -> np.ndarray:
    """Probabilities of the clips ``index``; with a launched ``accelerator`` sharded over the processes and
    gathered (every clip exactly once)."""
    import torch

    model.eval()
    if accelerator is not None and accelerator.num_processes > 1 and len(index):
        from mer_utils.experts.distributed import gather_predictions

        index_t = torch.as_tensor(index)
        with torch.no_grad():
            return gather_predictions(accelerator, len(index), lambda i: _batch_inputs(
                model, data, index_t[i.cpu()], train=False, settings=settings, generator=None).softmax(dim=1),
                batch_size=batch_size)
    out = []
    with torch.no_grad():
        for start in range(0, len(index), batch_size):
            batch = torch.as_tensor(index[start: start + batch_size])
            out.append(_batch_inputs(model, data, batch, train=False, settings=settings, generator=None)
                       .softmax(dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(model.spec.labels)))


def _ua(y_true: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y_true, proba.argmax(axis=1)))


def _train_mode(model, settings: FitSettings) -> None:
    from mer_utils.experts.visual.models import set_encoder_trainable

    model.train()
    set_encoder_trainable(model, not settings.frozen)


def _optimizer(model, settings: FitSettings):
    import torch

    groups = [{"params": [p for n, p in model.named_parameters() if not n.startswith("encoder.")],
               "lr": settings.lr}]
    if not settings.frozen:
        groups.append({"params": list(model.encoder.parameters()), "lr": settings.encoder_lr})
    return torch.optim.AdamW(groups, weight_decay=settings.weight_decay)


def fit_fold(model, data: dict, y: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray, *,
             settings: FitSettings, fold: int, state_path: str | os.PathLike | None = None,
             progress: bool = True) -> tuple[dict, list[dict]]:
    """Train until validation UA stops improving; returns the best state dict and the history.

    ``data`` holds tensors indexed by clip: ``features`` and ``mirrored``
    (frozen) or ``crops`` (fine-tuning). With ``state_path`` the loop saves
    its state after every epoch and resumes from it when it exists.
    """
    import contextlib

    from mer_utils.experts.torch_threads import one_torch_thread

    # A small head on precomputed features: extra threads only add synchronisation.
    with one_torch_thread() if settings.frozen else contextlib.nullcontext():
        return _fit(model, data, y, train_idx, val_idx, settings=settings, fold=fold, state_path=state_path,
                    progress=progress)


def _fit(model, data, y, train_idx, val_idx, *, settings, fold, state_path, progress):
    import torch
    from tqdm.auto import tqdm

    from mer_utils.experts import distributed

    # Fine-tuning goes through Accelerate (DDP when launched); the frozen regime trains a small head on
    # cached features, which costs seconds: every process runs it whole, as one process would.
    acc = None if settings.frozen else distributed.make_accelerator(device=settings.device, amp=False,
                                                                    find_unused_parameters=True)
    device = acc.device if acc is not None else settings.device
    settings = dataclasses.replace(settings, device=str(device))
    model.to(device)
    y_t = torch.as_tensor(y).to(device)
    weights = torch.as_tensor(class_weights(y[train_idx], model.spec.labels, allow_absent=True), dtype=torch.float32, device=device)
    criterion = torch.nn.CrossEntropyLoss(weight=weights)
    optimizer = _optimizer(model, settings)
    state = {"epoch": 0, "best_ua": -1.0, "best_loss": float("inf"), "bad_epochs": 0, "history": [],
             "best_model": {k: v.clone() for k, v in model.state_dict().items()}}
    state_path = Path(state_path) if state_path else None
    saved = _load_state(state_path, device) if state_path else None
    if saved is not None:
        model.load_state_dict(saved.pop("model"))
        optimizer.load_state_dict(saved.pop("optimizer"))
        state.update(saved)
    core, rank = model, distributed.process_index() if acc is not None else 0
    if acc is not None:
        _train_mode(model, settings)  # the encoder's parameters train: DDP must see them at wrap time
        model, optimizer = acc.prepare(model, optimizer)
    main = acc is None or acc.is_main_process
    bar = tqdm(total=settings.epochs, initial=state["epoch"], desc=f"fold {fold}", unit="epoch",
               disable=not (progress and main))
    while state["epoch"] < settings.epochs and state["bad_epochs"] < settings.patience:
        epoch_seed = settings.seed * 100_003 + fold * 1_009 + state["epoch"]
        generator = torch.Generator().manual_seed(epoch_seed)
        _train_mode(core, settings)
        order = torch.as_tensor(train_idx)[torch.randperm(len(train_idx), generator=generator)]
        batches = [order[start: start + settings.batch_size] for start in range(0, len(order), settings.batch_size)]
        if acc is not None and acc.num_processes > 1:
            # Every process takes its share of the epoch's batches (the same order everywhere), with its own
            # augmentation stream; the short tail is padded from the start so all step together.
            generator = torch.Generator().manual_seed(epoch_seed + 7_919 * rank)
            n = acc.num_processes
            batches = (batches + batches[:(-len(batches)) % n])[rank::n]
        losses = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(epoch_seed + 7_919 * rank)  # dropout draws from the global generator
            for batch in batches:
                loss = criterion(_batch_inputs(model, data, batch, train=True, settings=settings,
                                               generator=generator), y_t[batch.to(device)])
                optimizer.zero_grad()
                acc.backward(loss) if acc is not None else loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
        if acc is not None:
            losses = [x for part in distributed.gather_objects([losses]) for x in part]
        proba = predict_proba(core, data, val_idx, settings=settings, accelerator=acc)
        val_ua = _ua(y[val_idx], proba)
        log_proba = torch.log(torch.as_tensor(proba, dtype=torch.float32, device=device).clamp_min(1e-8))
        val_loss = float(criterion(log_proba, y_t[torch.as_tensor(val_idx, device=device)]))
        improved = val_ua > state["best_ua"] or (val_ua == state["best_ua"] and val_loss < state["best_loss"])
        if improved:
            state.update(best_ua=val_ua, best_loss=val_loss, bad_epochs=0,
                         best_model={k: v.detach().clone() for k, v in core.state_dict().items()})
        else:
            state["bad_epochs"] += 1
        state["epoch"] += 1
        state["history"].append({"fold": fold, "epoch": state["epoch"], "train_loss": float(np.mean(losses)),
                                 "val_loss": val_loss, "val_ua": val_ua})
        if state_path and main:
            _save_state(state_path, core, optimizer, state)
        if acc is not None:
            acc.wait_for_everyone()
        bar.update(1)
        bar.set_postfix(val_ua=f"{val_ua:.3f}", best=f"{state['best_ua']:.3f}")
    bar.close()
    return state["best_model"], state["history"]


def _load_state(path: Path, device):
    """The saved epoch state, or None; an unreadable file is set aside and the fold restarts."""
    import torch

    from mer_utils.experts import distributed

    if not path.exists():
        return None
    try:
        return torch.load(path, weights_only=True, map_location=device)
    except Exception as err:  # truncated by a kill or a full disk: never block the run
        if distributed.is_main_process():
            distributed.set_aside_corrupt(path, err)
        distributed.wait_for_everyone()
        return None


def _save_state(path: Path, model, optimizer, state: dict) -> None:
    import torch

    from mer_utils.core.atomic_io import atomic_path

    with atomic_path(path) as tmp:
        torch.save({**state, "model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp)
