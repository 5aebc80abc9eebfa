"""``frozen`` mode: per-layer embeddings cached once, then a probe selected on validation UA: ``logreg`` (best
(layer, C) of a standardised logistic regression) or ``weighted`` (a learnable layer mix and head, Adam). Either
is written into an ``SSLClassifier`` head, so the checkpoint runs on raw audio like a fine-tuned one."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mer_utils.core.labels import class_weights
from mer_utils.core.metrics import ua_score
from mer_utils.experts import distributed
from mer_utils.experts.audio.checkpoint import save_fitted_ssl
from mer_utils.experts.audio.features import FeatureCache, assemble, clip_keys, namespace
from mer_utils.experts.audio.loading import AudioLoadError, AudioSettings, ClipSet, load_waveform
from mer_utils.experts.audio.ssl_model import HeadConfig, SSLClassifier, build_classifier

FROZEN_VERSION = 1


def weights_fingerprint(module: nn.Module) -> str:
    """A cheap digest of every weight: a cache never outlives its model (a folder can be overwritten)."""
    digest = hashlib.sha256()
    for key, tensor in module.state_dict().items():  # detached tensors
        t = tensor.double()
        digest.update(f"{key}{tuple(t.shape)}{float(t.sum()):.10e}{float(t.abs().sum()):.10e}".encode())
    return digest.hexdigest()[:16]


def layer_embeddings_for_files(
    model: SSLClassifier, paths: list, *, model_name: str, settings: AudioSettings,
    cache_dir: str | os.PathLike | None, device: str = "cpu", chunk_size: int = 128, progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """``(n, layers, width)`` embeddings, the decoded-clip mask and the skipped clips; under N processes every
    process returns what one process would, and only the main one writes the cache."""
    keys = clip_keys(paths)
    name = namespace(f"ssl-{model_name}", {**settings.to_dict(), "version": FROZEN_VERSION,
                                           "weights": weights_fingerprint(model.backbone)})
    cache = FeatureCache(cache_dir, name) if cache_dir else None
    found = cache.get(keys) if cache is not None else {}
    todo = distributed.broadcast([i for i, k in enumerate(keys) if k not in found])  # one list for all processes
    errors = {}
    model.to(device).eval()
    # Under N processes each extracts every N-th missing clip of a chunk; the chunk is gathered on every
    # process and the main one appends it to the cache as one shard (a disconnect keeps finished chunks).
    world, rank = distributed.world_size(), distributed.process_index()
    bar = tqdm(total=len(todo), desc="layer embeddings", disable=not progress or rank != 0, leave=False)
    for start in range(0, len(todo), chunk_size * world):
        chunk = todo[start:start + chunk_size * world]
        mine, mine_errors = {}, {}
        for i in chunk[rank::world]:
            try:
                wave = load_waveform(paths[i], settings=settings)
            except (AudioLoadError, ValueError) as err:
                mine_errors[i] = str(err)
                continue
            batch = model.prepare([wave], device)
            mine[keys[i]] = model.layer_embeddings(batch["inputs"], batch["n_samples"])[0].float().cpu().numpy()
        fresh = {}
        for part, part_errors in distributed.gather_objects([(mine, mine_errors)]):
            fresh.update(part)
            errors.update(part_errors)
        if cache is not None and distributed.is_main_process():
            cache.put(fresh)
        found.update(fresh)
        bar.update(len(chunk))
    bar.close()
    if todo and cache is not None:
        distributed.wait_for_everyone()  # the shards are on disk before any process reads the cache again
    return assemble(paths, keys, found, errors)


def probe_logits(model: SSLClassifier, embeddings: np.ndarray) -> torch.Tensor:
    """The head of ``model`` applied to cached ``(n, layers, width)`` embeddings."""
    stacked = torch.as_tensor(embeddings, dtype=torch.float32).permute(1, 0, 2)
    return model.classify(model.mix(stacked))


def fit_logreg_probe(E_train, y_train, E_val, y_val, *, c_grid=(0.01, 0.1, 1.0), seed=0) -> dict:
    """Best (layer, C) by validation UA; returns the arrays of the chosen model."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    best, scores = None, {}
    for layer in range(E_train.shape[1]):
        scaler = StandardScaler().fit(E_train[:, layer])
        scaler.scale_[scaler.scale_ == 0] = 1.0
        z_train, z_val = scaler.transform(E_train[:, layer]), scaler.transform(E_val[:, layer])
        for c in c_grid:
            clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)
            ua = ua_score(y_val, clf.fit(z_train, y_train).predict(z_val))
            scores[f"layer{layer}_C{c}"] = ua
            if best is None or ua > best["val_ua"]:
                best = {"layer": layer, "C": c, "val_ua": ua, "mean": scaler.mean_, "std": scaler.scale_,
                        "coef": clf.coef_, "intercept": clf.intercept_}
    best["val_ua_grid"] = scores
    return best


def fit_weighted_probe(model: SSLClassifier, E_train, y_train, E_val, y_val, *, epochs: int = 300,
                       lr: float = 1e-3, seed: int = 0) -> dict:
    """Train layer weights + classifier of ``model`` on cached embeddings (full batch)."""
    torch.manual_seed(seed)
    uniform = E_train.mean(axis=1)  # standardise with statistics of the initial (uniform) mix
    model.feat_mean.copy_(torch.as_tensor(uniform.mean(0)))
    model.feat_std.copy_(torch.as_tensor(uniform.std(0) + 1e-5))
    optimizer = torch.optim.Adam([model.layer_logits, *model.classifier.parameters()], lr=lr, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(class_weights(y_train, model.labels), dtype=torch.float32))
    y = torch.as_tensor(y_train)
    best = {"val_ua": -1.0}
    for epoch in range(1, epochs + 1):
        model.train()
        optimizer.zero_grad()
        loss_fn(probe_logits(model, E_train), y).backward()
        optimizer.step()
        if epoch % 10 == 0 or epoch == epochs:
            model.eval()
            with torch.no_grad():
                ua = ua_score(y_val, probe_logits(model, E_val).argmax(1).numpy())
            if ua > best["val_ua"]:
                best = {"val_ua": ua, "epoch": epoch,
                        "state": {k: v.detach().clone() for k, v in model.state_dict().items()
                                  if not k.startswith("backbone.")}}
    model.load_state_dict(best.pop("state"), strict=False)
    best["layer_weights"] = torch.softmax(model.layer_logits, 0).tolist()
    return best


@dataclasses.dataclass
class FrozenBackbone:
    """``frozen`` mode: cached layer embeddings + a probe selected on validation."""

    model_name: str
    probe: str = "logreg"  # "logreg" (best single layer) or "weighted" (learnable layer sum)
    probe_hidden: int = 0  # weighted probe only: hidden units of an MLP head (0: linear)
    settings: AudioSettings = AudioSettings()
    cache_dir: str | os.PathLike | None = None
    device: str | None = None
    seed: int = 0
    progress: bool = True
    labels: tuple = ()  # the corpus's label set (the classifier's outputs)
    model: SSLClassifier | None = None  # the fitted probe on the backbone (what is saved)
    base: SSLClassifier | None = dataclasses.field(default=None, repr=False)  # the backbone that embeds
    skipped: dict = dataclasses.field(default_factory=dict)
    report: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.probe not in ("logreg", "weighted"):
            raise ValueError(f"probe must be 'logreg' or 'weighted', got {self.probe!r}")

    def embeddings(self, clips: ClipSet) -> tuple[np.ndarray, np.ndarray]:
        E, ok, skipped = layer_embeddings_for_files(
            self.base, [str(p) for p in clips.paths], model_name=self.model_name, settings=self.settings,
            cache_dir=self.cache_dir, device=distributed.pick_device(self.device), progress=self.progress)
        self.skipped.update({item["path"]: item["reason"] for item in skipped})
        return E, ok

    def fit(self, train: ClipSet, val: ClipSet, *, work_dir: Path | None = None) -> dict:
        torch.manual_seed(self.seed)
        self.labels = train.label_set
        self.base = build_classifier(self.model_name, labels=self.labels, head=HeadConfig(dropout=0.0))
        E_train, ok_train = self.embeddings(train)
        E_val, ok_val = self.embeddings(val)
        args = (E_train[ok_train], train.label_indices()[ok_train], E_val[ok_val], val.label_indices()[ok_val])
        if self.probe == "logreg":
            best = fit_logreg_probe(*args, seed=self.seed)
            model = SSLClassifier(self.base.backbone, self.base.feature_extractor, labels=self.labels,
                                  head=HeadConfig(layer=best["layer"], dropout=0.0))
            with torch.no_grad():
                model.feat_mean.copy_(torch.as_tensor(best.pop("mean")))
                model.feat_std.copy_(torch.as_tensor(best.pop("std")))
                model.classifier[-1].weight.copy_(torch.as_tensor(best.pop("coef")))
                model.classifier[-1].bias.copy_(torch.as_tensor(best.pop("intercept")))
        else:
            model = SSLClassifier(self.base.backbone, self.base.feature_extractor, labels=self.labels,
                                  head=HeadConfig(hidden=self.probe_hidden, dropout=0.1 if self.probe_hidden else 0.0))
            best = fit_weighted_probe(model, *args, seed=self.seed)
        self.model = model.eval()
        self.report = {"model_name": self.model_name, "mode": "frozen", "probe": self.probe, "selected_on": "val",
                       **best}
        return self.report

    def predict_proba(self, clips: ClipSet) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("call fit() before predict_proba()")
        E, ok = self.embeddings(clips)
        proba = np.full((len(clips), len(self.labels)), np.nan)
        with torch.no_grad():
            proba[ok] = torch.softmax(probe_logits(self.model, E[ok]), dim=-1).numpy()
        return proba

    def save(self, path: str | os.PathLike) -> Path:
        return save_fitted_ssl(self, path)
