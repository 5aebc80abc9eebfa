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
        # Each clip scored alone (the default): the leakage at its largest.
        out[protocol] = train_audio(data_root=str(corpus), protocol=protocol, backbone="egemaps",
                                    outputs=str(base / "outputs"),
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
    again = train_audio(data_root=str(corpus), protocol="random", backbone="egemaps",
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


@pytest.fixture(scope="module")
def default_run(corpus, tmp_path_factory):
    """The default backbone (ge2e), speaker-independent, each clip scored alone."""
    base = tmp_path_factory.mktemp("ge2e_runs")
    common = dict(data_root=str(corpus), protocol="speaker", outputs=str(base / "outputs"),
                  checkpoints=str(base / "checkpoints"), progress=False)
    return base, common, train_audio(**common)


def test_default_backbone_scores_each_clip_alone_and_says_so(corpus, default_run):
    from mer_utils.experts.audio import DEFAULT_BACKBONE
    from mer_utils.experts.audio.features import extract_features
    from mer_utils.experts.audio.loading import load_waveform
    from mer_utils.experts.audio.variants import DEFAULT_RECIPE, predict_recipe

    tmp_path, _, result = default_run
    assert DEFAULT_BACKBONE == "ge2e" and recipe_for(DEFAULT_BACKBONE) == DEFAULT_RECIPE
    assert result.metrics["adaptation"] == "none" and "_adapt-none_" in result.run_dir.name
    fold = result.metrics["folds"][0]
    assert fold["adaptation"] == "none" and fold["refit"] is True and len(fold["blocks"]) == 1
    assert "fallback" not in fold and "sentence_groups" not in fold  # no statistics of other clips anywhere
    assert result.metrics["summary"]["test"]["ua"]["mean"] > CHANCE + 0.15
    entry = read_json(tmp_path / "checkpoints" / "index.json")["entries"][0]
    assert entry["adaptation"] == "none" and result.checkpoint.name == "best_audio_ge2e_speaker_indep.safetensors"
    expert = load_audio_expert(result.checkpoint)
    licence = read_json(result.checkpoint.with_suffix(".json"))["licence"]
    assert expert.fallback is None and licence == FEATURE_SETS["ge2e"] and "audEERING" not in licence
    # A clip's answer depends on that clip alone: scored by itself it gets the probabilities the run wrote.
    test = read_predictions(result.run_dir / "predictions_test.csv").head(3)
    manifest = load_manifest(default_manifest_path(corpus, result.run_dir.parents[2])).set_index("clip_id")
    for clip_id, written in zip(test["clip_id"], test[list(PROB_COLUMNS)].to_numpy()):
        wav = corpus / manifest.loc[clip_id, "audio_path"]
        features = {part: extract_features(load_waveform(wav, settings=expert.settings), part)[None]
                    for part in expert.recipe.base_feature_sets}
        np.testing.assert_allclose(predict_recipe(expert.models, expert.recipe, features, None)[0], written, atol=2e-6)
        np.testing.assert_allclose(expert.predict_proba([wav])[0], written, atol=2e-6)


def test_balanced_adaptation_is_a_named_run_of_its_own_with_a_single_clip_model_for_the_demo(corpus, default_run):
    from mer_utils.experts.audio.features import extract_features
    from mer_utils.experts.audio.loading import load_waveform
    from mer_utils.experts.audio.variants import predict_recipe

    tmp_path, common, plain = default_run
    result = train_audio(**common, adapt="balanced")
    assert result.run_dir != plain.run_dir and "_adapt-balanced_" in result.run_dir.name
    assert result.metrics["adaptation"] == "balanced"
    fold = result.metrics["folds"][0]
    assert fold["adaptation"] == "balanced" and fold["fallback"]["recipe"] == "ge2e logreg refit"
    # Every synthetic clip carries its sentence id, so each one was normalised within its group.
    assert fold["sentence_groups"] == {"train_clips_with_sentence": fold["n_train"],
                                       "val_clips_with_sentence": fold["n_val"]}
    # Its own checkpoint, its own index slot and pointer: the single-clip model stays what the demo finds.
    assert result.checkpoint.name == "best_audio_ge2e_speaker_indep_adapt-balanced.safetensors"
    entries = read_json(tmp_path / "checkpoints" / "index.json")["entries"]
    assert sorted(e["adaptation"] for e in entries) == ["balanced", "none"]
    assert resolve_latest(tmp_path / "outputs", "audio", "speaker") == plain.run_dir.resolve()
    assert resolve_latest(tmp_path / "outputs", "audio", "speaker_adapt-balanced") == result.run_dir.resolve()
    from mer_utils.core.checkpoint_index import find_entries

    assert find_entries(tmp_path / "checkpoints", modality="audio")[0]["adaptation"] == "none"
    expert = load_audio_expert(result.checkpoint)
    # Every clip of the test speakers, scored with their speaker and sentence ids: the run's probabilities.
    proba, written = rescored_test_clips(expert, corpus, result)
    np.testing.assert_allclose(proba, written, atol=2e-6)
    # The demo's case: one recording of an unknown speaker is scored by the model trained without statistics.
    wav = next((corpus / "AudioWAV").glob("*.wav"))
    features = {part: extract_features(load_waveform(wav, settings=expert.settings), part)[None]
                for part in expert.recipe.base_feature_sets}
    assert np.allclose(expert.predict_proba([wav]),
                       predict_recipe(expert.fallback, expert.fallback_recipe, features, None))


def test_adaptation_is_refused_where_it_does_not_apply(corpus, tmp_path):
    from mer_utils.experts.audio.config import AudioTrainConfig

    with pytest.raises(ValueError, match="speech models score each clip alone"):
        AudioTrainConfig(backbone="facebook/wav2vec2-base", adapt="speaker")
    with pytest.raises(ValueError, match="unknown adaptation 'tta'"):
        AudioTrainConfig(adapt="tta")
    csv = pd.DataFrame({"path": [str(p) for p in sorted((corpus / "AudioWAV").glob("*.wav"))]})
    csv["speaker"] = csv["path"].str.extract(r"(\d{4})_")[0]
    csv["emotion"] = csv["path"].str.extract(r"_([A-Z]{3})_[A-Z]{2}\.wav")[0]
    csv.to_csv(tmp_path / "corpus.csv", index=False)
    with pytest.raises(ValueError, match="does not declare so"):
        train_audio(data_root=str(tmp_path / "corpus.csv"), protocol="speaker", adapt="balanced",
                    outputs=str(tmp_path / "outputs"), progress=False)
    assert not list((tmp_path / "outputs").glob("audio/*/*/config.json"))  # refused before any run folder


def test_compare_refuses_runs_scored_differently_and_pairs_like_with_like(runs, corpus, tmp_path):
    base, results = runs
    adapted = train_audio(data_root=str(corpus), protocol="speaker", backbone="egemaps", adapt="speaker",
                          outputs=str(base / "outputs"), checkpoints=str(base / "checkpoints"), progress=False)
    # The default comparison stays single clip against single clip, although a newer adapted run exists.
    table = compare_protocols(base / "outputs")
    assert set(table["adaptation"]) == {"none"}
    assert table.loc[1, "run_dir"] == str(results["speaker"].run_dir)
    with pytest.raises(ValueError, match="scored differently.*single clip.*adapted: speaker"):
        compare_protocols(run_dirs=[results["random"].run_dir, adapted.run_dir])
    with pytest.raises(FileNotFoundError):  # no adapted random run yet: nothing to pair it with
        compare_protocols(base / "outputs", adapt="speaker")
    other = train_audio(data_root=str(corpus), protocol="speaker", backbone="egemaps", c_grid=(1.0,),
                        outputs=str(base / "outputs"), checkpoints=str(base / "checkpoints"), progress=False)
    with pytest.raises(ValueError, match="differ in more than their split.*c_grid"):
        compare_protocols(run_dirs=[results["random"].run_dir, other.run_dir])
    # Leave the latest single-clip speaker pointer where the module's other tests expect it.
    from mer_utils.core.runs import point_latest

    point_latest(base / "outputs", "audio", "speaker", results["speaker"].run_dir,
                 corpus_key=results["speaker"].metrics["corpus_key"])


def test_the_acoustic_model_is_the_recipe_and_reproduces_the_previous_default(corpus, tmp_path):
    """`egemaps+librosa` with speaker adaptation and no refitting is the earlier default, fitted by the same code."""
    from mer_utils.experts.audio.variants import Recipe

    assert recipe_for("egemaps+librosa", adapt="speaker", refit=False) == Recipe(feature_sets=("egemaps", "librosa"),
                                                                                 speaker_norm="meanstd")
    with pytest.raises(ValueError, match="unknown feature set|not one of|choose"):
        recipe_for("egemaps,mfcc")


def _audio_train_config(argv):
    """The AudioTrainConfig `mer audio train ARGV` would train, parsed as the command line parses it."""
    from mer_utils.cli import build_parser
    from mer_utils.commands import parse_config
    from mer_utils.experts.audio.config import GROUPS, AudioTrainConfig

    argv = ["audio", "train", *argv]
    args, args.options = build_parser(argv).parse_known_args(argv)  # as mer_utils.cli.main does
    return parse_config(args, AudioTrainConfig, GROUPS)[0]


def test_a_config_written_before_adapt_replays_in_todays_terms(tmp_path):
    """`--config RUN/config.json` of an earlier run: its three normalisation flags become one --adapt."""
    import json

    old = {"backbone": "ge2e", "protocol": "speaker", "speaker_norm": "meanstd", "sentence_norm": True, "balance": True}
    for flags, adapt in ((old, "balanced"), ({**old, "sentence_norm": False, "balance": False}, "speaker"),
                         ({**old, "speaker_norm": None}, "none")):
        (tmp_path / "config.json").write_text(json.dumps(flags))
        config = _audio_train_config(["--config", str(tmp_path)])
        assert config.adapt == adapt and config.protocol == "speaker"
    # Options typed beside --config win over the file; the others keep its values.
    config = _audio_train_config(["--config", str(tmp_path), "--protocol", "random", "--c-grid", "0.5", "2"])
    assert (config.protocol, config.c_grid, config.backbone, config.adapt) == ("random", (0.5, 2.0), "ge2e", "none")
    (tmp_path / "config.json").write_text(json.dumps({**old, "speaker_norm": "rank"}))
    with pytest.raises(ValueError, match="no longer offered; choose --adapt"):
        _audio_train_config(["--config", str(tmp_path)])


def test_the_help_of_a_stage_shows_its_option_groups(capsys):
    """`--help` has one section per concern; `mer visual prepare` shows only the groups it reads."""
    for argv, shown, hidden in ((["audio", "train"], ("data:", "split:", "model:", "training: acoustic backbones:",
                                                       "training: speech models, finetune mode:", "run:"), ()),
                                (["visual", "prepare"], ("data:", "face crops:", "run:", "--contact-sheet"),
                                 ("training:", "--epochs"))):
        with pytest.raises(SystemExit) as exit_:
            main([*argv, "--help"])
        out = capsys.readouterr().out
        assert exit_.value.code == 0 and all(text in out for text in shown), out
        assert not any(text in out for text in hidden), out


def test_an_option_the_mode_ignores_is_refused_on_the_command_line(capsys):
    assert main(["audio", "train", "--backbone", "egemaps", "--epochs", "3"]) == 1
    assert "--epochs 3: not used by offline mode (backbone 'egemaps')" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--c-grid .*: not used by finetune mode"):
        _audio_train_config(["--backbone", "facebook/wav2vec2-base", "--c-grid", "0.1"])
