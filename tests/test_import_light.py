"""The data layer imports with numpy and pandas alone: no torch, OpenCV or transformers."""

from __future__ import annotations

import subprocess
import sys


def test_data_layer_and_cli_do_not_import_heavy_libraries():
    code = (
        "import sys, mer_utils, mer_utils.data.manifest, mer_utils.protocols.splits, mer_utils.core.metrics, "
        "mer_utils.core.predictions, mer_utils.data.human_baseline, mer_utils.data.ravdess, mer_utils.cli\n"
        "mer_utils.cli.build_parser()\n"
        "heavy = [m for m in ('torch', 'cv2', 'transformers', 'librosa', 'opensmile', 'sklearn') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    # scikit-learn is the data layer's own dependency (splits, metrics); the others are not.
    assert set(filter(None, out.split(","))) <= {"sklearn"}, out


def test_mer_registers_every_stage_and_its_help_runs():
    import argparse

    from mer_utils.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    expected = {"manifest", "splits", "synth", "human-baseline", "download", "audio", "visual", "fuse", "report",
                "predict", "run-all"}
    assert expected <= set(commands.choices), sorted(expected - set(commands.choices))
    out = subprocess.run([sys.executable, "-m", "mer_utils", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "run-all" in out and "usage: mer" in out


def test_the_demo_imports_only_what_its_experts_need():
    # `mer predict --help` and importing the demo stay free of torch, OpenCV, transformers, matplotlib,
    # openSMILE, pandas and scikit-learn: those load when an expert or a figure is used (the parser of a
    # named command registers that command alone, not every stage's options).
    code = (
        "import sys, mer_utils.demo.predict, mer_utils.demo.hub, mer_utils.cli\n"
        "try:\n    mer_utils.cli.main(['predict', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'cv2', 'transformers', 'matplotlib', 'opensmile', 'librosa', 'huggingface_hub',"
        " 'pandas', 'sklearn')"
        " if m in sys.modules]\n"
        "print('HEAVY:' + ','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--window" in out and "hf://REPO_ID" in out
    assert out.strip().splitlines()[-1] == "HEAVY:", out
