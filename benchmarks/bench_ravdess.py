"""Speaker-independent SER on ravdess-dev: every offline recipe tried, side by side.

Three actor-disjoint protocols, validation actors always carved from the
training actors (the test actors are never used for a choice):

- ``A->B``: train on actors 01-06 (2 of them, one per sex, for validation), test on 07-12;
- ``B->A``: the reverse;
- ``5-fold``: actor-grouped 5-fold (``speaker-kfold``, 2 validation actors per fold).

Each recipe gets its UA / WA / macro-F1 per protocol (5-fold: mean ± std over
folds), the mean ± std of UA over the three protocols, and its run time.
Speaker statistics are transductive (every clip of a speaker, labels unused),
as in ``mer audio train``; ``--single-clip`` adds rows where each test clip is
scored alone (the demo). ``--timing`` measures feature extraction per clip.

    python benchmarks/bench_ravdess.py --data-root ../shared/data/ravdess-dev [--quick] [--single-clip] [--out DIR]

Features are extracted once into ``--cache-dir`` and reused. ``--out`` also writes every row as
``ravdess_recipes.csv`` and a figure of them, ``ravdess_recipes.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from mer_utils.experts.audio.features import features_for_files
from mer_utils.experts.audio.variants import (DEFAULT_RECIPE, FALLBACK_RECIPE, FOUR_MODEL_RECIPE, FUNCTIONALS_RECIPE,
                                              SVC_C_GRID, Recipe, cross_validate, half_transfer_split,
                                              without_speaker_statistics)
from mer_utils.core.metrics import format_mean_std
from mer_utils.data.manifest import build_manifest, corpus_info
from mer_utils.protocols.splits import make_split

EL = ("egemaps", "librosa")
PREVIOUS = Recipe(feature_sets=EL, speaker_norm="meanstd")  # the default before issue 14
BASELINES = [
    Recipe(feature_sets=("egemaps",)),  # textbook eGeMAPS + LR
    Recipe(feature_sets=("egemaps",), speaker_norm="meanstd"),
    Recipe(feature_sets=("librosa",), speaker_norm="meanstd"),
    PREVIOUS,
    Recipe(feature_sets=EL, speaker_norm="meanstd", classifier="svc", c_grid=SVC_C_GRID),
    Recipe(feature_sets=("compare",), speaker_norm="meanstd"),
]
CANDIDATES = [
    Recipe(feature_sets=EL, speaker_norm="meanstd", refit=True),
    Recipe(feature_sets=("compare",), speaker_norm="meanstd", refit=True),
    Recipe(feature_sets=("compare",) + EL, speaker_norm="meanstd", refit=True),
    Recipe(feature_sets=("egemaps+librosa", "compare"), combine="average", speaker_norm="meanstd", refit=True),
    Recipe(feature_sets=("egemaps", "librosa", "compare"), combine="average", speaker_norm="meanstd"),
    Recipe(feature_sets=("egemaps", "librosa", "compare"), combine="average", speaker_norm="meanstd", refit=True),
    Recipe(feature_sets=("egemaps", "librosa", "compare"), combine="average", speaker_norm="meanstd", refit=True,
           balance=True),
    Recipe(feature_sets=EL, speaker_norm="meanstd", refit=True, classifier="linsvm"),
    Recipe(feature_sets=("egemaps", "librosa", "compare"), combine="average", speaker_norm="meanstd", refit=True,
           pca=64),
    Recipe(feature_sets=("egemaps", "librosa", "compare"), combine="average", speaker_norm="meanstd", refit=True,
           augment=("speed0.9", "speed1.1")),
    Recipe(feature_sets=("egemaps", "librosa", "compare"), combine="average", speaker_norm="meanstd", refit=True,
           augment=("noise20",)),
    Recipe(feature_sets=("egemaps", "librosa", "compare"), combine="average", speaker_norm="meanstd", refit=True,
           augment=("speed0.9", "speed1.1", "noise20")),
    # per-speaker rank (normal-score) normalisation instead of z-scores
    Recipe(feature_sets=("egemaps", "librosa", "compare"), combine="average", speaker_norm="rank", refit=True),
    # the three models joined by a geometric instead of an arithmetic mean
    Recipe(feature_sets=("egemaps", "librosa", "compare"), combine="geomean", speaker_norm="meanstd", refit=True),
    # third round: the pretrained GE2E speaker encoder (Resemblyzer), alone and as a fourth model
    Recipe(feature_sets=("ge2e",), speaker_norm="meanstd", refit=True),
    Recipe(feature_sets=("ge2e",), speaker_norm="mean", refit=True),
    Recipe(feature_sets=("compare", "ge2e"), combine="average", speaker_norm="meanstd", refit=True),
    # permissive licences only (ISC librosa, Apache-2.0 Resemblyzer): the choice for commercial use
    Recipe(feature_sets=("librosa", "ge2e"), combine="average", speaker_norm="meanstd", refit=True),
    FOUR_MODEL_RECIPE,  # avg(egemaps,librosa,compare,ge2e): the third round's default
    Recipe(feature_sets=("egemaps", "librosa", "compare", "ge2e"), combine="geomean", speaker_norm="meanstd",
           refit=True),
    # fourth round: per-speaker prior matching and speaker x sentence normalisation
    Recipe(feature_sets=("ge2e",), speaker_norm="meanstd", refit=True, balance=True),
    Recipe(feature_sets=("ge2e",), speaker_norm="meanstd", sentence_norm=True, refit=True),
    DEFAULT_RECIPE,  # ge2e, speaker x sentence normalisation, prior matching
    Recipe(feature_sets=("egemaps", "librosa", "compare", "ge2e"), combine="average", speaker_norm="meanstd",
           sentence_norm=True, refit=True, balance=True),
    dataclasses.replace(FOUR_MODEL_RECIPE, balance=True),
]
# Single-clip candidates: a model that never saw speaker statistics, for speakers below min_clips.
SINGLE_CLIP = [
    FALLBACK_RECIPE,  # ge2e logreg refit: the default without speaker statistics
    without_speaker_statistics(FOUR_MODEL_RECIPE),  # the third round's fallback
    dataclasses.replace(FUNCTIONALS_RECIPE, speaker_norm=None),  # the second round's
    Recipe(feature_sets=("librosa", "ge2e"), combine="average", refit=True),
    Recipe(feature_sets=EL, refit=True),
    Recipe(feature_sets=("egemaps", "librosa", "compare"), combine="geomean", refit=True),
    # speed perturbation varies the vocal tract as new speakers would: for a model without speaker statistics
    Recipe(feature_sets=("egemaps", "librosa", "compare"), combine="average", refit=True,
           augment=("speed0.9", "speed1.1")),
]


def protocols(manifest, val_size: float) -> dict:
    actors = sorted(manifest["actor_id"].unique())
    half = len(actors) // 2
    first, second = actors[:half], actors[half:]
    return {
        "A->B": half_transfer_split(manifest, first, n_val=2, name="half-transfer-A"),
        "B->A": half_transfer_split(manifest, second, n_val=2, name="half-transfer-B"),
        "5-fold": make_split(manifest, protocol="speaker-kfold", n_folds=5, val_size=val_size),
    }


def _cell(summary: dict, key: str) -> str:
    s = summary[key]
    return format_mean_std(s["mean"], s["std"]) if s.get("std") else f"{100 * s['mean']:.1f}"


def evaluate(recipe: Recipe, features, manifest, splits, *, augmented=None, transductive=True, label=None) -> dict:
    start, uas, cells = time.perf_counter(), [], []
    augmented = {a: augmented[a] for a in recipe.augment} if recipe.augment else None
    for name, split in splits.items():
        summary = cross_validate(recipe, features=features, manifest=manifest, split=split,
                                 labels=corpus_info(manifest).labels, transductive=transductive,
                                 augmented=augmented)["summary"]
        uas.append(summary["ua"]["mean"])
        cells.append(f"{_cell(summary, 'ua')} / {_cell(summary, 'wa')} / {_cell(summary, 'macro_f1')}")
    seconds = time.perf_counter() - start
    mean, std = float(np.mean(uas)), float(np.std(uas, ddof=1))
    print(f"| {label or recipe.name} | " + " | ".join(cells) + f" | **{format_mean_std(mean, std)}** | {seconds:.0f} s |",
          flush=True)
    return {"recipe": (label or recipe.name).replace("**", ""), **{f"ua_{name}": ua for name, ua in zip(splits, uas)},
            "ua_mean": mean, "ua_std": std, "seconds": round(seconds, 1)}


def save_rows(rows: list[dict], out: Path) -> None:
    """``ravdess_recipes.csv`` and a figure: UA per protocol, one row of bars per recipe."""
    import pandas as pd

    from mer_utils.core.atomic_io import write_csv
    from mer_utils.report.figures import save_figure
    from matplotlib.figure import Figure

    frame = pd.DataFrame(rows)
    write_csv(out / "ravdess_recipes.csv", frame)
    protocols = [c for c in frame.columns if c.startswith("ua_") and c not in ("ua_mean", "ua_std")]
    fig = Figure(figsize=(10, 0.3 * len(frame) + 1.2), dpi=100)
    ax = fig.subplots()
    y = np.arange(len(frame))[::-1]
    height = 0.8 / len(protocols)
    for k, column in enumerate(protocols):
        ax.barh(y + (len(protocols) / 2 - k - 0.5) * height, 100 * frame[column], height, label=column[3:])
    ax.axvline(75, color="grey", linestyle="--", linewidth=0.8)
    names = [name.replace(" logreg", "").replace("speakernorm-", "sn-") for name in frame["recipe"]]
    ax.set_yticks(y, names, fontsize=7)
    for tick, name in zip(ax.get_yticklabels(), frame["recipe"]):
        if "(default)" in name:
            tick.set_fontweight("bold")
    ax.set_ylim(-0.6, len(frame) - 0.4)
    ax.set_xlim(0, 100)
    ax.set_xlabel("test UA (%) on ravdess-dev, actor-disjoint; dashed line: 75 %", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, out / "ravdess_recipes.png")
    print(f"rows: {out / 'ravdess_recipes.csv'}, figure: {out / 'ravdess_recipes.png'}")


def timing(paths, sets, n_jobs: int, cache_dir: str) -> None:
    """Wall time of a cold extraction (fresh cache folder) of ``paths`` per feature set."""
    import shutil
    import tempfile

    from mer_utils.experts.audio.loading import load_waveform

    seconds = sum(len(load_waveform(p)) for p in paths) / 16_000
    print(f"\nfeature extraction, {len(paths)} clips ({seconds / len(paths):.2f} s of speech each), n_jobs={n_jobs}:")
    total = 0.0
    for name in sets:
        tmp = tempfile.mkdtemp(dir=cache_dir)
        start = time.perf_counter()
        features_for_files(paths, feature_set=name, cache_dir=tmp, n_jobs=n_jobs, progress=False)
        per_clip = (time.perf_counter() - start) / len(paths)
        shutil.rmtree(tmp)
        total += per_clip
        print(f"  {name}: {1000 * per_clip:.1f} ms/clip -> {7442 * per_clip / 60:.1f} min for 7,442 clips")
    print(f"  all: {1000 * total:.1f} ms/clip -> {7442 * total / 60:.1f} min for 7,442 clips")
    cpu_timing(paths[:100], sets)


def cpu_timing(paths, sets) -> None:
    """CPU seconds per clip (decoding included) in this process: unlike wall time, not inflated by
    other jobs on shared cores; ``n`` free cores with ``n`` workers take about CPU / n."""
    from mer_utils.experts.audio.features import extract_features
    from mer_utils.experts.audio.loading import load_waveform

    for name in sets:  # warm-up: imports and openSMILE configuration are paid once per worker
        extract_features(load_waveform(paths[0]), name)
    print(f"CPU time in one process, {len(paths)} clips:")
    total = 0.0
    for name in sets:
        start = time.process_time()
        for path in paths:
            extract_features(load_waveform(path), name)
        per_clip = (time.process_time() - start) / len(paths)
        total += per_clip
        print(f"  {name}: {1000 * per_clip:.1f} ms CPU/clip")
    print(f"  all: {1000 * total:.1f} ms CPU/clip -> {7442 * total / 2 / 60:.1f} min for 7,442 clips on 2 free cores")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess-dev"
    parser.add_argument("--data-root", default=str(default_root), help="folder with RAVDESS Actor_XX/ folders")
    parser.add_argument("--cache-dir", default="outputs/cache/audio_features")
    parser.add_argument("--val-size", type=float, default=0.2, help="5-fold: fraction of actors for validation")
    parser.add_argument("--n-jobs", type=int, default=2, help="feature extraction workers")
    parser.add_argument("--quick", action="store_true", help="only the previous default and the current one")
    parser.add_argument("--exclude", default=None, help="leave out recipes whose name contains this text")
    parser.add_argument("--only", default=None,
                        help="only recipes whose name contains this text (single-clip rows: name + ' (single clip)')")
    parser.add_argument("--single-clip", action="store_true", help="add single-clip (no speaker statistics) rows")
    parser.add_argument("--out", default=None, help="folder for ravdess_recipes.csv and ravdess_recipes.png")
    parser.add_argument("--cremad-structure", action="store_true",
                        help="normal-intensity clips only, grouped by statement and repetition: one clip per "
                             "emotion per group, as CREMA-D's actor x sentence groups")
    parser.add_argument("--timing", nargs="*", metavar="WAV", default=None,
                        help="time a cold feature extraction of these files (default: 60 ravdess-dev clips)")
    args = parser.parse_args(argv)

    manifest = build_manifest(args.data_root, dataset="ravdess", progress=False).manifest
    if args.cremad_structure:
        # Neutral has no strong version, so the normal-intensity clips of one statement and repetition hold
        # one clip of each emotion. The grouping uses recording metadata only; intensity selects the subset
        # for every class alike and is never a group key (a strong-only group would lack neutral: a leak).
        manifest = manifest[manifest["intensity"] == "normal"].reset_index(drop=True)
        manifest["sentence"] = manifest["sentence"].astype(str) + "-rep" + manifest["repetition"].astype(str)
    paths = [Path(args.data_root) / p for p in manifest["audio_path"]]
    recipes = [FOUR_MODEL_RECIPE, DEFAULT_RECIPE] if args.quick else BASELINES + CANDIDATES
    if args.only:
        recipes = [r for r in recipes if args.only in r.name]
    if args.exclude:
        recipes = [r for r in recipes if args.exclude not in r.name]
    needed = sorted({s for r in recipes + SINGLE_CLIP for s in r.base_feature_sets})
    features, augmented = {}, {}

    def extract(name, augment=None):
        X, ok, skipped = features_for_files(paths, feature_set=name, cache_dir=args.cache_dir, n_jobs=args.n_jobs,
                                            progress=False, augment=augment)
        if skipped:
            raise SystemExit(f"{len(skipped)} clips could not be decoded, e.g. {skipped[0]}")
        return X

    features = {name: extract(name) for name in needed}
    for recipe in recipes:
        for augment in recipe.augment:
            augmented.setdefault(augment, {name: extract(name, augment) for name in needed})
    splits = protocols(manifest, args.val_size)
    print(f"ravdess-dev: {len(manifest)} clips, {manifest['actor_id'].nunique()} actors; protocols "
          + ", ".join(f"{k} ({v['split'].iloc[0]})" for k, v in splits.items()) + "\n")
    print("| recipe | A->B UA / WA / F1 | B->A UA / WA / F1 | 5-fold UA / WA / F1 | UA over protocols | time |\n"
          "|---|---|---|---|---|---|")
    seen, rows = set(), []
    for recipe in recipes:
        if recipe in seen:
            continue
        seen.add(recipe)
        rows.append(evaluate(recipe, features, manifest, splits, augmented=augmented,
                             label=recipe.name + (" **(default)**" if recipe == DEFAULT_RECIPE else "")))
    if args.single_clip:
        single = list(dict.fromkeys([DEFAULT_RECIPE, FOUR_MODEL_RECIPE] + SINGLE_CLIP))
        single = [r for r in single if (not args.only or args.only in f"{r.name} (single clip)")
                  and (not args.exclude or args.exclude not in f"{r.name} (single clip)")]
        for recipe in single:
            for augment in recipe.augment:
                augmented.setdefault(augment, {name: extract(name, augment) for name in needed})
            rows.append(evaluate(recipe, features, manifest, splits, transductive=False, augmented=augmented,
                                 label=f"{recipe.name} (single clip)"))
    if args.out and rows:
        save_rows(rows, Path(args.out))
    if args.timing is not None:
        timing([Path(p) for p in args.timing] or paths[::9][:60], DEFAULT_RECIPE.base_feature_sets, args.n_jobs,
               args.cache_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
