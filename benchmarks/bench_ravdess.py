"""Speaker-independent SER on ravdess-dev: every offline recipe tried, side by side.

Actor-grouped 5-fold cross-validation (``speaker-kfold``, validation actors
carved from each fold's training actors; the test actors are never used for
a choice), plus a clip-level random split for contrast. Prints UA / WA /
macro-F1 as mean ± std over folds (random: over seeds) and the run time.

    python benchmarks/bench_ravdess.py --data-root ../shared/data/ravdess-dev [--with-compare]

Features are extracted once into ``--cache-dir`` and reused.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mer_utils.experts.audio.features import features_for_files
from mer_utils.experts.audio.variants import SVC_C_GRID, Recipe, cross_validate
from mer_utils.core.metrics import aggregate_scores, format_mean_std
from mer_utils.data.ravdess import build_ravdess_manifest
from mer_utils.protocols.splits import make_split

WINNER = Recipe(feature_sets=("egemaps", "librosa"), speaker_norm="meanstd")
SPEAKER_VARIANTS = [
    Recipe(feature_sets=("egemaps",)),  # the backbone's previous default
    Recipe(feature_sets=("librosa",)),
    Recipe(feature_sets=("egemaps", "librosa")),
    Recipe(feature_sets=("egemaps",), speaker_norm="mean"),
    Recipe(feature_sets=("egemaps",), speaker_norm="meanstd"),
    Recipe(feature_sets=("librosa",), speaker_norm="meanstd"),
    Recipe(feature_sets=("egemaps", "librosa"), speaker_norm="meanstd", classifier="svc", c_grid=SVC_C_GRID),
    Recipe(feature_sets=("egemaps", "librosa"), combine="average", speaker_norm="meanstd"),
    WINNER,
    Recipe(feature_sets=("egemaps", "librosa"), speaker_norm="meanstd", refit=True),
]
COMPARE_VARIANTS = [
    Recipe(feature_sets=("compare",)),
    Recipe(feature_sets=("compare",), speaker_norm="meanstd", classifier="svc", c_grid=SVC_C_GRID),
    Recipe(feature_sets=("egemaps", "librosa", "compare"), combine="average", speaker_norm="meanstd"),
]


def _row(name: str, protocol: str, summary: dict, seconds: float) -> str:
    cells = [format_mean_std(summary[k]["mean"], summary[k]["std"]) for k in ("ua", "wa", "macro_f1")]
    return f"| {name} | {protocol} | " + " | ".join(cells) + f" | {seconds:.0f} s |"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess-dev"
    parser.add_argument("--data-root", default=str(default_root), help="folder with RAVDESS Actor_XX/ folders")
    parser.add_argument("--cache-dir", default="outputs/cache/audio_features")
    parser.add_argument("--val-size", type=float, default=0.2, help="fraction of actors for validation (2 of 12)")
    parser.add_argument("--with-compare", action="store_true", help="add ComParE 2016 recipes (slow: 6,373 features)")
    parser.add_argument("--random-seeds", type=int, default=3)
    args = parser.parse_args(argv)

    manifest = build_ravdess_manifest(args.data_root, progress=False).manifest
    paths = [Path(args.data_root) / p for p in manifest["audio_path"]]
    sets = ("egemaps", "librosa") + (("compare",) if args.with_compare else ())
    features = {}
    for name in sets:
        X, ok, skipped = features_for_files(paths, feature_set=name, cache_dir=args.cache_dir)
        if skipped:
            raise SystemExit(f"{len(skipped)} clips could not be decoded, e.g. {skipped[0]}")
        features[name] = X
    kfold = make_split(manifest, protocol="speaker-kfold", n_folds=5, val_size=args.val_size)
    print(f"ravdess-dev: {len(manifest)} clips, {manifest['actor_id'].nunique()} actors; "
          f"{kfold['split'].iloc[0]} (val_size={args.val_size})\n")
    print("| recipe | protocol | UA | WA | macro-F1 | time |\n|---|---|---|---|---|---|")
    variants = SPEAKER_VARIANTS + (COMPARE_VARIANTS if args.with_compare else [])
    for recipe in variants:
        start = time.perf_counter()
        result = cross_validate(recipe, features=features, manifest=manifest, split=kfold)
        print(_row(recipe.name, "actor 5-fold", result["summary"], time.perf_counter() - start), flush=True)
    start = time.perf_counter()
    result = cross_validate(WINNER, features=features, manifest=manifest, split=kfold, transductive=False)
    print(_row(WINNER.name + " (single-clip fallback at test)", "actor 5-fold", result["summary"],
               time.perf_counter() - start), flush=True)
    for recipe in (SPEAKER_VARIANTS[0], WINNER):
        start, per_seed = time.perf_counter(), []
        for seed in range(args.random_seeds):
            split = make_split(manifest, protocol="random", seed=seed)
            per_seed += cross_validate(recipe, features=features, manifest=manifest, split=split)["per_fold"]
        print(_row(recipe.name, f"random ×{args.random_seeds} seeds", aggregate_scores(per_seed),
                   time.perf_counter() - start), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
