"""Sharing checkpoint sets: push, pull, sha256 verification, and the offline Hub cache.

No network here: a local folder stands in for the Hub (``local_hub``), and
the offline path runs the real ``huggingface_hub.snapshot_download`` against
a populated cache with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mer_utils.core.atomic_io import sha256_file
from mer_utils.demo.hub import fetch_checkpoints, pull_checkpoints, push_checkpoints

REPO_ID = "someone/mer-test-set"


@pytest.fixture()
def checkpoint_set(tmp_path) -> Path:
    """A small real checkpoint set: an acoustic-model file pair, a fusion rule, and the index naming them."""
    from safetensors.numpy import save_file

    from mer_utils.core.checkpoint_index import register_checkpoint

    root = tmp_path / "checkpoints"
    (root / "ravdess").mkdir(parents=True)
    weights = root / "best_audio_egemaps_speaker_indep.safetensors"
    save_file({"coef": np.arange(12, dtype=np.float32).reshape(6, 2)}, str(weights))
    weights.with_suffix(".json").write_text(json.dumps({"licence": "openSMILE: research and education only"}))
    corpus = {"name": "cremad", "labels": ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"], "synthetic": False}
    register_checkpoint(root, modality="audio", protocol="speaker", path=weights, corpus=corpus,
                        corpus_key="cremad-1234", split="speaker_seed0", backbone="egemaps", val_ua=0.512,
                        test_ua=0.498, n_clips=7442, n_speakers=91, git_commit="0123456789abcdef")
    rule = root / "best_fusion_speaker.json"
    rule.write_text(json.dumps({"format": 1, "rule": {"rule": "log_linear", "weights": [0.5, 0.5]}}))
    register_checkpoint(root, modality="fusion", protocol="speaker", path=rule, corpus=corpus,
                        corpus_key="cremad-1234", strategy="product", val_ua=0.6, test_ua=0.58)
    (root / "unrelated_notes.txt").write_text("not part of the set")
    return root


def test_push_writes_a_model_card_with_every_sha256_and_pull_restores_the_set(checkpoint_set, tmp_path):
    hub = tmp_path / "hub"
    push_checkpoints(REPO_ID, checkpoint_set, local_hub=hub, token="not-written-anywhere")
    pushed = tmp_path / "hub" / REPO_ID
    names = sorted(p.name for p in pushed.iterdir())
    assert names == ["README.md", "best_audio_egemaps_speaker_indep.json",
                     "best_audio_egemaps_speaker_indep.safetensors", "best_fusion_speaker.json", "index.json"]
    card = (pushed / "README.md").read_text()
    assert "| audio | cremad | no | speaker | speaker_seed0 | single clip | egemaps | 7442 | 91 | 0.512 | 0.498 | 01234567 |" in card
    assert "Test scoring \"single clip\": each test clip is scored alone" in card  # how the test UA was obtained
    assert "ODbL" in card and "DbCL" in card and "openSMILE: research and education only" in card
    from huggingface_hub import ModelCard

    data = ModelCard.load(pushed / "README.md").data  # the metadata the Hub reads
    assert data.license == "other" and data.library_name == "mer-utils" and "emotion-recognition" in data.tags
    assert data.mer_utils_sha256["index.json"] == sha256_file(pushed / "index.json")
    assert "not-written-anywhere" not in "".join(p.read_text(errors="ignore") for p in pushed.iterdir())

    target = pull_checkpoints(REPO_ID, tmp_path / "pulled", local_hub=hub)
    for name in ("index.json", "best_audio_egemaps_speaker_indep.safetensors", "best_fusion_speaker.json"):
        assert (target / name).read_bytes() == (checkpoint_set / name).read_bytes()
    from mer_utils.core.checkpoint_index import entry_path, find_entries

    entry = find_entries(target, modality="audio")[0]
    assert entry_path(target, entry).exists() and entry["n_speakers"] == 91


def test_a_tampered_file_is_refused_by_name(checkpoint_set, tmp_path):
    hub = tmp_path / "hub"
    push_checkpoints(REPO_ID, checkpoint_set, local_hub=hub)
    weights = tmp_path / "hub" / REPO_ID / "best_audio_egemaps_speaker_indep.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"best_audio_egemaps_speaker_indep\.safetensors does not match its sha256"):
        pull_checkpoints(REPO_ID, tmp_path / "pulled", local_hub=hub)
    assert not (tmp_path / "pulled" / "index.json").exists()  # nothing of a refused set is copied


def test_pull_never_overwrites_your_own_checkpoint_folder(checkpoint_set, tmp_path):
    hub = tmp_path / "hub"
    push_checkpoints(REPO_ID, checkpoint_set, local_hub=hub)
    before = (checkpoint_set / "index.json").read_bytes()
    with pytest.raises(FileExistsError, match="holds a checkpoint index of its own"):
        pull_checkpoints(REPO_ID, checkpoint_set, local_hub=hub)
    assert (checkpoint_set / "index.json").read_bytes() == before
    again = pull_checkpoints(REPO_ID, tmp_path / "pulled", local_hub=hub)
    assert pull_checkpoints(REPO_ID, again, local_hub=hub) == again  # a pulled set updates in place


def test_a_set_without_its_sha256_list_is_refused(tmp_path):
    (tmp_path / "hub" / REPO_ID).mkdir(parents=True)
    (tmp_path / "hub" / REPO_ID / "index.json").write_text("{}")
    with pytest.raises(ValueError, match="no model card listing its files' sha256"):
        fetch_checkpoints(REPO_ID, local_hub=tmp_path / "hub")


def test_push_refuses_a_folder_without_an_index(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint index"):
        push_checkpoints(REPO_ID, tmp_path, local_hub=tmp_path / "hub")


def _populate_hub_cache(cache: Path, repo_id: str, files: Path) -> Path:
    """The Hugging Face cache layout snapshot_download reads offline: refs/main -> snapshots/<commit>/."""
    commit = "0" * 39 + "1"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(files, repo / "snapshots" / commit)
    return repo / "snapshots" / commit


def test_offline_pull_reads_the_hub_cache_with_huggingface_hub(checkpoint_set, tmp_path, monkeypatch):
    push_checkpoints(REPO_ID, checkpoint_set, local_hub=tmp_path / "hub")
    cache = tmp_path / "hf-cache"
    snapshot = _populate_hub_cache(cache, REPO_ID, tmp_path / "hub" / REPO_ID)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert fetch_checkpoints(REPO_ID) == snapshot  # the production backend: snapshot_download(local_files_only)
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE=1 and this repository is not in the cache"):
        fetch_checkpoints("someone/never-pulled")
    (snapshot / "best_fusion_speaker.json").write_text("{}")
    with pytest.raises(ValueError, match="best_fusion_speaker.json does not match"):
        fetch_checkpoints(REPO_ID)


def test_a_card_naming_a_file_outside_the_set_is_refused(checkpoint_set, tmp_path):
    push_checkpoints(REPO_ID, checkpoint_set, local_hub=tmp_path / "hub")
    card = tmp_path / "hub" / REPO_ID / "README.md"
    card.write_text(card.read_text().replace("index.json:", "../../escape.json:", 1))
    with pytest.raises(ValueError, match="names '../../escape.json', outside the set"):
        pull_checkpoints(REPO_ID, tmp_path / "pulled", local_hub=tmp_path / "hub")
    assert not (tmp_path / "pulled").exists()


def test_the_token_is_read_by_huggingface_hub_from_the_environment(monkeypatch):
    from huggingface_hub import get_token

    # push and pull hand no token of their own: huggingface_hub reads HF_TOKEN (then its login, then Colab's secret)
    monkeypatch.setenv("HF_TOKEN", "hf_example")
    assert get_token() == "hf_example"


def test_mer_hub_push_and_pull_from_the_command_line(checkpoint_set, tmp_path, capsys):
    from mer_utils.cli import main

    hub = str(tmp_path / "hub")
    assert main(["hub", "push", REPO_ID, "--checkpoints", str(checkpoint_set), "--local-hub", hub]) == 0
    assert main(["hub", "pull", REPO_ID, "--checkpoints", str(tmp_path / "mine"), "--local-hub", hub]) == 0
    assert "every file matches its sha256" in capsys.readouterr().out
    assert (tmp_path / "mine" / "best_audio_egemaps_speaker_indep.safetensors").is_file()
    assert main(["hub", "pull", REPO_ID, "--checkpoints", str(checkpoint_set), "--local-hub", hub]) == 1
    assert "holds a checkpoint index of its own" in capsys.readouterr().err
