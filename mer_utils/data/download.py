"""Getting CREMA-D: verified, resumable, parallel downloads (``mer download cremad``).

The official repository keeps every WAV, MP3 and FLV in Git LFS: a plain clone
gives 130-byte pointer files, and LFS bandwidth quotas cut clones short. The
media host serves each file by path instead, so the corpus is fetched file by
file and checked against the sha256 and size of the official LFS pointers,
shipped with the package (``cremad_lfs_manifest.tsv.gz``, ODbL like the rest
of the metadata).

Every file is streamed to ``<name>.part``, resumed with an HTTP range request
when the server honours it, verified, and only then renamed: a corrupted or
partial file never sits under its final name, so a re-run verifies what is
there and fetches only what is missing or wrong.

>>> files = cremad_files(modalities=("wav",), clips=["1001_DFA_ANG_XX"], metadata=False)
>>> files[0].path, files[0].size
('AudioWAV/1001_DFA_ANG_XX.wav', 72862)
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from mer_utils.core.atomic_io import read_json, write_csv, write_json

OFFICIAL_MEDIA_BASE = "https://media.githubusercontent.com/media/CheyneyComputerScience/CREMA-D/master/"
OFFICIAL_RAW_BASE = "https://raw.githubusercontent.com/CheyneyComputerScience/CREMA-D/master/"
MODALITY_DIRS = {"wav": ("AudioWAV", ".wav"), "flv": ("VideoFlash", ".flv"), "mp3": ("AudioMP3", ".mp3")}
# Plain git files of the official repository (no LFS pointer, so no shipped
# hash from the LFS manifest): sha256 and size of the known versions.
METADATA_FILES = {
    "VideoDemographics.csv": ("e33ddc8b60bedf98541735801127cbb67098b5957271adbdd5dea8a44294eec3", 4033),
    "SentenceFilenames.csv": ("d88cb50e84bbc30b2e159cdfc25e1cf87777ad97c7c41d6ab8f75d3383b8f740", 170087),
    "processedResults/summaryTable.csv": ("fb0e382700d32c0d9adc0c6815292215a36bcf912f2657048862c91e3bd2b317", 449048),
    "processedResults/tabulatedVotes.csv": ("774d9d759cb5caf2542758a39eca8c0f1d2777f9987ff5d5adf8066d192f377b",
                                            4057953),
}
FAILURE_COLUMNS = ("path", "url", "reason", "detail")
FAILURES_NAME = "download_failures.csv"
MARKER_NAME = ".mer_download.json"
ASSUMED_MB_PER_S = 10.0  # for the time estimate only: a typical Colab-to-GitHub rate
_MANIFEST_NAME = "cremad_lfs_manifest.tsv.gz"
_MEDIA_FOLDERS = {folder for folder, _ in MODALITY_DIRS.values()}
_USER_AGENT = "mer-utils (CREMA-D download)"
_CHUNK = 1 << 16
_LFS_POINTER_PREFIX = b"version https://git-lfs"
_MAX_BACKOFF_S = 60.0


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: where it lands, where it comes from, what it must be."""

    path: str  # relative to the output folder, "/"-separated
    urls: tuple[str, ...]  # tried in order; the next one only after a permanent failure
    size: int
    sha256: str | None = None
    md5: str | None = None


@dataclass(frozen=True)
class FetchSettings:
    jobs: int = 8  # parallel downloads (threads: the work is waiting on the network)
    retries: int = 4  # further attempts per URL after a timeout, a dropped connection or a 5xx
    backoff_s: float = 1.0  # wait before retry k is backoff_s * 2**(k-1), at most a minute
    timeout_s: float = 60.0  # per request: connecting and each read
    progress: bool = True  # one progress bar over all bytes


@dataclass
class DownloadResult:
    """What a download did; ``ok`` is False while anything is missing."""

    out: Path
    present: list[str]  # verified, already there before this run
    downloaded: list[str]
    failures: pd.DataFrame  # FAILURE_COLUMNS, one row per file still missing
    bytes_downloaded: int
    failures_csv: Path | None = None

    @property
    def ok(self) -> bool:
        return self.failures.empty

    def summary(self) -> str:
        text = (f"{self.out}: {len(self.present)} verified already present, {len(self.downloaded)} downloaded "
                f"({_human_bytes(self.bytes_downloaded)}), {len(self.failures)} failed")
        if self.ok:
            return text + "."
        reasons = ", ".join(f"{reason} x{n}" for reason, n in self.failures["reason"].value_counts().items())
        return (f"{text} ({reasons}); list and reasons in {self.failures_csv}. Re-run the same command to fetch "
                "only what is missing (a persistent http_404 or checksum_mismatch means the source lacks the file: "
                "try another --mirror).")


@dataclass
class _Outcome:
    path: str
    status: str  # "present", "downloaded" or "failed"
    url: str = ""
    reason: str = ""
    detail: str = ""
    nbytes: int = 0


class _PermanentError(Exception):
    """The server answered, and asking again will not help (404, 403, ...)."""


# ---------------------------------------------------------------- verification

def file_problem(path: Path, spec: RemoteFile) -> tuple[str, str] | None:
    """``None`` when ``path`` is exactly ``spec``; else ``(reason, detail)``."""
    size = path.stat().st_size
    if size != spec.size:
        if _is_lfs_pointer(path):
            return ("lfs_pointer", f"{size}-byte Git LFS pointer instead of the {spec.size}-byte file")
        return ("size_mismatch", f"{size} bytes, expected {spec.size}")
    for name, expected in (("sha256", spec.sha256), ("md5", spec.md5)):
        if expected and _digest(path, name) != expected:
            return ("checksum_mismatch", f"{name} differs from the official {expected} ({size} bytes)")
    return None


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _is_lfs_pointer(path: Path) -> bool:
    if path.stat().st_size > 1024:
        return False
    with open(path, "rb") as fh:
        return fh.read(len(_LFS_POINTER_PREFIX)) == _LFS_POINTER_PREFIX


# ---------------------------------------------------------------- transfer

class _Progress:
    """One byte bar for all threads; each file settles its own credit at the end,
    so restarts and resumed ``.part`` files neither over- nor under-count."""

    def __init__(self, total: int, enabled: bool, desc: str):
        self._lock = threading.Lock()
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit="B", unit_scale=True, desc=desc, file=sys.stdout)

    def add(self, n: int) -> None:
        if self._bar is not None and n:
            with self._lock:
                self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _stream(url: str, part: Path, spec: RemoteFile, timeout_s: float, credit) -> int | None:
    """Append the rest of ``url`` to ``part`` (or rewrite it when the server
    ignores the range), passing the count of each chunk received to ``credit``.
    Returns the file size the server declared (None when it did not say)."""
    offset = part.stat().st_size if part.exists() else 0
    if offset > spec.size:
        part.unlink()  # longer than the file can be: not a prefix of it
        offset = 0
    if spec.size and offset == spec.size:
        return spec.size  # complete but not yet renamed (interrupted between the two): verify it
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            part.unlink()  # the server disowns our prefix: start again from byte 0
            raise ConnectionError(f"HTTP 416 for the range {offset}- of {url}; restarting from 0") from err
        if 400 <= err.code < 500 and err.code not in (408, 429):
            raise _PermanentError(f"http_{err.code}", f"HTTP {err.code} {err.reason} from {url}") from err
        raise
    with response:
        if offset and response.status == 206 and _range_start(response) != offset:
            part.unlink()  # a range other than the one asked for: our prefix cannot be trusted to line up
            raise ConnectionError(f"{url} answered a different range than bytes={offset}-; restarting from 0")
        resumed = offset and response.status == 206
        declared = _declared_size(response, offset if resumed else 0)
        received = 0
        with open(part, "ab" if resumed else "wb") as fh:
            while chunk := response.read(_CHUNK):
                fh.write(chunk)
                received += len(chunk)
                credit(len(chunk))
                if (offset if resumed else 0) + received > spec.size:
                    break  # already longer than the file: verification will reject it
    return declared


def _declared_size(response, offset: int) -> int | None:
    total = response.headers.get("Content-Range", "").rpartition("/")[2]
    if total.isdigit():
        return int(total)
    length = response.headers.get("Content-Length", "")
    return offset + int(length) if length.isdigit() else None


def _range_start(response) -> int | None:
    value = response.headers.get("Content-Range", "")  # "bytes 100-199/200"
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _failure_reason(err: BaseException) -> tuple[str, str]:
    if isinstance(err, urllib.error.HTTPError):
        return f"http_{err.code}", f"HTTP {err.code} {err.reason}"
    if isinstance(err, TimeoutError) or (isinstance(err, urllib.error.URLError)
                                         and isinstance(err.reason, TimeoutError)):
        return "timeout", f"no answer within the timeout ({err})"
    if isinstance(err, (http.client.IncompleteRead, ConnectionError, http.client.RemoteDisconnected)):
        return "connection_dropped", f"{type(err).__name__}: {err}"
    if isinstance(err, (urllib.error.URLError, http.client.HTTPException)):
        return "connection_error", f"{type(err).__name__}: {err}"
    return "os_error", f"{type(err).__name__}: {err}"


def _fetch_url(spec: RemoteFile, url: str, final: Path, settings: FetchSettings, credit) -> _Outcome:
    part = final.with_name(final.name + ".part")
    reason, detail = "", ""
    for attempt in range(settings.retries + 1):
        if attempt:
            time.sleep(min(settings.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S))
        try:
            declared = _stream(url, part, spec, settings.timeout_s, credit)
        except _PermanentError as err:
            return _Outcome(spec.path, "failed", url, *err.args)
        except (OSError, http.client.HTTPException) as err:
            reason, detail = _failure_reason(err)
            continue  # the .part stays: the next attempt resumes it
        got = part.stat().st_size
        if got < spec.size and declared in (None, spec.size) and not _is_lfs_pointer(part):
            reason, detail = "connection_dropped", f"the connection ended after {got} of {spec.size} bytes"
            continue
        problem = file_problem(part, spec)
        if problem is None:
            os.replace(part, final)
            return _Outcome(spec.path, "downloaded", url)
        part.unlink()  # wrong bytes are never resumed from
        reason, detail = problem
        if reason == "lfs_pointer":
            detail += "; this source holds pointers, not media: use the media host or another --mirror"
            break
    return _Outcome(spec.path, "failed", url, reason, f"{detail} ({url})")


def fetch_file(spec: RemoteFile, out: Path, settings: FetchSettings, progress: _Progress | None = None) -> _Outcome:
    """Make ``out/spec.path`` exactly ``spec``: keep it if it verifies, else fetch it."""
    credited = 0

    def credit(n: int) -> None:
        nonlocal credited
        credited += n
        if progress is not None:
            progress.add(n)

    final = out / spec.path
    final.parent.mkdir(parents=True, exist_ok=True)
    outcome = None
    if final.exists():
        if file_problem(final, spec) is None:
            outcome = _Outcome(spec.path, "present")
        else:
            final.unlink()  # e.g. an LFS pointer from a plain clone: replace it with the real file
    if outcome is None:
        for url in spec.urls:
            outcome = _fetch_url(spec, url, final, settings, credit)
            if outcome.status == "downloaded":
                outcome.nbytes = credited  # received over the network, retries included
                break
    credit((spec.size if outcome.status != "failed" else 0) - credited)
    return outcome


def fetch_all(files: list[RemoteFile], out: str | os.PathLike, settings: FetchSettings = FetchSettings(), *,
              desc: str = "download") -> DownloadResult:
    """Fetch ``files`` into ``out`` in parallel; write ``download_failures.csv`` when any failed."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    progress = _Progress(sum(f.size for f in files), settings.progress, desc)
    pool = ThreadPoolExecutor(max_workers=max(1, settings.jobs))
    try:
        futures = [pool.submit(fetch_file, spec, out, settings, progress) for spec in files]
        outcomes = [f.result() for f in futures]
    except BaseException:
        # Ctrl-C (or a bug) must not wait for the whole queue: only the files in
        # flight finish, and each lands verified or stays a .part for the next run.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        progress.close()
    failed = [o for o in outcomes if o.status == "failed"]
    failures = pd.DataFrame([{c: getattr(o, c) for c in FAILURE_COLUMNS} for o in failed],
                            columns=list(FAILURE_COLUMNS))
    csv_path = out / FAILURES_NAME
    if failed:
        write_csv(csv_path, failures)
    elif csv_path.exists():
        csv_path.unlink()  # a stale list from an earlier run would say files are missing that are not
    return DownloadResult(out, [o.path for o in outcomes if o.status == "present"],
                          [o.path for o in outcomes if o.status == "downloaded"], failures,
                          sum(o.nbytes for o in outcomes), csv_path if failed else None)


# ---------------------------------------------------------------- CREMA-D

def load_lfs_manifest() -> pd.DataFrame:
    """``path, sha256, size`` of every official CREMA-D media file (22,326 rows)."""
    with resources.files("mer_utils.data").joinpath(_MANIFEST_NAME).open("rb") as fh:
        return pd.read_csv(fh, sep="\t", compression="gzip", dtype={"path": str, "sha256": str, "size": "int64"})


def _select_media(manifest: pd.DataFrame, modalities, actors, clips) -> pd.DataFrame:
    unknown = sorted(set(modalities) - set(MODALITY_DIRS))
    if unknown or not modalities:
        raise ValueError(f"unknown modality {unknown or '(none)'}; choose from {', '.join(MODALITY_DIRS)}")
    folder = manifest["path"].str.split("/").str[0]
    clip_id = manifest["path"].str.split("/").str[1].str.rsplit(".", n=1).str[0]
    keep = folder.isin([MODALITY_DIRS[m][0] for m in modalities])
    if actors:
        actor_id = clip_id.str[:4].astype(int)
        missing = sorted(set(int(a) for a in actors) - set(actor_id))
        if missing:
            raise ValueError(f"actor(s) {missing} are not in CREMA-D (actor ids run from 1001 to 1091); "
                             "fix --actors")
        keep &= actor_id.isin([int(a) for a in actors])
    if clips:
        missing = sorted(set(clips) - set(clip_id))
        if missing:
            raise ValueError(f"clip(s) {missing[:5]} are not in CREMA-D (ids look like 1001_DFA_ANG_XX); fix --clips")
        keep &= clip_id.isin(list(clips))
    return manifest[keep]


def cremad_files(*, modalities=("wav",), actors=None, clips=None, metadata: bool = True,
                 mirror: str | None = None) -> list[RemoteFile]:
    """The files of a CREMA-D selection, with their URLs, sizes and sha256.

    ``mirror`` is any base URL with the official layout (``BASE/AudioWAV/<clip>.wav``,
    ``BASE/VideoDemographics.csv``, ...); by default media come from GitHub's
    LFS media host and the metadata CSVs from the raw file host.
    """
    media = _select_media(load_lfs_manifest(), modalities, actors, clips)
    base = mirror.rstrip("/") + "/" if mirror else None
    files = [RemoteFile(path, ((base or OFFICIAL_MEDIA_BASE) + path,), int(size), sha)
             for path, sha, size in media[["path", "sha256", "size"]].itertuples(index=False)]
    if metadata:
        for path, (sha, size) in METADATA_FILES.items():
            # The media host also answers for plain files: a second chance when raw is refused.
            urls = (base + path,) if base else (OFFICIAL_RAW_BASE + path, OFFICIAL_MEDIA_BASE + path)
            files.append(RemoteFile(path, urls, size, sha))
    return files


def plan_text(files: list[RemoteFile], out: str | os.PathLike | None = None) -> str:
    """One line per folder with file count and size, and a time estimate."""
    sizes: dict[str, list[int]] = {}
    for spec in files:
        folder = spec.path.split("/")[0]
        if folder not in _MEDIA_FOLDERS:
            folder = "metadata"
        sizes.setdefault(folder, []).append(spec.size)
    total = sum(sum(v) for v in sizes.values())
    # A stat per file, no hashing: enough to say how much is left to fetch.
    there = sum(f.size for f in files if out and _has_size(Path(out) / f.path, f.size))
    lines = [f"CREMA-D{f' -> {out}' if out else ''}: {len(files):,} files, {_human_bytes(total)}; "
             f"{_human_bytes(total - there)} to download, {_human_bytes(there)} already there (verified first)"]
    lines += [f"  {folder}: {len(v):,} files, {_human_bytes(sum(v))}" for folder, v in sizes.items()]
    minutes = (total - there) / (ASSUMED_MB_PER_S * 1e6) / 60
    when = f"about {round(minutes)} min" if minutes >= 1 else "under a minute"
    lines.append(f"  {when} at {ASSUMED_MB_PER_S:g} MB/s (writing to Google Drive is "
                 "slower); interrupted runs resume. Licence: ODbL 1.0 (contents DbCL 1.0).")
    return "\n".join(lines)


def _has_size(path: Path, size: int) -> bool:
    return path.is_file() and path.stat().st_size == size


def download_cremad(out: str | os.PathLike, *, modalities=("wav",), actors=None, clips=None,
                    mirror: str | None = None, metadata: bool = True, jobs: int = 8, retries: int = 4,
                    backoff_s: float = 1.0, timeout_s: float = 60.0, progress: bool = True) -> DownloadResult:
    """Fetch CREMA-D in the official layout into ``out``, verified against the official sha256.

    Files already there are verified and kept; missing or wrong ones are fetched.
    The result's ``ok`` is False while anything is missing; the reasons are in
    ``out/download_failures.csv``. Audio first (``modalities=("wav",)``, 0.61 GB);
    ``"flv"`` (2.44 GB) is the video the visual expert needs, ``"mp3"`` 0.63 GB.
    """
    out = Path(out).expanduser()
    files = cremad_files(modalities=modalities, actors=actors, clips=clips, metadata=metadata, mirror=mirror)
    if progress:
        print(plan_text(files, out))
    _update_marker(out, started=modalities)
    settings = FetchSettings(jobs=jobs, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s, progress=progress)
    result = fetch_all(files, out, settings, desc="CREMA-D")
    if result.ok and not actors and not clips:
        _update_marker(out, complete=modalities)
    return result


def _update_marker(out: Path, *, started=(), complete=()) -> None:
    """``out/.mer_download.json`` records which modalities are complete, so a
    notebook can tell its own finished download from an interrupted one."""
    path = out / MARKER_NAME
    marker = read_json(path) if path.exists() else {"corpus": "crema-d", "complete_modalities": []}
    marker["complete_modalities"] = sorted(set(marker["complete_modalities"]) | set(complete))
    marker["requested_modalities"] = sorted(set(marker.get("requested_modalities", [])) | set(started) | set(complete))
    write_json(path, marker)


def offer_download(data_root, modalities=("wav",), *, in_colab: bool | None = None, **kwargs):
    """Notebook helper: in Colab, fetch CREMA-D into ``data_root`` when it is not there yet.

    Returns ``data_root`` unchanged. Does nothing when ``data_root`` is None
    (the embedded synthetic corpus), outside Colab (use ``mer download cremad``),
    when an earlier download here completed these modalities, or when the folder
    already holds a copy of its own. Raises ``RuntimeError`` naming the list of
    missing files when the download is incomplete; re-running resumes it.
    """
    if data_root is None:
        return None
    if not ("google.colab" in sys.modules if in_colab is None else in_colab):
        return data_root
    root = Path(data_root).expanduser()
    marker = root / MARKER_NAME
    if marker.exists() and set(modalities) <= set(read_json(marker)["complete_modalities"]):
        print(f"CREMA-D {', '.join(modalities)} already downloaded and verified in {root}")
        return data_root
    if not marker.exists() and all((root / MODALITY_DIRS[m][0]).is_dir() for m in modalities):
        return data_root  # the user's own copy: leave it alone
    result = download_cremad(root, modalities=modalities, **kwargs)
    print(result.summary())
    if not result.ok:
        raise RuntimeError(f"{len(result.failures)} CREMA-D files are still missing in {root}; their reasons are "
                           f"in {result.failures_csv}. Re-run this cell to fetch only what is missing.")
    return data_root


def _human_bytes(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"
