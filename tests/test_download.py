"""`mer download` against a loopback HTTP server serving the real sample files
in the official layout, with planted faults: wrong bytes of the right size, a
404, a connection dropped mid-file, a server without range support, a stall."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
import time
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest

from mer_utils.cli import main
from mer_utils.data.download import (FAILURES_NAME, METADATA_FILES, download_cremad, load_lfs_manifest,
                                     offer_download)
from tests.conftest import shared

SAMPLE_WAVS = [f"1001_DFA_{e}_XX" for e in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")]
FAST = ["--retries", "2", "--backoff", "0.01", "--timeout", "5", "--quiet", "--jobs", "4"]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root, self.faults, self.ranges = root, {}, True
        self.requests: list[tuple[str, str | None]] = []
        self.dropped: set[str] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def hits(self, path: str) -> int:
        return sum(p == path for p, _ in self.requests)


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        server: _Server = self.server
        path = unquote(urlparse(self.path).path).lstrip("/")
        server.requests.append((path, self.headers.get("Range")))
        fault, file = server.faults.get(path), server.root / path
        if fault == "missing" or not file.is_file():
            return self.send_error(404)
        if fault == "stall":
            time.sleep(1.0)
        data = file.read_bytes()
        if fault == "corrupt":  # same size, different bytes
            data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
        start = 0
        if server.ranges and self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault == "drop" and path not in server.dropped:
            server.dropped.add(path)  # only the first request is cut short
            self.wfile.write(body[: len(body) // 2])
            return
        self.wfile.write(body)


@pytest.fixture()
def server(tmp_path):
    """The official layout (sample media + real metadata) behind 127.0.0.1."""
    root = tmp_path / "served"
    for folder in ("AudioWAV", "VideoFlash", "AudioMP3"):
        shutil.copytree(shared("crema-d-sample", folder), root / folder)
    for rel in METADATA_FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared("crema-d-meta", rel), root / rel)
    srv = _Server(root)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _official() -> dict[str, str]:
    manifest = load_lfs_manifest()
    return dict(zip(manifest["path"], manifest["sha256"]))


def _clip_args(clips=SAMPLE_WAVS) -> list[str]:
    return ["--clips", *clips]


def test_manifest_ships_every_official_file_with_the_sizes_of_the_readme():
    manifest = load_lfs_manifest()
    assert len(manifest) == 3 * 7442
    gb = manifest.groupby(manifest["path"].str.split("/").str[0])["size"].sum() / 1e9
    assert gb.round(2).to_dict() == {"AudioMP3": 0.63, "AudioWAV": 0.61, "VideoFlash": 2.44}


def test_clean_download_lands_verified_files_and_rerun_fetches_nothing(server, tmp_path, capsys):
    out = tmp_path / "CREMA-D"
    argv = ["download", "cremad", "--out", str(out), "--mirror", server.url, "--modalities", "wav", "flv",
            *_clip_args(), *FAST]
    assert main(argv) == 0
    official = _official()
    landed = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav")) + \
        sorted(p.relative_to(out).as_posix() for p in out.rglob("*.flv"))
    assert len(landed) == 12
    assert all(_sha(out / rel) == official[rel] for rel in landed)
    assert all(_sha(out / rel) == sha for rel, (sha, _) in METADATA_FILES.items())
    assert not list(out.rglob("*.part")) and not (out / FAILURES_NAME).exists()
    assert "16 downloaded" in capsys.readouterr().out

    n_requests = len(server.requests)
    assert main(argv) == 0
    assert len(server.requests) == n_requests  # everything verified in place, nothing asked for again
    assert "16 verified already present, 0 downloaded" in capsys.readouterr().out


def test_planted_faults_are_reported_and_nothing_corrupt_lands(server, tmp_path):
    corrupt, missing, dropped = (f"AudioWAV/{c}.wav" for c in SAMPLE_WAVS[:3])
    server.faults.update({corrupt: "corrupt", missing: "missing", dropped: "drop"})
    out = tmp_path / "CREMA-D"
    assert main(["download", "cremad", "--out", str(out), "--mirror", server.url, "--no-metadata",
                 *_clip_args(), *FAST]) == 1

    assert not (out / corrupt).exists() and not (out / missing).exists()
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == sorted(  # no partial or temporary file
        [Path(dropped).name, *(f"{c}.wav" for c in SAMPLE_WAVS[3:]), FAILURES_NAME, ".mer_download.json"])
    assert _sha(out / dropped) == _official()[dropped]
    # A CREMA-D file is small (82 kB on average): a dropped one is fetched again from byte 0.
    assert [r for p, r in server.requests if p == dropped] == [None, None]
    assert server.hits(missing) == 1  # a 404 is not retried
    assert server.hits(corrupt) == 3  # a checksum mismatch is retried (from byte 0), then reported

    failures = pd.read_csv(out / FAILURES_NAME).set_index("path")
    assert list(failures.columns) == ["url", "reason", "detail"]
    assert failures.loc[corrupt, "reason"] == "checksum_mismatch"
    assert failures.loc[missing, "reason"] == "http_404"
    assert failures.loc[missing, "url"] == server.url + missing
    assert sorted(failures.index) == sorted([corrupt, missing])

    # The source is fixed: a re-run asks only for what is missing and clears the failure list.
    server.faults.clear()
    before = len(server.requests)
    result = download_cremad(out, clips=SAMPLE_WAVS, mirror=server.url, metadata=False, progress=False)
    assert result.ok and sorted(result.downloaded) == sorted([corrupt, missing])
    assert len(server.requests) - before == 2
    assert not (out / FAILURES_NAME).exists()


def test_stall_and_drop_are_reported_and_a_plain_clone_pointer_is_replaced(server, tmp_path):
    stalled, pointer, dropped = (f"AudioWAV/{c}.wav" for c in SAMPLE_WAVS[:3])
    server.faults.update({stalled: "stall", dropped: "drop"})
    out = tmp_path / "out"
    (out / "AudioWAV").mkdir(parents=True)
    # What a clone without git-lfs leaves behind: a pointer under the final name.
    (out / pointer).write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 72862\n")
    result = download_cremad(out, clips=SAMPLE_WAVS[:3], mirror=server.url, metadata=False, retries=0,
                             timeout_s=0.3, progress=False)
    reasons = result.failures.set_index("path")["reason"]
    assert reasons.to_dict() == {stalled: "timeout", dropped: "connection_dropped"}
    assert not (out / stalled).exists() and not (out / dropped).exists()
    assert result.downloaded == [pointer] and _sha(out / pointer) == _official()[pointer]
    assert not result.ok


def test_official_source_takes_metadata_from_the_media_host_when_raw_gives_pointers(server, tmp_path, monkeypatch):
    import mer_utils.data.download as download

    for rel in METADATA_FILES:  # what a host serving a clone without git-lfs would give
        (server.root / "clone" / rel).parent.mkdir(parents=True, exist_ok=True)
        (server.root / "clone" / rel).write_text("version https://git-lfs.github.com/spec/v1\nsize 1\n")
    monkeypatch.setattr(download, "OFFICIAL_RAW_BASE", server.url + "clone/")
    monkeypatch.setattr(download, "OFFICIAL_MEDIA_BASE", server.url)
    result = download_cremad(tmp_path / "out", clips=SAMPLE_WAVS[:1], progress=False)
    assert result.ok and len(result.downloaded) == 5
    assert {p for p, _ in server.requests} == {f"AudioWAV/{SAMPLE_WAVS[0]}.wav", *METADATA_FILES,
                                              *(f"clone/{rel}" for rel in METADATA_FILES)}
    assert all(_sha(tmp_path / "out" / rel) == sha for rel, (sha, _) in METADATA_FILES.items())


def test_actor_selection_reports_the_clips_the_mirror_lacks(server, tmp_path):
    result = download_cremad(tmp_path / "out", actors=[1002], modalities=("mp3",), mirror=server.url,
                             metadata=False, progress=False, jobs=8)
    n_clips = load_lfs_manifest()["path"].str.match(r"AudioMP3/1002_").sum()
    assert len(result.downloaded) == 6 and len(result.failures) == n_clips - 6
    assert set(result.failures["reason"]) == {"http_404"}


def test_wrong_selection_names_the_fix():
    with pytest.raises(ValueError, match=r"1001 to 1091\); fix --actors"):
        download_cremad("unused", actors=[999])
    with pytest.raises(ValueError, match="choose from wav, flv, mp3"):
        download_cremad("unused", modalities=("mp4",))


def test_offer_download_fetches_only_in_colab_when_the_folder_is_missing(server, tmp_path):
    root = tmp_path / "drive" / "CREMA-D"
    assert offer_download(None, in_colab=True) is None
    assert offer_download(str(root), in_colab=False) == str(root) and not root.exists()
    own_copy = tmp_path / "own"
    (own_copy / "AudioWAV").mkdir(parents=True)
    assert offer_download(str(own_copy), in_colab=True, mirror=server.url) == str(own_copy)
    assert server.requests == []  # a folder the user filled is left alone
    kwargs = dict(in_colab=True, clips=SAMPLE_WAVS, mirror=server.url, progress=False)
    assert offer_download(str(root), **kwargs) == str(root)
    assert len(list((root / "AudioWAV").glob("*.wav"))) == 6
    before = len(server.requests)
    offer_download(str(root), **kwargs)  # a clip selection is not the full corpus: verified again, not fetched
    assert len(server.requests) == before


# ---------------------------------------------------------------- RAVDESS

@pytest.fixture()
def ravdess_zip(server):
    """An archive laid out like the Zenodo one (Actor_XX/ at the top), actors 1 and 2."""
    path = server.root / "Audio_Speech_Actors_01-24.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for actor in (1, 2):
            for wav in sorted(shared("ravdess-dev", f"Actor_{actor:02d}").glob("*.wav")):
                zf.write(wav, f"Actor_{actor:02d}/{wav.name}")
    return path


def test_ravdess_download_extracts_the_reader_layout_and_states_the_licence(server, ravdess_zip, tmp_path, capsys):
    from mer_utils.data.download import download_ravdess
    from mer_utils.data.manifest import build_manifest
    from mer_utils.data.ravdess import is_ravdess_root

    out = tmp_path / "RAVDESS"
    md5 = hashlib.md5(ravdess_zip.read_bytes()).hexdigest()
    common = dict(mirror=server.url, archive_md5=md5, archive_size=ravdess_zip.stat().st_size, progress=False)
    result = download_ravdess(out, actors=[1], **common)
    assert result.ok and result.extracted == [1]
    assert "CC BY-NC-SA 4.0" in capsys.readouterr().out and (out / "LICENSE_RAVDESS.txt").exists()
    assert is_ravdess_root(out) and sorted(p.name for p in out.iterdir() if p.name.startswith("Actor")) == ["Actor_01"]
    src = shared("ravdess-dev", "Actor_01")
    assert all((out / "Actor_01" / w.name).read_bytes() == w.read_bytes() for w in src.glob("*.wav"))
    assert not (out / ".downloads" / ravdess_zip.name).exists()  # the archive goes once extracted
    manifest = build_manifest(out, dataset="ravdess", progress=False).manifest
    assert len(manifest) == 44 and set(manifest["actor_id"]) == {1}

    n_requests = len(server.requests)
    again = download_ravdess(out, actors=[1], **common)
    assert again.present == [1] and len(server.requests) == n_requests

    # Actor 3 is not in this archive: reported, exit status 1 from the CLI.
    assert download_ravdess(out, actors=[2, 3], **common).failures["reason"].tolist() == ["incomplete_archive"]
    assert len(list((out / "Actor_02").glob("*.wav"))) == 60


def test_ravdess_archive_with_the_wrong_md5_is_refused(server, ravdess_zip, tmp_path):
    out = tmp_path / "RAVDESS"
    code = main(["download", "ravdess", "--out", str(out), "--mirror", server.url, "--actors", "1",
                 "--retries", "0", "--quiet"])  # the official md5 cannot match the test archive
    assert code == 1
    failures = pd.read_csv(out / FAILURES_NAME)
    assert failures["reason"].tolist() == ["checksum_mismatch"]
    assert not list(out.glob("Actor_*")) and not list(out.rglob("*.zip*"))


@pytest.mark.parametrize("ranges", [True, False])
def test_ravdess_archive_cut_short_is_resumed_with_a_range_request(server, ravdess_zip, tmp_path, ranges):
    # 208 MB: unlike a CREMA-D clip, the bytes of an interrupted transfer are kept and only the rest is asked for.
    from mer_utils.data.download import download_ravdess

    server.ranges = ranges
    server.faults[ravdess_zip.name] = "drop"
    out = tmp_path / "RAVDESS"
    common = dict(actors=[1], mirror=server.url, archive_md5=hashlib.md5(ravdess_zip.read_bytes()).hexdigest(),
                  progress=False)
    cut = download_ravdess(out, retries=0, **common)
    assert cut.failures["reason"].tolist() == ["connection_dropped"] and not list(out.glob("Actor_*"))
    part = out / ".downloads" / (ravdess_zip.name + ".part")
    kept = part.stat().st_size  # what arrived of the first half, to the last whole chunk
    assert 0 < kept <= ravdess_zip.stat().st_size // 2 and not (out / ".downloads" / ravdess_zip.name).exists()

    again = download_ravdess(out, **common)  # the next run asks for the rest only
    assert [r for p, r in server.requests if p == ravdess_zip.name] == [None, f"bytes={kept}-"]
    # A server without range support sends the whole file instead, which replaces the kept bytes.
    assert again.ok and again.extracted == [1] and not part.exists()
    assert all((out / "Actor_01" / w.name).read_bytes() == w.read_bytes()
               for w in shared("ravdess-dev", "Actor_01").glob("*.wav"))
