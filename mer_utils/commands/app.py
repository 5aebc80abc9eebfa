"""``mer app``: the demo in a browser (needs the ``app`` extra: ``pip install -e .[app]``)."""

from __future__ import annotations


def _app(args) -> int:
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        raise RuntimeError("`mer app` needs Gradio: pip install -e .[app] (or pip install gradio)")
    from mer_utils.demo.app import launch_app

    launch_app(args.checkpoints, host=args.host, port=args.port, share=args.share,
               allow_synthetic=args.allow_synthetic)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("app", help="demo in a browser: upload or record a video, a recording or a face image",
                              description="Serve the demo as a web page (Gradio) and print its URL.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (0.0.0.0: reachable from other machines on the network)")
    p.add_argument("--port", type=int, default=None, help="port (default: the first free one from 7860)")
    p.add_argument("--share", action="store_true", help="also open a temporary public link (gradio.live)")
    p.add_argument("--checkpoints", default="checkpoints",
                   help="checkpoint folder, or hf://REPO_ID for a set shared on the Hugging Face Hub")
    p.add_argument("--allow-synthetic", action="store_true",
                   help="start with synthetic-trained checkpoints allowed on real inputs (a checkbox on the page)")
    p.set_defaults(handler=_app)
