"""Every file the runs, fusion and report write has a portable name, even for a cross-corpus protocol."""

from __future__ import annotations

import re

from fusion_fakes import write_expert_pair

from mer_utils.core.runs import resolve_latest, safe_name
from mer_utils.fusion.run import fuse_runs
from mer_utils.report.build import make_report, report_figures

PORTABLE = re.compile(r"^[A-Za-z0-9._-]+$")  # ASCII labels give ASCII names
REFUSED = re.compile(r'[<>:"/\\|?*\x00-\x1f\s]')  # what Windows, macOS or Linux refuse in a name, and spaces
CROSS = "cross:ravdess-dev->ravdess-hidden"


def test_report_of_a_cross_corpus_protocol_writes_only_portable_names(tmp_path):
    outputs = tmp_path / "outputs"
    audio, visual = write_expert_pair(outputs, protocol=CROSS, n_per_class=6)
    fusion_dir = fuse_runs(audio, visual, outputs=outputs, n_bootstrap=20, checkpoints=tmp_path / "checkpoints",
                           strategies=["weighted_average"])
    report = make_report(outputs)
    figures = report_figures(report.parent, protocol=CROSS)
    assert {p.name for p in figures} >= {f"confusion_{safe_name(CROSS)}.png", f"per_class_f1_{safe_name(CROSS)}.png"}
    assert resolve_latest(outputs, "fusion", CROSS) == fusion_dir.resolve()  # the pointer is found by its label
    written = [p for base in (outputs, tmp_path / "checkpoints") for p in base.rglob("*")]
    assert len(written) > 20
    bad = [str(p.relative_to(tmp_path)) for p in written
           if not all(PORTABLE.match(part) for part in p.relative_to(tmp_path).parts)]
    assert not bad, f"non-portable file names: {bad}"


def test_safe_name_is_portable_and_stable():
    for label in (CROSS, "a+b,c", "../../etc", "con", "LPT1.png", "   ", "ünïcode clip", "日本 / 中国?"):
        name = safe_name(label)
        assert not REFUSED.search(name) and name not in (".", "..") and safe_name(name) == name
    assert safe_name("ünïcode clip") == "ünïcode-clip"  # letters of any script are kept


def test_names_from_users_files_keep_their_letters_and_never_collide():
    labels = ["日本", "中国", "my clip ü 日本", "my-clip-ü-日本", "a b", "a+b", "a-b", "run", "   "]
    names = [safe_name(label, unique=True) for label in labels]
    assert len(set(names)) == len(names), names
    assert names[:2] == ["日本", "中国"] and names[3] == "my-clip-ü-日本" and names[6] == "a-b"
    assert names[2].startswith("my-clip-ü-日本-") and len(names[2]) == len("my-clip-ü-日本-") + 8
