"""``mer download cremad`` and ``mer download ravdess``."""

from __future__ import annotations

from pathlib import Path


def _cremad(args) -> int:
    from mer_utils.data.download import download_cremad
    result = download_cremad(args.out, modalities=tuple(args.modalities), actors=args.actors, clips=args.clips,
                             mirror=args.mirror, metadata=not args.no_metadata, jobs=args.jobs,
                             retries=args.retries, backoff_s=args.backoff, timeout_s=args.timeout,
                             progress=not args.quiet)
    print(f"CREMA-D {result.summary()}")
    return 0 if result.ok else 1


def _ravdess(args) -> int:
    from mer_utils.data.download import download_ravdess
    result = download_ravdess(args.out, actors=args.actors, mirror=args.mirror, keep_zip=args.keep_zip,
                              retries=args.retries, backoff_s=args.backoff, timeout_s=args.timeout,
                              progress=not args.quiet)
    print(f"RAVDESS {result.summary()}")
    return 0 if result.ok else 1


def _common(p) -> None:
    p.add_argument("--out", required=True, type=Path, help="folder to fill (created); re-runs verify and resume")
    p.add_argument("--mirror", metavar="BASE", help="base URL of a copy with the official layout "
                   "(default: the official source)")
    p.add_argument("--retries", type=int, default=4, help="further attempts per file after a timeout or drop")
    p.add_argument("--backoff", type=float, default=1.0,
                   help="seconds before the first retry; doubled for each further one")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request before it counts as a timeout")
    p.add_argument("--quiet", action="store_true", help="no plan and no progress bar")


def register(subparsers) -> None:
    p = subparsers.add_parser("download", help="fetch CREMA-D or RAVDESS, verified and resumable")
    sub = p.add_subparsers(dest="corpus", metavar="CORPUS", required=True)

    c = sub.add_parser("cremad", help="CREMA-D in the official layout, checked against the official sha256",
                       description="Fetch CREMA-D (AudioWAV/, VideoFlash/, AudioMP3/ and the metadata CSVs). "
                       "Sizes: AudioWAV 0.61 GB, AudioMP3 0.63 GB, VideoFlash 2.44 GB. Exit status 1 while "
                       "anything is missing; the reasons go to OUT/download_failures.csv.")
    _common(c)
    c.add_argument("--modalities", nargs="+", choices=("wav", "flv", "mp3"), default=["wav"],
                   help="wav (default: audio first, it is small), flv (video, for the visual expert), mp3")
    c.add_argument("--actors", nargs="+", type=int, metavar="ID", help="only these actors, e.g. 1001 1002")
    c.add_argument("--clips", nargs="+", metavar="CLIP_ID", help="only these clips, e.g. 1001_DFA_ANG_XX")
    c.add_argument("--jobs", type=int, default=8, help="parallel downloads")
    c.add_argument("--no-metadata", action="store_true",
                   help="skip VideoDemographics.csv, SentenceFilenames.csv and processedResults/")
    c.set_defaults(handler=_cremad)

    r = sub.add_parser("ravdess", help="RAVDESS speech audio (CC BY-NC-SA 4.0) into Actor_XX/ folders",
                       description="Fetch Audio_Speech_Actors_01-24.zip from Zenodo record 1188976, check its "
                       "md5, and extract the requested actors to OUT/Actor_XX/*.wav. Licence: CC BY-NC-SA "
                       "4.0 (non-commercial, attribution, share-alike).")
    _common(r)
    r.add_argument("--actors", nargs="+", type=int, metavar="N", help="only these actors (1-24)")
    r.add_argument("--keep-zip", action="store_true", help="keep the 208 MB archive after extracting")
    r.set_defaults(handler=_ravdess)
