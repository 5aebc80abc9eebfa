"""``make_report`` / ``mer report`` on fake expert runs and their fusion."""

from __future__ import annotations

import hashlib
import re

import pandas as pd
import pytest
from conftest import shared
from fusion_fakes import fake_manifest, write_expert_pair

from mer_utils.core.atomic_io import read_json, write_csv
from mer_utils.cli import main
from mer_utils.fusion.run import fuse_runs
from mer_utils.data.manifest import default_manifest_path
from mer_utils.report.build import make_report
from mer_utils.report.collect import collect_runs


def _clip_ids(*run_dirs) -> list[str]:
    ids = set()
    for run_dir in run_dirs:
        for subset in ("val", "test"):
            ids |= set(pd.read_csv(run_dir / f"predictions_{subset}.csv")["clip_id"])
    return sorted(ids)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    outputs = root / "outputs"
    corpus = root / "corpus"
    # The experts prepared their data under another outputs folder (as a Colab user on Drive might).
    prep = root / "prep_outputs"
    extra = {"data_root": str(corpus), "outputs": str(prep)}
    random_runs = write_expert_pair(outputs, protocol="random", n_per_class=20, config_extra=extra)
    speaker_runs = write_expert_pair(outputs, protocol="speaker-kfold", n_folds=2, split="speaker-kfold2_seed0",
                                     n_per_class=10, seed=1, config_extra=extra)
    for audio, visual in (random_runs, speaker_runs):
        fuse_runs(audio, visual, outputs=outputs, n_bootstrap=100, checkpoints=None,
                  strategies=["weighted_average", "max_confidence", "stacking"])
    # The manifest where the experts' config (data_root) says prepare_manifest caches it.
    write_csv(default_manifest_path(corpus, prep), fake_manifest(_clip_ids(*random_runs, *speaker_runs)))
    (outputs / "audio" / "unfinished").mkdir()
    (outputs / "audio" / "unfinished" / "config.json").write_text("{}")
    return outputs


@pytest.fixture(scope="module")
def report(outputs):
    return make_report(outputs)


def test_collect_lists_finished_runs_in_order_and_reports_unfinished(outputs):
    collected = collect_runs(outputs)
    # Fusion folders end in the hash of their settings and expert runs.
    assert [re.sub(r"-[0-9a-f]{8}$", "", run) for run in collected.runs["run"]] == [
        "audio/random_egemaps_seed0", "audio/speaker-kfold_egemaps_seed0",
        "visual/random_hog_seed0", "visual/speaker-kfold_hog_seed0",
        "fusion/random_seed0_egemaps-hog", "fusion/speaker-kfold2_seed0_egemaps-hog",
    ]
    assert collected.skipped.to_dict("records") == [
        {"run": "audio/unfinished", "reason": "no metrics.json (unfinished or failed run)"}]


def test_model_table_numbers_trace_to_their_run_folder(outputs, report):
    models = pd.read_csv(report.parent / "tables" / "models.csv")
    for _, row in models.iterrows():
        metrics = read_json(outputs / row["runs"] / "metrics.json")
        assert row["test_ua_mean"] == pytest.approx(metrics["summary"]["test"]["ua"]["mean"], abs=1e-6)
        assert row["n_test"] == metrics["summary"]["test"]["ua"]["n"]
    sources = pd.read_csv(report.parent / "sources.csv")
    config = outputs / "audio" / "random_egemaps_seed0" / "config.json"
    row = sources.set_index("run").loc["audio/random_egemaps_seed0"]
    assert row["config_sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()
    text = (report.parent / "tables" / "models.md").read_text()
    assert "| audio | egemaps | speaker-kfold | single clip | 2 |" in text and " ± " in text


def test_fusion_and_gap_tables(report):
    fusion = pd.read_csv(report.parent / "tables" / "fusion.csv")
    assert set(fusion["method"]) == {"audio", "visual", "weighted_average", "max_confidence", "stacking"}
    assert fusion.groupby("run")["chosen"].sum().tolist() == [1, 1]
    gap = pd.read_csv(report.parent / "tables" / "protocol_gap.csv")
    assert gap["modality"].tolist() == ["audio", "visual", "audio_visual"]
    assert gap["gap_ua"].to_numpy() == pytest.approx((gap["random_ua"] - gap["speaker_ua"]).to_numpy(), abs=2e-6)
    latex = (report.parent / "tables" / "fusion.tex").read_text()
    assert r"weighted\_average" in latex and r"\begin{tabular}" in latex and r"\label{tab:fusion}" in latex


def test_breakdown_uses_the_manifest_the_runs_were_trained_on(outputs, report):
    breakdown = pd.read_csv(report.parent / "tables" / "breakdown.csv")
    assert set(breakdown["factor"]) == {"sex", "age_group", "intensity", "emotion"}
    assert breakdown["run"].nunique() == 6
    sex = breakdown[(breakdown["run"] == "audio/random_egemaps_seed0") & (breakdown["factor"] == "sex")]
    n_test = len(pd.read_csv(outputs / "audio" / "random_egemaps_seed0" / "predictions_test.csv"))
    assert set(sex["group"]) == {"Female", "Male"} and sex["n"].sum() == n_test
    for name in ("breakdown_random", "confusion_speaker-kfold", "per_class_f1_random", "protocol_gap"):
        assert (report.parent / "figures" / f"{name}.png").stat().st_size > 5_000


def test_without_metadata_the_report_says_how_to_add_human_rows(report):
    text = report.read_text()
    assert "pass --metadata DIR" in text
    assert "`audio/unfinished`: no metrics.json" in text
    assert not (report.parent / "tables" / "human.csv").exists()


def test_regenerating_gives_identical_files(outputs, report):
    def digest(folder):
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    before = digest(report.parent)
    make_report(outputs)
    assert digest(report.parent) == before and len(before) > 15


def test_human_rows_from_the_crema_d_metadata(outputs, tmp_path):
    meta = shared("crema-d-meta", "processedResults")
    report = make_report(outputs, out_dir=tmp_path / "with_human", metadata=meta.parent, figures=False)
    human = pd.read_csv(report.parent / "tables" / "human.csv").set_index("mode")
    assert human.loc["voice", "paper_accuracy"] == pytest.approx(0.409)
    # Recomputed from the raw votes, within a point of the paper's figures.
    for mode in ("voice", "face", "audio_visual"):
        assert abs(human.loc[mode, "per_response_accuracy"] - human.loc[mode, "paper_accuracy"]) < 0.01
    assert "## Human perception" in report.read_text()


def test_missing_manifest_skips_the_breakdown_with_a_note(tmp_path):
    outputs = tmp_path / "outputs"
    write_expert_pair(outputs, protocol="random", n_per_class=6)
    text = make_report(outputs, figures=False).read_text()
    assert "no manifest covering its clips" in text and "--manifest PATH" in text
    assert "No fusion run yet" in text


def test_cli_report(outputs, tmp_path, capsys):
    assert main(["report", "--outputs", str(outputs), "--out", str(tmp_path / "cli"), "--no-figures"]) == 0
    assert "# Results" in capsys.readouterr().out
    assert (tmp_path / "cli" / "tables" / "models.tex").exists() and not (tmp_path / "cli" / "figures").exists()
    assert main(["report", "--outputs", str(tmp_path / "empty")]) == 1
    assert "train an expert first" in capsys.readouterr().err


def test_adapted_runs_get_their_own_rows_footnote_and_no_mixed_pairs(outputs, tmp_path):
    """A run scored with other test clips' statistics is a row of its own, after every single-clip row,
    paired only with a run scored alike, with a footnote that says what it used."""
    import json
    import shutil

    copy = tmp_path / "outputs"
    shutil.copytree(outputs, copy)
    (source,) = [p for p in (copy / "audio").iterdir() if p.name.startswith("random")]
    adapted = source.with_name(source.name + "_adapt-balanced")
    shutil.copytree(source, adapted)
    metrics = read_json(adapted / "metrics.json")
    (adapted / "metrics.json").write_text(json.dumps({**metrics, "adaptation": "balanced"}))
    report = make_report(copy, figures=False)
    models = pd.read_csv(report.parent / "tables" / "models.csv")
    assert models["adaptation"].tolist()[-1] == "balanced" and (models["adaptation"] == "balanced").sum() == 1
    assert set(models["adaptation"].iloc[:-1]) == {"none"}  # never ranked among the single-clip rows
    text = report.read_text()
    assert "| audio | egemaps | random | adapted: speaker+sentence+prior |" in text
    assert 'Scoring "single clip" (none): each test clip is scored alone' in text
    assert 'Scoring "adapted: speaker+sentence+prior" (balanced):' in text and "never pooled, paired" in text
    gap = pd.read_csv(report.parent / "tables" / "protocol_gap.csv")
    assert set(gap["adaptation"]) == {"none"}  # the adapted random run has no adapted speaker run to pair with


def test_published_results_sit_beside_ours_only_like_for_like(report):
    published = pd.read_csv(report.parent / "tables" / "published.csv")
    by_method = published.set_index("method")
    # Selected on test: no row of ours can be like for like.
    assert by_method.loc["OGM-GE (Peng et al.)", "ours_note"].startswith("none: that number was selected on test")
    assert "best epoch on the test fold" in by_method.loc["HiCMAE-B (Sun et al.)", "selection"]
    # Validation-selected, single clip, actor-independent: the speaker-independent audio run sits beside it.
    assert by_method.loc["EVAR linear probes (M2D, BYOL-A)", "ours_run"].startswith("audio/speaker-kfold")
    assert "no single-clip audio_visual run" not in str(by_method.loc["HiCMAE-B (Sun et al.)", "ours_note"])
    assert "Published results, and ours where like for like" in report.read_text()


def test_published_table_places_a_matching_real_cremad_run():
    from mer_utils.report.tables import published_table

    models = pd.DataFrame([{"corpus": "cremad", "adaptation": "none", "modality": "audio", "protocol": "speaker",
                            "test_ua_mean": 0.61, "test_wa_mean": 0.62, "runs": "audio/x"},
                           {"corpus": "cremad", "adaptation": "balanced", "modality": "audio", "protocol": "speaker",
                            "test_ua_mean": 0.9, "test_wa_mean": 0.9, "runs": "audio/y"}])
    numbers, display = published_table(models)
    evar = numbers.set_index("method").loc["EVAR linear probes (M2D, BYOL-A)"]
    assert evar["ours_run"] == "audio/x" and evar["ours_test_ua"] == pytest.approx(0.61)  # never the adapted row
    assert (numbers.loc[numbers["ours_run"] == "audio/x", "split"] == "speaker").all()
