"""``mer hub push|pull`` (a checkpoint set on the Hugging Face Hub, verified) and ``mer export onnx``."""

from __future__ import annotations

import sys
from pathlib import Path

from mer_utils.demo.hub import pull_checkpoints, push_checkpoints


def _push(args) -> int:
    where = push_checkpoints(args.repo_id, args.checkpoints, endpoint=args.endpoint, local_hub=args.local_hub)
    print(f"pushed {args.checkpoints} to {args.repo_id}: {where}")
    return 0


def _pull(args) -> int:
    try:
        target = pull_checkpoints(args.repo_id, args.checkpoints, endpoint=args.endpoint, local_hub=args.local_hub)
    except FileExistsError as err:  # the target holds the user's own index (the CLI reports the other errors)
        print(f"mer hub pull: error: {err}", file=sys.stderr)
        return 1
    print(f"pulled {args.repo_id} (every file matches its sha256) into {target}\n"
          f"use it: mer predict VIDEO --checkpoints {target}")
    return 0


def _onnx(args) -> int:
    from mer_utils.experts.onnx_export import TOLERANCE, export_checkpoints
    for record in export_checkpoints(args.checkpoints):
        print(f"{record['network']}: {record['path']} (largest difference from torch {record['max_abs_diff']:.1e}, "
              f"allowed {TOLERANCE:g})")
    print(f"listed in {args.checkpoints / 'index.json'}; `mer predict` runs them, `mer hub push` ships them")
    return 0


def register(subparsers) -> None:
    hub = subparsers.add_parser("hub", help="share checkpoint sets on the Hugging Face Hub (push / pull)")
    commands = hub.add_subparsers(dest="hub_command", metavar="ACTION", required=True)
    push = commands.add_parser("push", help="upload checkpoints/ (index, weights, fusion rules, a model card with "
                                            "every file's sha256); the token comes from HF_TOKEN or Colab secrets")
    push.add_argument("repo_id", help="e.g. your-name/mer-cremad")
    push.add_argument("--checkpoints", type=Path, default=Path("checkpoints"), help="the set to upload")
    pull = commands.add_parser("pull", help="download a shared set, verify every sha256, copy it locally")
    pull.add_argument("repo_id")
    pull.add_argument("--checkpoints", type=Path, default=None,
                      help="where to put it (default: checkpoints/hub/<owner>--<name>)")
    for p in (push, pull):
        p.add_argument("--endpoint", default=None, help="another Hub server (default: huggingface.co)")
        p.add_argument("--local-hub", type=Path, default=None,
                       help="a folder standing in for the Hub (air-gapped machines, tests): repo = <folder>/<repo_id>")
    push.set_defaults(handler=_push)
    pull.set_defaults(handler=_pull)

    export = subparsers.add_parser("export", help="export the experts' networks (ONNX)")
    formats = export.add_subparsers(dest="export_format", metavar="FORMAT", required=True)
    onnx = formats.add_parser("onnx", help="write an ONNX copy of each face model and GE2E speech encoder next to "
                                           "its checkpoint, checked against torch and listed in the index")
    onnx.add_argument("--checkpoints", type=Path, default=Path("checkpoints"), help="the checkpoint folder")
    onnx.set_defaults(handler=_onnx)
