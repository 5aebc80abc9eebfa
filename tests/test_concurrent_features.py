"""Feature sets computed in a second process (a cold `mer predict`) equal those computed in order."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the second process is forked (Linux)")


def _waves():
    rng = np.random.default_rng(0)
    t = np.arange(16_000) / 16_000
    return [(0.3 * np.sin(2 * np.pi * f * t) + 0.01 * rng.normal(size=t.size)).astype(np.float32) for f in (140, 220)]


@pytest.mark.parametrize("groups", [{"opensmile": ["egemaps"]}, {"opensmile": ["egemaps"], "librosa": ["librosa"]}])
def test_a_forked_set_equals_the_set_computed_here(groups, monkeypatch):
    from mer_utils.experts.audio import concurrent_features as cf
    from mer_utils.experts.audio.features import extract_features

    waves, sets = _waves(), ("egemaps", "librosa")
    monkeypatch.setattr(cf, "elsewhere", lambda names: {})
    in_order = cf.start_feature_sets(waves, sets)()
    parent = os.getpid()

    def tagged(wave, name, sample_rate):  # the vector, then 1 when computed in the second process
        return np.r_[extract_features(wave, name, sample_rate=sample_rate), float(os.getpid() != parent)]

    monkeypatch.setattr(cf, "elsewhere", lambda names: groups)
    monkeypatch.setattr(cf, "extract_features", tagged)
    forked = cf.start_feature_sets(waves, sets)()
    assert list(forked) == list(sets)
    for name in sets:  # where each ran: in a process of its library's, or here
        assert (forked[name][:, -1] == float(any(name in names for names in groups.values()))).all()
    for name in sets:
        np.testing.assert_array_equal(forked[name][:, :-1], in_order[name])


def test_a_failed_second_process_is_reported_and_its_sets_computed_here(monkeypatch, caplog):
    from mer_utils.experts.audio import concurrent_features as cf
    from mer_utils.experts.audio.features import extract_features

    parent = os.getpid()

    def dies_in_the_child(wave, name, sample_rate):
        if os.getpid() != parent:
            os._exit(3)  # the worker is killed mid-way
        return extract_features(wave, name, sample_rate=sample_rate)

    monkeypatch.setattr(cf, "elsewhere", lambda names: {"opensmile": ["egemaps"]})
    monkeypatch.setattr(cf, "extract_features", dies_in_the_child)
    waves = _waves()
    result = cf.start_feature_sets(waves, ("egemaps",))()
    np.testing.assert_array_equal(result["egemaps"], np.stack([extract_features(w, "egemaps") for w in waves]))
    assert "second process failed" in caplog.text and "computed here instead" in caplog.text


def test_only_the_first_call_of_a_cold_single_threaded_process_uses_a_second_one():
    code = (
        "import sys, threading, time\n"
        "import numpy as np\n"
        "from mer_utils.experts.audio.concurrent_features import elsewhere, start_feature_sets\n"
        "cold = elsewhere(['egemaps', 'librosa', 'compare'])\n"
        "worker = threading.Thread(target=time.sleep, args=(1,)); worker.start()\n"
        "threaded = elsewhere(['egemaps'])\n"
        "worker.join()\n"
        "tone = (0.3 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 180)).astype(np.float32)\n"
        "vector = start_feature_sets([tone], ['egemaps'])()['egemaps']\n"
        "print(cold, threaded, elsewhere(['egemaps']), vector.shape, 'opensmile' in sys.modules,"
        " 'librosa' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.strip()
    # Cold: one second process per library not loaded yet (trimming silence loads none); eGeMAPS was
    # computed without loading openSMILE or librosa here. A second Python thread (a Jupyter kernel), or
    # any later call (a warm process): computed here, in order.
    assert out == "{'opensmile': ['egemaps', 'compare'], 'librosa': ['librosa']} {} {} (1, 88) False False"


def test_no_second_process_outlives_the_answer():
    """A cold process that ends with os._exit right after collecting (as `mer predict` does) leaves no
    worker behind holding its output pipe: the caller reading that pipe gets its end of file."""
    code = (
        "import os, multiprocessing\n"
        "import numpy as np\n"
        "from mer_utils.experts.audio.concurrent_features import start_feature_sets\n"
        "tone = (0.3 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 180)).astype(np.float32)\n"
        "vector = start_feature_sets([tone], ['librosa'])()['librosa']\n"
        "print(vector.shape, len(multiprocessing.active_children()), flush=True)\n"
        "os._exit(0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120).stdout.strip()
    assert out == "(1, 231) 0"
