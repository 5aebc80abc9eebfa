"""Drive ``mer app`` in headless Chromium (Selenium), as a user would: what the browser tests and the
documentation's screenshot use.

:func:`serve` starts ``mer app`` in a subprocess on a free port and waits for its URL; :func:`chromium_driver`
opens headless Chromium, optionally with a fake camera and microphone fed from files
(:func:`write_fake_capture` makes them from a real clip, with OpenCV and soundfile, no ffmpeg); then
:func:`upload`, :func:`record_webcam` and :func:`read_page`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

_BROWSERS = ("chromium", "chromium-browser", "google-chrome")
_DRIVERS = ("chromedriver", "chromium-driver")
_SERVING = "mer app: serving on "


def find_chromium() -> tuple[str, str] | None:
    """``(browser, driver)`` executables, or None when either is missing (Debian: ``apt-get install chromium
    chromium-driver``)."""
    browser = next((p for name in _BROWSERS if (p := shutil.which(name))), None)
    driver = next((p for name in _DRIVERS if (p := shutil.which(name))), None)
    return (browser, driver) if browser and driver else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve(checkpoints, *, log: str | os.PathLike, timeout_s: float = 120.0, extra=()):
    """``mer app`` on 127.0.0.1 and a free port, in a subprocess; yields its URL and stops it afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "mer_utils", "app", "--checkpoints", str(checkpoints), "--port", str(port),
               *map(str, extra)]
    repo = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)}
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout_s
        while _SERVING not in (text := Path(log).read_text()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"`{' '.join(command)}` did not start serving (exit {process.poll()}):\n"
                                   f"{text[-3000:]}")
            time.sleep(0.2)
        yield text.split(_SERVING, 1)[1].split()[0]
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def chromium_driver(*, fake_video=None, fake_audio=None, width: int = 1400, height: int = 2100):
    """Headless Chromium; with ``fake_video`` (a .y4m) and ``fake_audio`` (a .wav) the camera and microphone
    play those files, and the permission prompt is answered yes."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if found is None:
        raise RuntimeError("Chromium and its driver are needed: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}"):
        options.add_argument(argument)
    if fake_video or fake_audio:
        options.add_argument("--use-fake-device-for-media-stream")
        options.add_argument("--use-fake-ui-for-media-stream")
    if fake_video:
        options.add_argument(f"--use-file-for-fake-video-capture={fake_video}")
    if fake_audio:
        options.add_argument(f"--use-file-for-fake-audio-capture={fake_audio}")
    return webdriver.Chrome(service=Service(found[1]), options=options)


def write_fake_capture(video: str | os.PathLike, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """A real clip as what Chromium's fake devices play: its frames as a Y4M (4:2:0) and its sound as a WAV."""
    import cv2
    import soundfile as sf

    from mer_utils.data.media_health import SAMPLE_RATE
    from mer_utils.data.media_health import read_audio_track
    from mer_utils.experts.visual.video import read_all_frames

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = read_all_frames(video)
    height, width = frames[0].shape[:2]
    y4m, wav = out_dir / f"{Path(video).stem}.y4m", out_dir / f"{Path(video).stem}.wav"
    with open(y4m, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F30000:1001 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            handle.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    sf.write(wav, read_audio_track(video), SAMPLE_RATE)
    return y4m, wav


def _by():
    from selenium.webdriver.common.by import By

    return By


def _open(driver, url: str, tab: str) -> None:
    driver.get(url)
    _wait(driver, lambda: driver.find_elements(_by().ID, "mer-answer"), 60, "the app page")
    for button in driver.find_elements(_by().CSS_SELECTOR, "button[role='tab']"):
        if button.is_displayed() and button.text.strip() == tab:
            driver.execute_script("arguments[0].click();", button)
            return
    raise RuntimeError(f"no tab {tab!r} on the page")


def upload(driver, url: str, path: str | os.PathLike) -> None:
    """Open the app and give it a file in the "Upload a file" tab."""
    _open(driver, url, "Upload a file")
    driver.find_element(_by().CSS_SELECTOR, "#mer-upload input[type=file]").send_keys(str(path))


def record_webcam(driver, url: str, *, seconds: float = 2.5) -> None:
    """Open the app, allow the camera, record ``seconds`` in the "Record a video" tab and stop."""
    by = _by()
    _open(driver, url, "Record a video")
    _wait(driver, lambda: driver.find_elements(by.CSS_SELECTOR, "#mer-webcam button"), 10, "the webcam button")
    driver.find_element(by.CSS_SELECTOR, "#mer-webcam button").click()  # "Click to Access Webcam"
    record = "#mer-webcam button.capture-button"
    _wait(driver, lambda: driver.find_elements(by.CSS_SELECTOR, record), 20, "the record button")
    driver.find_element(by.CSS_SELECTOR, record).click()
    time.sleep(seconds)
    driver.find_element(by.CSS_SELECTOR, record).click()  # stop: the recording is sent


def read_page(driver, *, timeout_s: float = 90.0) -> dict:
    """Wait for an answer (or a message) and return what the page shows: ``answer``, ``provenance``,
    ``table`` ({emotion: [audio, visual, fused] texts}), ``figure_loaded`` (the figure image decoded)."""
    by = _by()

    def answered():
        text = driver.find_element(by.ID, "mer-answer").text
        return text if ("Top emotion" in text or "Could not analyse" in text) else ""

    answer = _wait(driver, answered, timeout_s, "an answer")
    time.sleep(1.0)  # the other outputs of the same event land together; let them render
    # Gradio's table is a grid of cells, each with its row and column.
    cells = driver.execute_script(
        "return [...document.querySelectorAll('#mer-probabilities [role=gridcell]')]"
        ".map(c => [Number(c.dataset.row), Number(c.dataset.col), c.textContent.trim()]);")
    rows: dict = {}
    for row, col, text in cells:
        rows.setdefault(row, {})[col] = text
    table = {r[0]: [r.get(c, "") for c in (1, 2, 3)] for r in rows.values() if 0 in r}
    figure_loaded = driver.execute_script(
        "const img = document.querySelector('#mer-figure img'); return !!img && img.complete && img.naturalWidth > 0;")
    return {"answer": answer, "provenance": driver.find_element(by.ID, "mer-provenance").text, "table": table,
            "figure_loaded": bool(figure_loaded), "source": driver.page_source}


def _wait(driver, condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise TimeoutError(f"waited {timeout_s:g} s for {what} in the browser")
