"""The corpus-general core: a CSV corpus with 8 labels end to end, IEMOCAP with leave-one-session-out,
RAVDESS with all 8 emotions, runs that never overwrite each other, replay from config.json."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import shared
from mer_utils.cli import main
from mer_utils.core.atomic_io import read_json
from mer_utils.core.checkpoint_index import read_index
from mer_utils.core.predictions import labels_of, read_predictions
from mer_utils.data.manifest import build_manifest, corpus_info, prepare_manifest
from mer_utils.protocols.splits import make_split

# RAVDESS emotion codes -> free-form label strings, as a user's own CSV might spell them.
WORDS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
         "07": "disgust", "08": "surprised"}


@pytest.fixture(scope="module")
def csv_corpus(tmp_path_factory) -> Path:
    """Six RAVDESS actors, two clips of each of the 8 emotions, listed in a CSV with relative paths."""
    root = tmp_path_factory.mktemp("csv_corpus")
    rows = []
    for actor in range(1, 7):
        folder = root / "audio" / f"spk{actor}"
        folder.mkdir(parents=True)
        for code, word in WORDS.items():
            for name in sorted(shared("ravdess-dev", f"Actor_{actor:02d}").glob(f"03-01-{code}-*.wav"))[:2]:
                shutil.copy(name, folder / name.name)
                rows.append({"path": f"audio/spk{actor}/{name.name}", "speaker": f"spk{actor}", "emotion": word,
                             "sex": "Male" if actor % 2 else "Female"})
    pd.DataFrame(rows).to_csv(root / "corpus.csv", index=False)
    return root / "corpus.csv"


@pytest.fixture(scope="module")
def csv_run(csv_corpus, tmp_path_factory):
    base = tmp_path_factory.mktemp("csv_run")
    args = ["audio", "train", "--data-root", str(csv_corpus), "--protocol", "speaker", "--backbone", "librosa",
            "--outputs", str(base / "outputs"), "--checkpoints", str(base / "checkpoints"), "--no-progress"]
    assert main(args) == 0
    (run_dir,) = [p.parent for p in (base / "outputs" / "audio").glob("csv-corpus-*/*/metrics.json")]
    return base, run_dir, args


def test_csv_corpus_trains_with_its_own_eight_labels(csv_run):
    base, run_dir, _ = csv_run
    labels = ("angry", "calm", "disgust", "fearful", "happy", "neutral", "sad", "surprised")
    test = read_predictions(run_dir / "predictions_test.csv", expected_labels=labels)
    assert labels_of(test) == labels and [c for c in test.columns if c.startswith("p_")] == [f"p_{x}" for x in labels]
    assert set(test["y_true"]) == set(labels) and len(test) == 16  # one held-out speaker, 2 clips x 8
    metrics = read_json(run_dir / "metrics.json")
    assert metrics["corpus"] == "csv:corpus" and metrics["labels"] == list(labels)
    # Scored clip by clip unless asked otherwise (prior matching is refused outright on such a corpus).
    assert metrics["adaptation"] == "none" and metrics["folds"][0]["adaptation"] == "none"
    (entry,) = read_index(base / "checkpoints")
    assert entry["labels"] == list(labels) and entry["corpus"] == "csv:corpus" and entry["synthetic"] is False
    # A corpus other than CREMA-D keeps its checkpoints in a folder of its own.
    assert (base / "checkpoints" / "csv-corpus" / "best_audio_librosa_speaker_indep.safetensors").exists()


def test_a_rerun_with_other_settings_leaves_the_first_run_untouched(csv_run):
    base, run_dir, args = csv_run

    def digest(folder: Path) -> dict:
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    before = digest(run_dir)
    assert main(args + ["--c-grid", "1.0"]) == 0
    runs = sorted(p.parent for p in run_dir.parent.glob("*/metrics.json"))
    assert len(runs) == 2 and digest(run_dir) == before
    other = next(r for r in runs if r != run_dir)
    assert read_json(other / "config.json")["c_grid"] == [1.0]
    # The index points at the newest run of (corpus, modality, protocol); the first run's own model stays.
    (entry,) = read_index(base / "checkpoints")
    assert entry["run_dir"] == str(other.resolve()) and (run_dir / "best_model.safetensors").exists()


def test_a_run_replays_from_its_config_into_the_same_folder(csv_run, capsys):
    base, run_dir, args = csv_run
    before = read_json(run_dir / "fold0" / "done.json")
    assert main(["audio", "train", "--config", str(run_dir / "config.json"), "--no-progress"]) == 0
    assert f"run: {run_dir}" in capsys.readouterr().out  # same settings: same folder, finished fold reused
    assert read_json(run_dir / "fold0" / "done.json") == before
    # An option typed beside --config wins over the replayed file: another setting, another folder.
    assert main(["audio", "train", "--config", str(run_dir / "config.json"), "--c-grid", "0.1", "--no-progress"]) == 0
    assert f"run: {run_dir}" not in capsys.readouterr().out


def test_a_finished_fold_edited_by_hand_is_refused_by_the_resumed_run_naming_it(csv_run, capsys):
    base, run_dir, args = csv_run
    path = run_dir / "fold0" / "predictions.csv"
    original = path.read_bytes()
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.assign(split="random_seed0").to_csv(path, index=False)
    try:
        assert main(args) == 1  # the fold is not retrained over the edit, nor pooled into the run's results
        err = capsys.readouterr().err
        assert str(path) in err and "expected 'speaker_seed0'" in err
    finally:
        path.write_bytes(original)


def test_a_split_remade_under_its_name_gets_a_folder_of_its_own(csv_run, monkeypatch):
    import mer_utils.protocols.prepare as prepare

    base, run_dir, args = csv_run
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}

    def remade(*a, **k):  # the same name, validation and test speakers swapped (other files, another version)
        split = make_split(*a, **k)
        return split.assign(subset=split["subset"].replace({"val": "test", "test": "val"}))

    monkeypatch.setattr(prepare, "make_split", remade)
    assert main(args) == 0
    first = read_json(run_dir / "settings.json")
    (other,) = [p.parent for p in run_dir.parent.glob("*/settings.json")
                if p.parent != run_dir and read_json(p)["split"] != first["split"]]
    assert read_json(other / "settings.json") == {**first, "split": read_json(other / "settings.json")["split"]}
    assert first["split"].startswith("speaker_seed0-")
    assert other.name.rsplit("-", 1)[0] == run_dir.name.rsplit("-", 1)[0]  # the same run name, another hash
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()} == before  # nothing overwritten


def test_labels_of_one_corpus_are_refused_by_a_run_of_another(csv_run, tmp_path):
    from mer_utils.core.predictions import PredictionsError

    _, run_dir, _ = csv_run
    with pytest.raises(PredictionsError, match="another label set"):
        read_predictions(run_dir / "predictions_test.csv", expected_labels=("ANG", "DIS", "FEA", "HAP", "NEU", "SAD"))


def _write_iemocap(root: Path) -> None:
    """Five sessions, two speakers each, utterances of six IEMOCAP categories (audio from RAVDESS)."""
    wave, rate = sf.read(sorted(shared("ravdess-dev", "Actor_01").glob("*.wav"))[0])
    categories = ("neu", "hap", "exc", "ang", "sad", "fru")
    for session in range(1, 6):
        dialog = f"Ses{session:02d}F_impro01"
        wav_dir = root / f"Session{session}" / "sentences" / "wav" / dialog
        eval_dir = root / f"Session{session}" / "dialog" / "EmoEvaluation"
        wav_dir.mkdir(parents=True)
        eval_dir.mkdir(parents=True)
        lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        for speaker in "FM":
            for k, category in enumerate(categories):
                utt = f"{dialog}_{speaker}{k:03d}"
                sf.write(wav_dir / f"{utt}.wav", wave * (0.5 + 0.1 * k), rate)
                lines += [f"[{k}.0000 - {k + 1}.5000]\t{utt}\t{category}\t[2.5000, 2.5000, 2.5000]",
                          f"C-E1:\t{category.title()};\t()", ""]
        (eval_dir / f"{dialog}.txt").write_text("\n".join(lines))


def test_iemocap_reader_gives_four_classes_and_leave_one_session_out(tmp_path):
    _write_iemocap(tmp_path / "IEMOCAP_full_release")
    result = build_manifest(tmp_path / "IEMOCAP_full_release", progress=False)  # detected from Session1..5/
    manifest, info = result.manifest, result.corpus
    assert info.name == "iemocap" and info.labels == ("ANG", "HAP", "NEU", "SAD") and info.group_column == "session"
    # Excited is merged into happy; frustrated is not one of the four and is left out.
    assert len(manifest) == 5 * 2 * 5 and (manifest["emotion"] == "HAP").sum() == 5 * 2 * 2
    assert sorted(manifest["actor_id"].unique())[:2] == ["Ses01F", "Ses01M"] and (manifest["audio_status"] == "ok").all()
    split = make_split(manifest, protocol="loso")
    assert split.attrs["info"]["n_folds"] == 5 and split["split"].iloc[0] == "loso_seed0"
    session_of = manifest.set_index("clip_id")["session"]
    for fold, group in split.groupby("fold"):
        test_sessions = set(session_of[group.loc[group["subset"] == "test", "clip_id"]])
        train_sessions = set(session_of[group.loc[group["subset"] != "test", "clip_id"]])
        assert len(test_sessions) == 1 and not test_sessions & train_sessions
    assert all(row["shared_train_test"] == row["shared_val_test"] == 0 for row in split.attrs["info"]["actor_overlap"])
    with pytest.raises(ValueError, match="declares no group column"):
        make_split(build_manifest(shared("ravdess-dev"), progress=False).manifest, protocol="loso")


def test_ravdess_keeps_all_eight_emotions_through_the_manifest_cache(tmp_path):
    from mer_utils.experts.audio.loading import ClipSet

    manifest = prepare_manifest(shared("ravdess-dev"), outputs=tmp_path, progress=False, dataset="ravdess",
                                keep_all_emotions=True)
    info = corpus_info(manifest)
    assert info.labels == ("ANG", "CAL", "DIS", "FEA", "HAP", "NEU", "SAD", "SUR") and len(manifest) == 720
    split = make_split(manifest, protocol="speaker")
    train = split.loc[split["subset"] == "train", "clip_id"].tolist()
    clips = ClipSet.from_manifest(manifest, shared("ravdess-dev"), train, labels=info.labels)
    assert {"CAL", "SUR"} <= set(clips.labels) and clips.label_indices().max() == 7
    six = prepare_manifest(shared("ravdess-dev"), outputs=tmp_path, progress=False)
    assert corpus_info(six).labels == ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD") and len(six) == 528
    with pytest.raises(ValueError, match="lists CREMA-D clips"):
        make_split(six, protocol="ogm-ge", published_dir=shared("published-splits"))


def test_a_csv_corpus_with_a_blank_label_names_the_line(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    pd.DataFrame({"path": ["a.wav", "a.wav"], "speaker": ["s1", "s2"], "emotion": ["happy", " "]}).to_csv(
        tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match=r"bad.csv: column 'emotion' is blank on 1 rows \(first: CSV line 3\)"):
        build_manifest(tmp_path / "bad.csv", progress=False)


def test_run_all_seed_reaches_the_synthetic_corpus(monkeypatch, tmp_path):
    import mer_utils.protocols.prepare as synth  # where run-all looks the generator up

    seen = []

    def fake_corpus(folder, *, seed, progress):
        seen.append((Path(folder).name, seed))
        raise RuntimeError("stop after the corpus")

    monkeypatch.setattr(synth, "make_synthetic_corpus", fake_corpus)
    for seed in ("0", "1"):
        assert main(["run-all", "--seed", seed, "--outputs", str(tmp_path), "--quiet"]) == 1
    assert seen == [("synthetic_cremad_v1_seed0", 0), ("synthetic_cremad_v1_seed1", 1)]
    assert np.unique([name for name, _ in seen]).size == 2


def test_acted_corpora_declare_balanced_speakers_and_older_sidecars_get_the_declaration(tmp_path):
    from mer_utils.core.atomic_io import read_json, write_json
    from mer_utils.data.manifest import reader
    from mer_utils.data.manifest import build_manifest, load_manifest, write_manifest

    assert reader("cremad").corpus_info().balanced_speakers and reader("ravdess").corpus_info().balanced_speakers
    assert not reader("iemocap").corpus_info().balanced_speakers and not reader("csv").corpus_info().balanced_speakers
    path, _ = write_manifest(build_manifest(shared("ravdess-dev"), progress=False), tmp_path / "ravdess.csv")
    sidecar = read_json(path.with_suffix(".json"))
    del sidecar["corpus"]["balanced_speakers"]  # as written before the field existed
    write_json(path.with_suffix(".json"), sidecar)
    assert load_manifest(path).attrs["corpus"]["balanced_speakers"] is True
