"""The offline acoustic backbone through the protocol runner, on the synthetic corpus."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from mer_utils.core.atomic_io import read_json
from mer_utils.experts.audio.checkpoint import load_audio_expert
from mer_utils.experts.audio.compare import compare_protocols
from mer_utils.experts.audio.features import FEATURE_SETS
from mer_utils.experts.audio.train import train_audio
from mer_utils.cli import main
from mer_utils.data.cremad_vocabulary import PROB_COLUMNS
from mer_utils.data.manifest import default_manifest_path, load_manifest
from mer_utils.core.predictions import read_predictions
from mer_utils.core.runs import resolve_latest
from mer_utils.experts.audio.classical import recipe_for
from tests.conftest import rescored_test_clips

CHANCE = 1 / 6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from mer_utils.data.synthetic.corpus import make_synthetic_corpus

    # Audio only: same voices as the shared fixture, without the video work.
    return make_synthetic_corpus(tmp_path_factory.getbasetemp() / "audio_corpus", n_actors=8,
                                 sentences=("DFA", "IEO", "ITS"), seed=0, with_video=False)


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory):
    base = tmp_path_factory.mktemp("audio_runs")
    out = {}
    for protocol in ("random", "speaker"):
        # The plain baseline (no speaker normalisation) shows the leakage at its largest.
        out[protocol] = train_audio(data_root=str(corpus), protocol=protocol, backbone="egemaps",
                                    speaker_norm=None, outputs=str(base / "outputs"),
                                    checkpoints=str(base / "checkpoints"), progress=False)
    return base, out


def test_offline_baseline_beats_chance_and_scores_higher_on_seen_speakers(runs):
    _, results = runs
    for protocol, result in results.items():
        test = result.metrics["summary"]["test"]
        assert test["ua"]["mean"] > CHANCE + 0.15, protocol
        assert test["wa"]["mean"] > CHANCE + 0.15, protocol
        # C was chosen on the validation subset and recorded.
        fold = result.metrics["folds"][0]
        assert fold["selected_on"] == "val" and fold["C"] in (0.001, 0.01, 0.1, 1.0, 10.0)
    ua = {p: r.metrics["summary"]["test"]["ua"]["mean"] for p, r in results.items()}
    # Measured on this corpus: 60.8 (random) vs 41.7 (speaker) UA.
    assert ua["random"] > ua["speaker"] + 0.05


def test_run_folder_describes_itself_and_passes_the_contract(runs):
    base, results = runs
    result = results["speaker"]
    names = {p.name for p in result.run_dir.iterdir()}
    assert {"config.json", "env.json", "metrics.json", "predictions_val.csv", "predictions_test.csv",
            "confusion_test.png", "skipped_clips.csv"} <= names
    assert read_json(result.run_dir / "config.json")["backbone"] == "egemaps"
    split = result.metrics["split"]
    for subset in ("val", "test"):
        frame = read_predictions(result.run_dir / f"predictions_{subset}.csv", expected_split=split,
                                 expected_modality="audio")
        assert set(frame["subset"]) == {subset}
    assert resolve_latest(base / "outputs", "audio", "speaker") == result.run_dir.resolve()


def test_speaker_run_never_tests_a_training_actor(runs, corpus):
    base, results = runs
    split = pd.read_csv(base / "outputs" / "splits" / f"{results['speaker'].metrics['split']}.csv")
    actor = lambda ids: {int(c.split("_")[0]) for c in ids}  # noqa: E731 - CREMA-D ids start with the actor
    test = read_predictions(results["speaker"].run_dir / "predictions_test.csv")
    train_actors = actor(split.loc[split["subset"] == "train", "clip_id"])
    assert train_actors and not actor(test["clip_id"]) & train_actors
    random_test = read_predictions(results["random"].run_dir / "predictions_test.csv")
    assert actor(random_test["clip_id"]) & train_actors  # the random split shares actors


def test_checkpoint_reloads_without_training_code_and_reproduces_predictions(runs, corpus):
    _, results = runs
    result = results["speaker"]
    assert result.checkpoint.name == "best_audio_egemaps_speaker_indep.safetensors"
    assert results["random"].checkpoint.name == "best_audio_egemaps_random.safetensors"
    expert = load_audio_expert(result.checkpoint)
    test = read_predictions(result.run_dir / "predictions_test.csv").head(8)
    manifest = load_manifest(default_manifest_path(corpus, result.run_dir.parents[2]))
    paths = [corpus / manifest.set_index("clip_id").loc[c, "audio_path"] for c in test["clip_id"]]
    proba = expert.predict_proba(paths)
    assert proba.shape == (8, 6)
    np.testing.assert_allclose(proba, test[list(PROB_COLUMNS)].to_numpy(), atol=2e-6)


def test_compare_protocols_reports_the_gap(runs):
    base, results = runs
    table = compare_protocols(base / "outputs")
    assert table["protocol"].tolist() == ["random", "speaker", "gap (random - speaker)"]
    ua = {p: r.metrics["summary"]["test"]["ua"]["mean"] for p, r in results.items()}
    assert table.loc[2, "ua"] == pytest.approx(ua["random"] - ua["speaker"])


def test_rerun_reuses_finished_folds(runs, corpus, monkeypatch):
    base, results = runs
    import mer_utils.experts.audio.train as runner

    monkeypatch.setattr(runner, "make_backbone", lambda config: pytest.fail("a finished fold was retrained"))
    again = train_audio(data_root=str(corpus), protocol="random", backbone="egemaps", speaker_norm=None,
                        outputs=str(base / "outputs"), checkpoints=str(base / "checkpoints"), progress=False)
    assert again.metrics["summary"] == results["random"].metrics["summary"]


def test_kfold_run_aggregates_mean_and_std(runs, corpus):
    base, _ = runs
    result = train_audio(data_root=str(corpus), protocol="speaker-kfold", folds=3, backbone="egemaps",
                         outputs=str(base / "outputs"), checkpoints=str(base / "checkpoints"), progress=False)
    ua = result.metrics["summary"]["test"]["ua"]
    assert ua["n"] == 3 and ua["std"] > 0
    test = read_predictions(result.run_dir / "predictions_test.csv")
    assert not test["clip_id"].duplicated().any()  # every clip is tested in exactly one fold
    assert result.checkpoint.name == "best_audio_egemaps_speaker_kfold.safetensors"
    assert result.metrics["checkpoint_fold"] in (0, 1, 2)


def test_broken_clip_is_skipped_and_reported(runs, corpus, tmp_path):
    base, _ = runs
    copy = tmp_path / "corpus"
    # A smaller copy (two sentences, 96 clips) keeps the test quick.
    shutil.copytree(corpus, copy, ignore=lambda d, names: [n for n in names if n.endswith(".wav") and "_IEO_" in n])
    broken = copy / "AudioWAV" / "1003_DFA_SAD_XX.wav"
    broken.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n")
    result = train_audio(data_root=str(copy), protocol="random", backbone="egemaps",
                         outputs=str(tmp_path / "outputs"), checkpoints=str(tmp_path / "ck"), progress=False)
    skipped = pd.read_csv(result.run_dir / "skipped_clips.csv")
    assert skipped["clip_id"].tolist() == ["1003_DFA_SAD_XX"]
    assert "lfs_pointer" in skipped.loc[0, "reason"]
    assert result.metrics["n_skipped"] == 1
    for subset in ("val", "test"):
        assert "1003_DFA_SAD_XX" not in set(read_predictions(result.run_dir / f"predictions_{subset}.csv")["clip_id"])


def test_cli_train_compare_and_predict(runs, corpus, tmp_path, capsys):
    base, results = runs
    out = str(base / "outputs")
    assert main(["audio", "train", "--data-root", str(corpus), "--protocol", "random", "--backbone", "egemaps",
                 "--outputs", out, "--checkpoints", str(base / "checkpoints"), "--no-progress"]) == 0
    assert "test: WA" in capsys.readouterr().out
    assert main(["audio", "compare", "--outputs", out, "--out", str(tmp_path)]) == 0
    assert "gap (random - speaker)" in capsys.readouterr().out
    assert (tmp_path / "protocol_comparison.png").stat().st_size > 5000
    clip = sorted((corpus / "AudioWAV").glob("*.wav"))[0]
    assert main(["audio", "predict", str(results["random"].checkpoint), str(clip),
                 "--out", str(tmp_path / "pred.csv")]) == 0
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert pred["clip_id"].tolist() == [clip.stem] and pred[list(PROB_COLUMNS)].sum(axis=1).round(4).tolist() == [1.0]


def test_acoustic_backbone_refuses_ssl_modes():
    from mer_utils.experts.audio.config import AudioTrainConfig

    with pytest.raises(ValueError, match="applies to speech models"):
        AudioTrainConfig(backbone="egemaps", mode="frozen")


def test_default_backbone_normalises_speakers_and_its_checkpoint_scores_a_lone_clip(corpus, tmp_path):
    from mer_utils.experts.audio import DEFAULT_BACKBONE
    from mer_utils.experts.audio.classical import recipe_for
    from mer_utils.experts.audio.features import extract_features
    from mer_utils.experts.audio.loading import load_waveform
    from mer_utils.experts.audio.variants import DEFAULT_RECIPE, predict_recipe

    result = train_audio(data_root=str(corpus), protocol="speaker", outputs=str(tmp_path / "outputs"),
                         checkpoints=str(tmp_path / "checkpoints"), progress=False)
    assert DEFAULT_BACKBONE == "ge2e"
    assert recipe_for(DEFAULT_BACKBONE, sentence_norm=True, balance=True) == DEFAULT_RECIPE
    fold = result.metrics["folds"][0]
    assert fold["speaker_norm"] == {"mode": "meanstd", "min_clips": 8} and fold["refit"] is True
    assert fold["sentence_norm"] is True and fold["balance"] is True and len(fold["blocks"]) == 1
    # Every synthetic clip carries its sentence id, so each one was normalised within its group.
    assert fold["sentence_groups"] == {"train_clips_with_sentence": fold["n_train"],
                                       "val_clips_with_sentence": fold["n_val"]}
    assert fold["fallback"]["recipe"] == "ge2e logreg refit"  # no speaker, sentence or prior statistics
    assert result.metrics["summary"]["test"]["ua"]["mean"] > CHANCE + 0.15
    expert = load_audio_expert(result.checkpoint)
    licence = expert.metadata()["licence"]
    assert expert.fallback is not None and licence == FEATURE_SETS["ge2e"].licence and "audEERING" not in licence
    # The demo's case: one recording of an unknown speaker is scored by the model trained without speaker statistics.
    wav = next((corpus / "AudioWAV").glob("*.wav"))
    proba = expert.predict_proba([wav])
    assert proba.shape == (1, 6) and np.isclose(proba.sum(), 1)
    features = {part: extract_features(load_waveform(wav, settings=expert.settings), part)[None]
                for part in expert.recipe.base_feature_sets}
    assert np.allclose(proba, predict_recipe(expert.fallback, expert.fallback_recipe, features, None))
    # Validation predictions come from the train-only model: out-of-sample although the test model was refitted.
    val = read_predictions(result.run_dir / "predictions_val.csv")
    assert fold["n_val"] == len(val)


def test_the_acoustic_model_is_the_recipe_and_reproduces_the_previous_default(corpus, tmp_path):
    """`egemaps+librosa` without refitting is the earlier default, fitted by the same recipe code."""
    from mer_utils.experts.audio.variants import Recipe

    assert recipe_for("egemaps+librosa", refit=False) == Recipe(feature_sets=("egemaps", "librosa"),
                                                                 speaker_norm="meanstd")
    with pytest.raises(ValueError, match="unknown feature set|not one of|choose"):
        recipe_for("egemaps,mfcc")


def test_rank_speaker_norm_trains_and_its_checkpoint_reproduces_the_run(corpus, tmp_path):
    result = train_audio(data_root=str(corpus), protocol="speaker", backbone="librosa", speaker_norm="rank",
                         outputs=str(tmp_path / "outputs"), checkpoints=str(tmp_path / "checkpoints"), progress=False)
    assert result.metrics["folds"][0]["speaker_norm"]["mode"] == "rank"
    assert result.metrics["summary"]["test"]["ua"]["mean"] > CHANCE + 0.15
    expert = load_audio_expert(result.checkpoint)
    assert expert.recipe.speaker_norm == "rank"
    # Every clip of the test speakers, scored with their speaker and sentence ids: the same ranks as in the run.
    proba, written = rescored_test_clips(expert, corpus, result)
    np.testing.assert_allclose(proba, written, atol=2e-6)
