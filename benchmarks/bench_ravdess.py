"""Speaker-independent SER on ravdess-dev: the shipped recipe scored alone and adapted, side by side.

Three actor-disjoint protocols, validation actors always carved from the
training actors (the test actors are never used for a choice):

- ``A->B``: train on actors 01-06 (2 of them, one per sex, for validation), test on 07-12;
- ``B->A``: the reverse;
- ``5-fold``: actor-grouped 5-fold (``speaker-kfold``, 2 validation actors per fold).

Each row gets its UA / WA / macro-F1 per protocol (5-fold: mean ± std over
folds), the mean ± std of UA over the three protocols, and its run time. Rows
are the shipped backbone under each scoring mode of ``mer audio train --adapt``
(``none``: each test clip alone, the default; ``speaker`` and ``balanced``:
test-time adaptation on each test speaker's unlabelled clips), then other
backbones scored alone. ``--timing`` measures feature extraction per clip.

    python benchmarks/bench_ravdess.py --data-root ../shared/data/ravdess-dev [--quick] [--out DIR]

Features are extracted once into ``--cache-dir`` and reused. ``--out`` also writes every row as
``ravdess_recipes.csv`` and a figure of them, ``ravdess_recipes.png``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # recipe_grid.py beside this script

from recipe_grid import cross_validate, half_transfer_split  # noqa: E402

from mer_utils.core.adaptation import ADAPTATIONS, SHORT_NAMES  # noqa: E402
from mer_utils.core.metrics import format_mean_std  # noqa: E402
from mer_utils.data.manifest import build_manifest, corpus_info  # noqa: E402
from mer_utils.experts.audio import DEFAULT_BACKBONE  # noqa: E402
from mer_utils.experts.audio.classical import recipe_for  # noqa: E402
from mer_utils.experts.audio.features import features_for_files  # noqa: E402
from mer_utils.protocols.splits import make_split  # noqa: E402

# (backbone, adaptation): the shipped backbone in every mode first, then others scored alone.
SHIPPED = [(DEFAULT_BACKBONE, mode) for mode in ADAPTATIONS]
OTHERS = [("egemaps", "none"), ("librosa", "none"), ("compare", "none"), ("egemaps,librosa,compare,ge2e", "none")]


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


def evaluate(backbone: str, adapt: str, features, manifest, splits) -> dict:
    recipe = recipe_for(backbone, adapt=adapt)
    label = f"{backbone} | {SHORT_NAMES[adapt]}" + (" **(default)**" if (backbone, adapt) == SHIPPED[0] else "")
    start, uas, cells = time.perf_counter(), [], []
    for name, split in splits.items():
        summary = cross_validate(recipe, features=features, manifest=manifest, split=split,
                                 labels=corpus_info(manifest).labels)["summary"]
        uas.append(summary["ua"]["mean"])
        cells.append(f"{_cell(summary, 'ua')} / {_cell(summary, 'wa')} / {_cell(summary, 'macro_f1')}")
    seconds = time.perf_counter() - start
    mean, std = float(np.mean(uas)), float(np.std(uas, ddof=1))
    print(f"| {label} | " + " | ".join(cells) + f" | **{format_mean_std(mean, std)}** | {seconds:.0f} s |",
          flush=True)
    return {"recipe": label.replace("**", "").replace(" | ", ", "), "adaptation": adapt,
            **{f"ua_{name}": ua for name, ua in zip(splits, uas)},
            "ua_mean": mean, "ua_std": std, "seconds": round(seconds, 1)}


def save_rows(rows: list[dict], out: Path) -> None:
    """``ravdess_recipes.csv`` and a figure: UA per protocol, one row of bars per recipe."""
    import pandas as pd

    from mer_utils.core.atomic_io import write_csv
    from mer_utils.core.atomic_io import save_png
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
    names = list(frame["recipe"])
    ax.set_yticks(y, names, fontsize=7)
    for tick, name in zip(ax.get_yticklabels(), frame["recipe"]):
        if "(default)" in name:
            tick.set_fontweight("bold")
    ax.set_ylim(-0.6, len(frame) - 0.4)
    ax.set_xlim(0, 100)
    ax.set_xlabel("test UA (%) on ravdess-dev, actor-disjoint; dashed line: 75 %", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_png(fig, out / "ravdess_recipes.png")
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
    parser.add_argument("--quick", action="store_true", help="only the shipped backbone (every scoring mode)")
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
    rows_to_run = SHIPPED if args.quick else SHIPPED + OTHERS
    needed = sorted({s for backbone, _ in rows_to_run for s in recipe_for(backbone).base_feature_sets})

    def extract(name):
        X, ok, skipped = features_for_files(paths, feature_set=name, cache_dir=args.cache_dir, n_jobs=args.n_jobs,
                                            progress=False)
        if skipped:
            raise SystemExit(f"{len(skipped)} clips could not be decoded, e.g. {skipped[0]}")
        return X

    features = {name: extract(name) for name in needed}
    splits = protocols(manifest, args.val_size)
    print(f"ravdess-dev: {len(manifest)} clips, {manifest['actor_id'].nunique()} actors; protocols "
          + ", ".join(f"{k} ({v['split'].iloc[0]})" for k, v in splits.items()) + "\n")
    print("| backbone | scoring | A->B UA / WA / F1 | B->A UA / WA / F1 | 5-fold UA / WA / F1 | UA over protocols | "
          "time |\n|---|---|---|---|---|---|---|")
    rows = [evaluate(backbone, adapt, features, manifest, splits) for backbone, adapt in rows_to_run]
    if args.out and rows:
        save_rows(rows, Path(args.out))
    if args.timing is not None:
        timing([Path(p) for p in args.timing] or paths[::9][:60], recipe_for(DEFAULT_BACKBONE).base_feature_sets, args.n_jobs,
               args.cache_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
