"""`mer app` in a real browser: headless Chromium uploads a real CREMA-D video, records from a fake camera fed
with a real clip, and uploads a text file renamed .mp4; the page must answer the first two (probabilities,
provenance, figure) and explain the third.

Needs Chromium and its driver (`apt-get install chromium chromium-driver`; `.ci/run` installs them) and the
`app` and `test` extras. Without Chromium the tests skip, except in CI, where they must run.
"""

from __future__ import annotations

import os

import pytest

from conftest import shared

pytestmark = pytest.mark.slow


def _needs_browser():
    from browser_driver import find_chromium

    missing = []
    if find_chromium() is None:
        missing.append("Chromium and chromedriver (apt-get install chromium chromium-driver)")
    for module, extra in (("selenium", "test"), ("gradio", "app")):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"{module} (pip install -e .[{extra}])")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"{message}, but CI is set: .ci/run installs them")
        pytest.skip(message)


@pytest.fixture(scope="module")
def app_url(request, tmp_path_factory):
    _needs_browser()  # before training the speech expert the app serves: a skip costs nothing
    from browser_driver import serve

    checkpoints = request.getfixturevalue("real_speech_checkpoints")
    with serve(checkpoints, log=tmp_path_factory.mktemp("app") / "mer_app.log") as url:
        yield url


@pytest.fixture
def browser():
    from browser_driver import chromium_driver

    drivers = []

    def make(**fake):
        drivers.append(chromium_driver(**fake))
        return drivers[-1]

    yield make
    for driver in drivers:
        driver.quit()


def test_an_uploaded_real_video_is_answered_with_real_models_and_their_provenance(app_url, browser):
    from browser_driver import read_page, upload

    driver = browser()
    upload(driver, app_url, shared("crema-d-sample", "VideoFlash", "1001_DFA_ANG_XX.flv"))
    page = read_page(driver)
    assert "Top emotion:" in page["answer"] and "Intended emotion (from the file name): anger" in page["answer"]
    assert "untuned" in page["answer"]
    assert set(page["table"]) == {"anger", "disgust", "fear", "happy", "neutral", "sad"}
    fused = [float(row[2]) for row in page["table"].values()]
    assert abs(sum(fused) - 1) < 0.01 and all(row[0] != "n/a" and row[1] != "n/a" for row in page["table"].values())
    # Real-first: the speech expert trained on RAVDESS (real) and the FER2013 face model, zero-shot.
    assert "Speech expert: ravdess (real data); protocol speaker" in page["provenance"]
    assert "single clip" in page["provenance"] and "CC BY-NC-SA 4.0" in page["provenance"]
    assert "Face expert: FER2013 mini-Xception, zero-shot" in page["provenance"]
    assert page["figure_loaded"]
    if os.environ.get("MER_APP_SCREENSHOT"):  # the documentation's figure: docs/figures/app_real_clip.png
        driver.save_screenshot(os.environ["MER_APP_SCREENSHOT"])


def test_a_recording_from_the_webcam_is_answered(app_url, browser, tmp_path):
    from browser_driver import read_page, record_webcam, write_fake_capture

    video, audio = write_fake_capture(shared("crema-d-sample", "VideoFlash", "1001_DFA_HAP_XX.flv"), tmp_path)
    driver = browser(fake_video=video, fake_audio=audio)
    record_webcam(driver, app_url, seconds=2.5)
    page = read_page(driver)
    assert "Top emotion:" in page["answer"], page["answer"]
    assert "Audio from: audio track of" in page["provenance"] and page["figure_loaded"]
    assert all(row[1] != "n/a" for row in page["table"].values())  # the face expert saw the recorded frames


def test_a_file_it_cannot_read_gets_a_message_not_a_stack_trace(app_url, browser, tmp_path):
    from browser_driver import read_page, upload

    bad = tmp_path / "notes.mp4"
    bad.write_text("meeting notes, not a video\n")
    driver = browser()
    upload(driver, app_url, bad)
    page = read_page(driver)
    assert "Could not analyse notes.mp4" in page["answer"]
    assert "neither an image nor a readable audio/video file" in page["answer"]
    assert "give a video (FLV/MP4), a recording (WAV/MP3/M4A) or a face image" in page["answer"]
    assert "Traceback" not in page["source"] and str(tmp_path) not in page["answer"]
