"""What the browser app shows, without a browser: the page for a real video (probabilities, provenance, figure),
for a long input (timeline and its CSV), for a file it cannot read (a message, not a stack trace); the warnings
the command line would print; the models loaded once per process. The browser itself: test_app_browser.py."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import shared

EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")


def real_flv(emotion: str):
    return shared("crema-d-sample", "VideoFlash", f"1001_DFA_{emotion}_XX.flv")


def test_the_page_for_a_real_video_has_probabilities_provenance_and_the_figure(real_speech_checkpoints, tmp_path):
    from mer_utils.demo.app import answer_file

    page = answer_file(real_flv("HAP"), checkpoints=real_speech_checkpoints, out_dir=tmp_path)
    assert page.ok and page.answer.startswith("## Top emotion:")
    assert "Intended emotion (from the file name): happy (HAP)" in page.answer and "untuned" in page.answer
    assert [row[0] for row in page.table] == ["anger", "disgust", "fear", "happy", "neutral", "sad"]
    assert all(None not in row for row in page.table) and np.isclose(sum(page.fused.values()), 1.0)
    assert "**Speech expert**: ravdess (real data); protocol speaker" in page.provenance
    assert "single clip: each test clip scored alone" in page.provenance
    assert "licence of the weights: CC BY-NC-SA 4.0" in page.provenance
    assert "**Face expert**: FER2013 mini-Xception, zero-shot" in page.provenance
    assert "UNTUNED" in page.provenance
    with open(page.figure, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert page.timeline_csv is None and page.timeline_figure is None  # one window: no timeline


def test_a_long_input_gets_the_timeline_figure_and_its_csv(real_speech_checkpoints, tmp_path):
    from test_demo import _write_mp4

    from mer_utils.data.media_health import read_audio_track
    from mer_utils.demo.app import answer_file
    from mer_utils.experts.visual.video import read_all_frames

    frames = [*read_all_frames(real_flv("ANG")), *read_all_frames(real_flv("SAD"))]
    audio = np.concatenate([read_audio_track(real_flv(e)) for e in ("ANG", "SAD")])
    video = _write_mp4(tmp_path / "two_clips.mp4", frames, audio)
    page = answer_file(video, checkpoints=real_speech_checkpoints, out_dir=tmp_path / "out", window=2.0, hop=1.0)
    assert page.ok and "Timeline:" in page.answer
    table = pd.read_csv(page.timeline_csv)
    assert len(table) >= 3 and {f"fused_p_{e}" for e in EMOTIONS} <= set(table.columns)
    assert page.timeline_figure.endswith("_timeline.png")


@pytest.mark.parametrize("content, name, expected", [
    (b"meeting notes, not a video\n", "notes.mp4", "is neither an image nor a readable audio/video file"),
    (None, "gone.flv", "input file not found: gone.flv"),
])
def test_a_file_it_cannot_read_gets_a_message_naming_it(real_speech_checkpoints, tmp_path, content, name, expected):
    from mer_utils.demo.app import answer_file

    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    page = answer_file(path, checkpoints=real_speech_checkpoints, out_dir=tmp_path / "out")
    assert not page.ok and page.answer.startswith(f"### Could not analyse {name}")
    assert expected in page.answer and str(tmp_path) not in page.answer and "Traceback" not in page.answer
    assert page.table == [] and page.figure is None


def test_no_input_yet_gets_the_prompt(real_speech_checkpoints, tmp_path):
    from mer_utils.demo.app import PROMPT, answer_file

    assert answer_file(None, checkpoints=real_speech_checkpoints, out_dir=tmp_path).answer == PROMPT


def test_warnings_raised_or_logged_while_scoring_reach_the_page():
    from mer_utils.demo.app import collected_warnings

    with collected_warnings() as heard:
        logging.getLogger("mer_utils.experts.audio").warning("skipped a broken audio checkpoint: x.pt")
        warnings.warn("audio input: only the first 6 s of its 8.0 s are used", UserWarning)
        warnings.warn("audio input: only the first 6 s of its 8.0 s are used", UserWarning)
    assert heard == ["skipped a broken audio checkpoint: x.pt", "audio input: only the first 6 s of its 8.0 s are used"]


def test_the_app_loads_its_models_once(real_speech_checkpoints):
    pytest.importorskip("gradio")
    import gradio as gr

    from mer_utils.demo.app import build_app
    from mer_utils.demo.selection import find_real_first

    blocks = build_app(real_speech_checkpoints)
    assert isinstance(blocks, gr.Blocks)
    # The expert build_app loaded is the object every request gets (the loaders keep it for the process).
    first = find_real_first("audio", real_speech_checkpoints, synthetic_input=False, allow_synthetic=False)[2]
    again = find_real_first("audio", real_speech_checkpoints, synthetic_input=False, allow_synthetic=False)[2]
    assert first is again
    intro = next(b.value for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "mer-models")
    assert "speech: ravdess (real data)" in intro and "face: FER2013 mini-Xception, zero-shot" in intro


def test_an_adapted_speech_expert_says_its_test_score_is_not_how_the_input_is_scored(tmp_path):
    from mer_utils.demo.selection import scoring_note

    adapted = {"modality": "audio", "adaptation": "balanced", "run_dir": str(tmp_path)}
    note = scoring_note(adapted)
    assert note.startswith("its test UA is adapted: speaker+sentence+prior") and "does not measure" in note
    assert scoring_note({**adapted, "adaptation": "none"}).startswith("single clip")
    # Indexed before the mode was recorded: the run's config.json says it in the older options.
    (tmp_path / "config.json").write_text('{"speaker_norm": "meanstd", "sentence_norm": true, "balance": true}')
    assert "adapted: speaker+sentence+prior" in scoring_note({"modality": "audio", "run_dir": str(tmp_path)})
