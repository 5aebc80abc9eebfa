"""Shared fixtures: the reference data in ../shared/data and small corpora."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared(*parts: str) -> Path:
    """Path under ../shared/data, skipping the test when it is absent (failing it when ``CI`` is set)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        message = f"reference data {path} not available"
        if os.environ.get("CI"):
            # CI has ../shared/data: a test that silently skips there tests nothing.
            pytest.fail(f"{message}, but CI is set: the shared data folder must be present in CI")
        pytest.skip(message)
    return path


def rescored_test_clips(expert, corpus: Path, result):
    """Every test clip of a finished audio run scored again by ``expert`` (its checkpoint) with the clips'
    speaker and sentence ids, and the probabilities the run wrote for them: ``(rescored, written)``."""
    from mer_utils.core.predictions import read_predictions
    from mer_utils.data.cremad_vocabulary import PROB_COLUMNS
    from mer_utils.data.manifest import default_manifest_path, load_manifest

    test = read_predictions(result.run_dir / "predictions_test.csv")
    manifest = load_manifest(default_manifest_path(corpus, result.run_dir.parents[2])).set_index("clip_id")
    rows = manifest.loc[test["clip_id"]]
    paths = [corpus / path for path in rows["audio_path"]]
    rescored = expert.predict_proba(paths, speakers=rows["actor_id"].to_numpy(), sentences=rows["sentence"].to_numpy())
    return rescored, test[list(PROB_COLUMNS)].to_numpy()


@pytest.fixture(scope="session")
def full_listing_manifest() -> pd.DataFrame:
    """A manifest of the whole official corpus built from the real metadata,
    with every medium marked ok (no media needed), for split tests."""
    from mer_utils.data.cremad_vocabulary import parse_clip_id
    from mer_utils.data.cremad import _demographics

    meta = shared("crema-d-meta")
    names = pd.read_csv(meta / "SentenceFilenames.csv")["Filename"].map(parse_clip_id)
    frame = pd.DataFrame([n._asdict() for n in names])
    frame = frame.merge(_demographics(meta / "VideoDemographics.csv"), on="actor_id", how="left")
    from mer_utils.data.cremad import corpus_info

    frame = frame.assign(audio_status="ok", video_status="ok", audio_path="AudioWAV/" + frame["clip_id"] + ".wav",
                         video_path="VideoFlash/" + frame["clip_id"] + ".flv")
    frame.attrs["corpus"] = corpus_info().to_dict()
    return frame


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory) -> Path:
    """A small synthetic CREMA-D-shaped corpus, built once per test session."""
    from mer_utils.data.synthetic.corpus import make_synthetic_corpus

    return make_synthetic_corpus(tmp_path_factory.mktemp("synth") / "corpus", n_actors=8,
                                 sentences=("DFA", "IEO", "ITS"), seed=0)


@pytest.fixture(scope="session")
def real_speech_checkpoints(tmp_path_factory) -> Path:
    """A checkpoint folder holding a real speech expert: six actors of ../shared/data/ravdess-dev (linked, read
    as RAVDESS), speaker-independent, eGeMAPS, each clip scored alone (about 12 s), and the FER2013 weights."""
    from mer_utils.experts.audio.train import train_audio
    from mer_utils.experts.visual.fer2013 import ensure_fer2013_weights

    ravdess, base = shared("ravdess-dev"), tmp_path_factory.mktemp("real_speech")
    root = base / "ravdess"
    root.mkdir()
    for actor in range(1, 7):
        (root / f"Actor_{actor:02d}").symlink_to(ravdess / f"Actor_{actor:02d}", target_is_directory=True)
    checkpoints = base / "checkpoints"
    ensure_fer2013_weights(checkpoints, cache_dir=REPO / "checkpoints" / ".cache")
    train_audio(data_root=str(root), protocol="speaker", backbone="egemaps",
                outputs=str(base / "outputs"), checkpoints=str(checkpoints), progress=False)
    return checkpoints
