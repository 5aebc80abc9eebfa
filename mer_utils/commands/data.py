"""``mer manifest``, ``mer splits``, ``mer synth``, ``mer human-baseline``."""

from __future__ import annotations

from pathlib import Path


def _manifest(args) -> int:
    from mer_utils.data.manifest import build_manifest, summarize_manifest, write_manifest
    result = build_manifest(args.data_root, metadata_dir=args.metadata_dir, dataset=args.dataset,
                            keep_all_emotions=args.all_emotions)
    manifest_path, problems_path = write_manifest(result, args.out)
    print(summarize_manifest(result.manifest, result.problems))
    print(f"manifest: {manifest_path}\nproblems: {problems_path}")
    return 0


def _splits(args) -> int:
    from mer_utils.data.manifest import load_manifest
    from mer_utils.protocols.splits import make_split, write_split
    split = make_split(load_manifest(args.manifest), protocol=args.protocol, seed=args.seed,
                       val_size=args.val_size, test_size=args.test_size, n_folds=args.folds,
                       published_dir=args.published_dir)
    path = write_split(split, args.out)
    info = split.attrs["info"]
    print(f"{info['name']}: protocol {info['protocol']}, speaker-independent {info['speaker_independent']}")
    for key, n in info["sizes"].items():
        print(f"  {key}: {n} clips")
    for row in info["actor_overlap"]:
        print(f"  fold {row['fold']}: actors train/val/test {row['n_actors_train']}/{row['n_actors_val']}/"
              f"{row['n_actors_test']}, shared train-test {row['shared_train_test']}")
    if info["excluded"]:
        print(f"  excluded {len(info['excluded'])} clips with broken media (listed in {path.with_suffix('.json')})")
    print(f"split: {path}")
    return 0


def _synth(args) -> int:
    from mer_utils.data.synthetic.corpus import make_synthetic_corpus
    root = make_synthetic_corpus(args.out, n_actors=args.actors, seed=args.seed)
    print(f"synthetic corpus: {root}")
    return 0


def _human_baseline(args) -> int:
    from mer_utils.data.human_baseline import human_baseline_markdown, human_baseline, write_human_baseline
    csv_path, md_path = write_human_baseline(args.data_root, args.out)
    print(human_baseline_markdown(human_baseline(args.data_root)))
    print(f"tables: {csv_path}, {md_path}")
    return 0


def register(subparsers) -> None:
    from mer_utils.protocols.splits import PROTOCOLS

    p = subparsers.add_parser("manifest", help="scan a CREMA-D folder into a manifest CSV with media health")
    p.add_argument("--data-root", required=True, type=Path, help="CREMA-D folder (AudioWAV/, VideoFlash/, ...)")
    p.add_argument("--out", required=True, type=Path, help="manifest CSV to write (problems CSV goes beside it)")
    p.add_argument("--metadata-dir", type=Path, help="folder with VideoDemographics.csv / processedResults/ "
                   "when the data root lacks them")
    p.add_argument("--dataset", choices=("auto", "cremad", "ravdess"), default="auto",
                   help="corpus layout; auto detects RAVDESS Actor_XX/ folders")
    p.add_argument("--all-emotions", action="store_true",
                   help="RAVDESS: keep calm and surprised (coded CAL, SUR), which CREMA-D lacks")
    p.set_defaults(handler=_manifest)

    p = subparsers.add_parser("splits", help="make or import a train/val/test split")
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--protocol", required=True, choices=PROTOCOLS)
    p.add_argument("--out", required=True, type=Path, help="folder for <split>.csv and <split>.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-size", type=float, default=0.1)
    p.add_argument("--test-size", type=float, default=0.2)
    p.add_argument("--folds", type=int, default=5, help="folds of speaker-kfold")
    p.add_argument("--published-dir", type=Path, help="folder with the published split files (ogm-ge/, audeering/, hicmae/)")
    p.set_defaults(handler=_splits)

    p = subparsers.add_parser("synth", help="write the synthetic CREMA-D-shaped corpus (the embedded default)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--actors", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_synth)

    p = subparsers.add_parser("human-baseline", help="crowd recognition rates per rating mode (paper Table)")
    p.add_argument("--data-root", required=True, type=Path,
                   help="CREMA-D folder (or its metadata folder) holding processedResults/tabulatedVotes.csv")
    p.add_argument("--out", type=Path, default=Path("outputs/human_baseline"))
    p.set_defaults(handler=_human_baseline)
