"""Cross-corpus SER: a CREMA-D-shaped corpus -> real RAVDESS speech, end to end on small fixtures."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import shared
from mer_utils.experts.audio.cross_corpus import CrossCorpusConfig, run_cross_corpus, shared_emotions, source_val_split
from mer_utils.core.predictions import read_predictions


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    from mer_utils.data.synthetic.corpus import make_synthetic_corpus

    base = tmp_path_factory.mktemp("cross")
    source = make_synthetic_corpus(base / "synth", n_actors=4, sentences=("DFA", "ITS"), seed=0, with_video=False)
    ravdess = shared("ravdess-dev")
    target = base / "ravdess"
    target.mkdir()
    for actor in ("Actor_01", "Actor_02"):  # links, not copies: two real actors are enough here
        (target / actor).symlink_to(ravdess / actor, target_is_directory=True)
    return source, target, base


@pytest.fixture(scope="module")
def cross_run(corpora):
    source, target, base = corpora
    # eGeMAPS alone keeps the test quick (the default is the ge2e speech-encoder set).
    config = CrossCorpusConfig(source_root=str(source), target_root=str(target), source_name="synthetic",
                               backbone="egemaps", outputs=str(base / "outputs"))
    return run_cross_corpus(config, progress=False), config


def test_cross_corpus_run_folder_follows_the_contract(cross_run):
    run_dir, config = cross_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["protocol"] == "cross:synthetic->ravdess"
    assert metrics["modality"] == "audio" and metrics["backbone"] == "egemaps logreg refit"
    assert metrics["adaptation"] == "none" and "_adapt-none_" in run_dir.name  # each target clip scored alone
    assert metrics["shared_emotions"] == ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
    assert set(metrics["summary"]) == {"val", "test"}
    assert 0.0 <= metrics["summary"]["test"]["ua"]["mean"] <= 1.0
    test = read_predictions(run_dir / "predictions_test.csv", expected_modality="audio")
    # Every RAVDESS speech clip of the six shared emotions (calm and surprised excluded): 44 per actor.
    assert len(test) == 88 and test["clip_id"].str.match(r"^03-01-0[1345678]-").all()
    assert not test["y_true"].isin(["CAL", "SUR"]).any()
    assert (run_dir / "confusion_test.png").stat().st_size > 0
    pointer = run_dir.parents[2] / "audio" / "latest_cross-synthetic-ravdess.json"
    assert pointer.exists()


def test_validation_actors_come_from_the_source_corpus_only(cross_run):
    run_dir, _ = cross_run
    val = read_predictions(run_dir / "predictions_val.csv")
    actors = val["clip_id"].str.slice(0, 4).astype(int)
    assert actors.nunique() == 1 and (actors >= 1001).all()  # one whole synthetic actor, no RAVDESS clip
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["n_actors"] == {"train": 3, "val": 1, "test": 2}
    assert metrics["selection"]["selected_on"] == "val"


def test_source_validation_split_is_by_whole_actors():
    clips = pd.DataFrame({"clip_id": [f"c{i}" for i in range(40)], "actor_id": [i // 4 for i in range(40)],
                          "sex": ["Male", "Female"] * 20, "emotion": "ANG"})
    train, val = source_val_split(clips, val_size=0.2, seed=0)
    assert set(train["actor_id"]).isdisjoint(val["actor_id"])
    assert val["actor_id"].nunique() == 2 and len(train) + len(val) == 40


def test_corpora_without_shared_emotions_are_refused():
    with pytest.raises(ValueError, match="share"):
        shared_emotions(pd.DataFrame({"emotion": ["ANG", "SAD"]}), pd.DataFrame({"emotion": ["SAD", "CAL"]}))


def test_cli_builds_the_same_config_and_writes_the_same_run(cross_run, corpora, capsys):
    from mer_utils.cli import main

    run_dir, config = cross_run
    source, target, base = corpora
    assert main(["audio", "cross-corpus", "--source-root", str(source), "--target-root", str(target),
                 "--source-name", "synthetic", "--backbone", "egemaps", "--outputs", str(base / "outputs"),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "synthetic -> ravdess: test UA" in out and f"run folder: {run_dir}" in out  # same settings, same folder


def test_prior_matching_across_corpora_needs_both_to_be_balanced(corpora, tmp_path):
    """`--adapt balanced` rescales target speakers to the source prior: a target that does not declare
    balanced speakers (a CSV corpus) is refused with the reason, before anything is trained."""
    import pandas as pd

    source, target, _ = corpora
    wavs = sorted(shared("ravdess-dev").glob("Actor_0[12]/*.wav"))
    pd.DataFrame({"path": [str(p) for p in wavs], "speaker": [p.parent.name for p in wavs],
                  "emotion": ["ANG", "SAD"] * (len(wavs) // 2)}).to_csv(tmp_path / "target.csv", index=False)
    config = CrossCorpusConfig(source_root=str(source), target_root=str(tmp_path / "target.csv"), backbone="egemaps",
                               adapt="balanced", outputs=str(tmp_path / "outputs"))
    with pytest.raises(ValueError, match="does not declare so"):
        run_cross_corpus(config, progress=False)
