"""``mer export onnx``: ONNX copies of the experts' networks, next to their checkpoints."""

from __future__ import annotations

from pathlib import Path


def _onnx(args) -> int:
    from mer_utils.experts.onnx_export import TOLERANCE, export_checkpoints

    for record in export_checkpoints(args.checkpoints):
        print(f"{record['network']}: {record['path']} (largest difference from torch {record['max_abs_diff']:.1e}, "
              f"allowed {TOLERANCE:g})")
    print(f"listed in {args.checkpoints / 'index.json'}; `mer predict` runs them, `mer hub push` ships them")
    return 0


def register(subparsers) -> None:
    export = subparsers.add_parser("export", help="export the experts' networks (ONNX)")
    formats = export.add_subparsers(dest="export_format", metavar="FORMAT", required=True)
    onnx = formats.add_parser("onnx", help="write an ONNX copy of each face model and GE2E speech encoder next to "
                                           "its checkpoint, checked against torch and listed in the index")
    onnx.add_argument("--checkpoints", type=Path, default=Path("checkpoints"), help="the checkpoint folder")
    onnx.set_defaults(handler=_onnx)
