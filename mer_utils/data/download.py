"""Getting CREMA-D and RAVDESS (``mer download``): each file fetched with pooch and moved into place only once its
hash matches (CREMA-D: the sha256 of the official Git LFS pointers, shipped; RAVDESS: Zenodo's md5 of its archive,
then each extracted file's CRC-32), so a re-run fetches only what is missing or wrong.

>>> files = cremad_files(modalities=("wav",), clips=["1001_DFA_ANG_XX"], metadata=False)
>>> files[0].path, files[0].size
('AudioWAV/1001_DFA_ANG_XX.wav', 72862)
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path

import pandas as pd
import pooch
import requests
from tqdm.auto import tqdm

from mer_utils.core.atomic_io import atomic_path, read_json, write_csv, write_json, write_text

OFFICIAL_MEDIA_BASE = "https://media.githubusercontent.com/media/CheyneyComputerScience/CREMA-D/master/"
OFFICIAL_RAW_BASE = "https://raw.githubusercontent.com/CheyneyComputerScience/CREMA-D/master/"
MODALITY_DIRS = {"wav": ("AudioWAV", ".wav"), "flv": ("VideoFlash", ".flv"), "mp3": ("AudioMP3", ".mp3")}
# Plain git files of the official repository (not in the LFS manifest): sha256 and size of the known versions.
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
_LFS_POINTER_PREFIX = b"version https://git-lfs"
_MAX_BACKOFF_S = 60.0
_size = partial(tqdm.format_sizeof, suffix="B", divisor=1000)  # 72862 -> "72.9kB"


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: where it lands, where it comes from, what it must be."""

    path: str  # relative to the output folder, "/"-separated
    urls: tuple[str, ...]  # tried in order; the next one only after a permanent failure
    size: int  # for the plan and the progress bar; the hash decides
    known_hash: str  # pooch's form: a bare sha256, or "md5:..."
    resume: bool = False  # a large file: keep the bytes of an interrupted transfer, show its own bar


@dataclass(frozen=True)
class FetchSettings:
    retries: int = 4  # further attempts per URL after a timeout, a dropped connection, a 5xx or wrong bytes
    backoff_s: float = 1.0  # wait before retry k is backoff_s * 2**(k-1), at most a minute
    timeout_s: float = 60.0  # per request: connecting and each read
    progress: bool = True  # one progress bar over all bytes


@dataclass
class DownloadResult:
    """What a download did; ``ok`` is False while anything is missing."""

    out: Path
    present: list  # verified, already there before this run
    downloaded: list
    failures: pd.DataFrame  # FAILURE_COLUMNS, one row per file still missing
    bytes_downloaded: int
    failures_csv: Path | None = None

    @property
    def ok(self) -> bool:
        return self.failures.empty

    def summary(self) -> str:
        text = (f"{self.out}: {len(self.present)} verified already present, {len(self.downloaded)} downloaded "
                f"({_size(self.bytes_downloaded)}), {len(self.failures)} failed")
        if self.ok:
            return text + "."
        reasons = ", ".join(f"{reason} x{n}" for reason, n in self.failures["reason"].value_counts().items())
        return (f"{text} ({reasons}); list and reasons in {self.failures_csv}. Re-run the same command to fetch "
                "only what is missing (a persistent http_404 or checksum_mismatch means the source lacks the file: "
                "try another --mirror).")


class _Refused(Exception):
    """The source answered, and asking it again will not help."""


def _resume(url: str, part: Path, spec: RemoteFile, settings: FetchSettings) -> None:
    """Continue ``part`` with a Range request: a large file keeps its bytes across attempts and runs."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT, **({"Range": f"bytes={offset}-"} if offset else {})}
    with requests.get(url, headers=headers, stream=True, timeout=settings.timeout_s) as response:
        if response.status_code == 416:  # our bytes are longer than the file: not a prefix of it
            part.unlink()
            raise requests.ConnectionError(f"{url} refused the range bytes={offset}-; starting again from 0")
        response.raise_for_status()
        resumed = response.status_code == 206  # a 200 is the whole file: the server ignored the range
        with open(part, "ab" if resumed else "wb") as fh, \
                tqdm(total=spec.size, initial=offset if resumed else 0, unit="B", unit_scale=True,
                     desc=spec.path.rsplit("/", 1)[-1], file=sys.stdout, disable=not settings.progress) as bar:
            for chunk in response.iter_content(1 << 16):
                fh.write(chunk)
                bar.update(len(chunk))


def _reason(err: Exception) -> tuple[str, str, bool]:
    """``(reason, detail, worth asking again)`` for a failed attempt."""
    if isinstance(err, _Refused):
        return err.args[0], err.args[1], False
    if isinstance(err, requests.HTTPError):
        code = err.response.status_code
        return f"http_{code}", str(err), code >= 500 or code in (408, 429)
    if isinstance(err, requests.Timeout):
        return "timeout", f"no answer within the timeout ({err})", True
    if isinstance(err, requests.exceptions.ChunkedEncodingError):
        return "connection_dropped", f"the connection ended before the file did ({err})", True
    if isinstance(err, requests.RequestException):
        return "connection_error", f"{type(err).__name__}: {err}", True
    if isinstance(err, ValueError):  # pooch: the hash of the downloaded bytes is not the known one
        return "checksum_mismatch", str(err), True
    return "os_error", f"{type(err).__name__}: {err}", True


def fetch_file(spec: RemoteFile, out: Path, settings: FetchSettings) -> tuple[str, dict | None]:
    """Make ``out/spec.path`` exactly ``spec`` (kept if its hash matches, else fetched): ``"present"``,
    ``"downloaded"`` or ``"failed"``, and the failure row or None."""
    final = out / spec.path
    part = final.with_name(final.name + ".part")
    http = pooch.HTTPDownloader(timeout=settings.timeout_s, headers={"User-Agent": _USER_AGENT})

    def download(url: str, output_file: str, pup) -> None:  # pooch's downloader interface
        if spec.resume:
            _resume(url, part, spec, settings)
            os.replace(part, output_file)  # pooch hashes it next and deletes wrong bytes: never resumed from
        else:
            http(url, output_file, pup)
        with open(output_file, "rb") as fh:  # a source of pointers gives pointers again: refused
            if fh.read(len(_LFS_POINTER_PREFIX)) == _LFS_POINTER_PREFIX:
                raise _Refused("lfs_pointer", "a Git LFS pointer instead of the file: this source holds pointers, "
                               "not media; use the media host or another --mirror")

    for url in spec.urls:  # our own retries: pooch's retry a 404 too (10 s per file a mirror lacks)
        for attempt in range(settings.retries + 1):
            if attempt:
                time.sleep(min(settings.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S))
            try:
                action = pooch.retrieve(url, spec.known_hash, fname=final.name, path=final.parent,
                                        downloader=download, processor=lambda _path, action, _pup: action)
                return "present" if action == "fetch" else "downloaded", None
            except (OSError, ValueError, _Refused) as err:  # requests' errors are OSErrors
                reason, detail, again = _reason(err)
                if not again:
                    break
    # pooch found what is there (e.g. the LFS pointer of a plain clone) absent or wrong: it must not pass for the file.
    final.unlink(missing_ok=True)
    return "failed", {"path": spec.path, "url": url, "reason": reason, "detail": detail}


def write_failures(out: Path, rows: list[dict]) -> tuple[pd.DataFrame, Path | None]:
    """``out/download_failures.csv`` from ``rows``; removed when there are none (a stale list would mislead)."""
    frame, csv_path = pd.DataFrame(rows, columns=list(FAILURE_COLUMNS)), out / FAILURES_NAME
    if rows:
        return frame, write_csv(csv_path, frame)
    csv_path.unlink(missing_ok=True)
    return frame, None


def load_lfs_manifest() -> pd.DataFrame:
    """``path, sha256, size`` of every official CREMA-D media file (22,326 rows)."""
    with resources.files("mer_utils.data").joinpath(_MANIFEST_NAME).open("rb") as fh:
        return pd.read_csv(fh, sep="\t", compression="gzip", dtype={"path": str, "sha256": str, "size": "int64"})


def cremad_files(*, modalities=("wav",), actors=None, clips=None, metadata: bool = True,
                 mirror: str | None = None) -> list[RemoteFile]:
    """The files of a CREMA-D selection, with their URLs, sizes and sha256; ``mirror``: a base URL with the
    official layout (default: GitHub's LFS media host, and the raw file host for the metadata CSVs)."""
    manifest = load_lfs_manifest()
    unknown = sorted(set(modalities) - set(MODALITY_DIRS))
    if unknown or not modalities:
        raise ValueError(f"unknown modality {unknown or '(none)'}; choose from {', '.join(MODALITY_DIRS)}")
    folder = manifest["path"].str.split("/").str[0]
    clip_id = manifest["path"].str.split("/").str[1].str.rsplit(".", n=1).str[0]
    keep = folder.isin([MODALITY_DIRS[m][0] for m in modalities])
    if actors:
        actors, actor_id = {int(a) for a in actors}, clip_id.str[:4].astype(int)
        missing = sorted(actors - set(actor_id))
        if missing:
            raise ValueError(f"actor(s) {missing} are not in CREMA-D (actor ids run from 1001 to 1091); fix --actors")
        keep &= actor_id.isin(actors)
    if clips:
        missing = sorted(set(clips) - set(clip_id))
        if missing:
            raise ValueError(f"clip(s) {missing[:5]} are not in CREMA-D (ids look like 1001_DFA_ANG_XX); fix --clips")
        keep &= clip_id.isin(list(clips))
    media = manifest[keep]
    base = mirror.rstrip("/") + "/" if mirror else None
    files = [RemoteFile(path, ((base or OFFICIAL_MEDIA_BASE) + path,), int(size), sha)
             for path, sha, size in media[["path", "sha256", "size"]].itertuples(index=False)]
    if metadata:
        for path, (sha, size) in METADATA_FILES.items():
            # The media host also answers for plain files: a second chance when raw is refused.
            urls = (base + path,) if base else (OFFICIAL_RAW_BASE + path, OFFICIAL_MEDIA_BASE + path)
            files.append(RemoteFile(path, urls, size, sha))
    return files


def plan_text(files: list[RemoteFile], out: Path) -> str:
    """One line per folder with file count and size, and a time estimate."""
    folders = pd.Series([f.path.split("/")[0] for f in files])
    folders = folders.where(folders.isin(_MEDIA_FOLDERS), "metadata")
    sizes = pd.Series([f.size for f in files]).groupby(folders, sort=False)
    total = sum(spec.size for spec in files)
    # A stat per file, no hashing: enough to say how much is left to fetch.
    there = sum(f.size for f in files if (out / f.path).is_file() and (out / f.path).stat().st_size == f.size)
    lines = [f"CREMA-D -> {out}: {len(files):,} files, {_size(total)}; "
             f"{_size(total - there)} to download, {_size(there)} already there (verified first)"]
    lines += [f"  {folder}: {len(v):,} files, {_size(int(v.sum()))}" for folder, v in sizes]
    minutes = (total - there) / (ASSUMED_MB_PER_S * 1e6) / 60
    when = f"about {round(minutes)} min" if minutes >= 1 else "under a minute"
    lines.append(f"  {when} at {ASSUMED_MB_PER_S:g} MB/s (writing to Google Drive is "
                 "slower); a re-run fetches only what is missing. Licence: ODbL 1.0 (contents DbCL 1.0).")
    return "\n".join(lines)


def download_cremad(out: str | os.PathLike, *, modalities=("wav",), actors=None, clips=None,
                    mirror: str | None = None, metadata: bool = True, jobs: int = 8, retries: int = 4,
                    backoff_s: float = 1.0, timeout_s: float = 60.0, progress: bool = True) -> DownloadResult:
    """Fetch CREMA-D in the official layout into ``out``, verified against the official sha256; files already
    there are verified and kept. ``modalities``: ``"wav"`` 0.61 GB, ``"flv"`` 2.44 GB (video), ``"mp3"`` 0.63 GB."""
    out = Path(out).expanduser()
    files = cremad_files(modalities=modalities, actors=actors, clips=clips, metadata=metadata, mirror=mirror)
    if progress:
        print(plan_text(files, out))
    _update_marker(out, started=modalities)
    settings = FetchSettings(retries=retries, backoff_s=backoff_s, timeout_s=timeout_s, progress=progress)
    logger, level = pooch.get_logger(), pooch.get_logger().level
    logger.setLevel("WARNING")  # pooch logs a line per file downloaded: thousands here
    bar = tqdm(total=sum(f.size for f in files), unit="B", unit_scale=True, desc="CREMA-D", file=sys.stdout,
               disable=not progress)
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = {pool.submit(fetch_file, spec, out, settings): spec for spec in files}
        for future in as_completed(futures):
            bar.update(futures[future].size)  # settled, verified or failed
        outcomes = [future.result() for future in futures]
    finally:
        # Ctrl-C must not wait for the whole queue: the files in flight finish, each verified or removed by pooch.
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        logger.setLevel(level)
    failures, csv_path = write_failures(out, [failure for _, failure in outcomes if failure])
    present, downloaded = ([f for f, (status, _) in zip(files, outcomes) if status == kind]
                           for kind in ("present", "downloaded"))
    result = DownloadResult(out, [f.path for f in present], [f.path for f in downloaded], failures,
                            sum(f.size for f in downloaded), csv_path)
    if result.ok and not actors and not clips:
        _update_marker(out, complete=modalities)
    return result


def _update_marker(out: Path, *, started=(), complete=()) -> None:
    """``out/.mer_download.json``: which modalities are complete (a finished download vs an interrupted one)."""
    path = out / MARKER_NAME
    marker = read_json(path) if path.exists() else {"corpus": "crema-d", "complete_modalities": []}
    marker["complete_modalities"] = sorted(set(marker["complete_modalities"]) | set(complete))
    marker["requested_modalities"] = sorted(set(marker.get("requested_modalities", [])) | set(started) | set(complete))
    write_json(path, marker)


def offer_download(data_root, modalities=("wav",), *, in_colab: bool | None = None, **kwargs):
    """Notebook helper: in Colab, fetch CREMA-D into ``data_root`` (returned unchanged) unless it is None (the
    synthetic corpus), already downloaded here, or a copy of the user's own. Raises when files are still missing."""
    if data_root is None or not ("google.colab" in sys.modules if in_colab is None else in_colab):
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


RECORD_URL = "https://zenodo.org/records/1188976"
ARCHIVE_NAME = "Audio_Speech_Actors_01-24.zip"
OFFICIAL_URL = f"{RECORD_URL}/files/{ARCHIVE_NAME}?download=1"
ARCHIVE_SIZE = 208_468_073
ARCHIVE_MD5 = "bc696df654c87fed845eb13823edef8a"
ACTORS = tuple(range(1, 25))
FILES_PER_ACTOR = 60  # 8 emotions x 2 statements x 2 repetitions x 2 intensities, neutral without "strong"
LICENCE = ("RAVDESS (Livingstone & Russo 2018, PLoS ONE 13(5): e0196391) is licensed CC BY-NC-SA 4.0: "
           f"non-commercial use only, with attribution, share-alike. Source: {RECORD_URL}")
CHECKSUMS_NAME = "ravdess_files.tsv"
_SPEECH_MEMBER = re.compile(r"(?:^|/)Actor_(\d{2})/(03-01-\d{2}-\d{2}-\d{2}-\d{2}-(\d{2})\.wav)$")


class RavdessResult(DownloadResult):
    """A download counted in actors: ``present`` (verified, already extracted) and ``extracted``."""

    extracted = property(lambda self: self.downloaded)

    def summary(self) -> str:
        text = (f"{self.out}: actors verified already present: {_ids(self.present)}; extracted: "
                f"{_ids(self.extracted)}; problems: {len(self.failures)}")
        if self.ok:
            return text + "."
        return f"{text}, listed with their reasons in {self.failures_csv}. Re-run the same command to resume."


def download_ravdess(out: str | os.PathLike, *, actors=None, mirror: str | None = None, keep_zip: bool = False,
                     archive_md5: str = ARCHIVE_MD5, archive_size: int = ARCHIVE_SIZE, retries: int = 4,
                     backoff_s: float = 1.0, timeout_s: float = 60.0, progress: bool = True) -> RavdessResult:
    """Fetch RAVDESS speech and extract ``actors`` (default all 24) to ``out/Actor_XX/``; ``mirror``: a base URL
    holding the archive, checked against ``archive_md5`` before anything is extracted."""
    out = Path(out).expanduser()
    actors = sorted(set(int(a) for a in actors)) if actors else list(ACTORS)
    wrong = [a for a in actors if a not in ACTORS]
    if wrong:
        raise ValueError(f"RAVDESS actor(s) {wrong} do not exist: actors are numbered 1 to 24; fix --actors")
    print(LICENCE)
    write_text(out / "LICENSE_RAVDESS.txt", LICENCE + "\n")
    checksums = {}  # "Actor_XX/name.wav" -> (size, CRC-32) of every file extracted so far
    if (out / CHECKSUMS_NAME).exists():
        frame = pd.read_csv(out / CHECKSUMS_NAME, sep="\t", dtype={"path": str, "size": "int64", "crc32": "int64"})
        checksums = {p: (int(size), int(crc)) for p, size, crc in frame.itertuples(index=False)}
    listed = {a: {p: v for p, v in checksums.items() if p.startswith(f"Actor_{a:02d}/")} for a in actors}
    present = [a for a, files in listed.items() if len(files) == FILES_PER_ACTOR and all(  # every file as extracted
        (out / p).is_file() and (out / p).stat().st_size == size and zlib.crc32((out / p).read_bytes()) == crc
        for p, (size, crc) in files.items())]
    todo = [a for a in actors if a not in present]
    extracted, failures = [], []
    if todo:
        url = (mirror.rstrip("/") + "/" + ARCHIVE_NAME) if mirror else OFFICIAL_URL
        spec = RemoteFile(f".downloads/{ARCHIVE_NAME}", (url,), archive_size, f"md5:{archive_md5}", resume=True)
        if progress:
            print(f"RAVDESS -> {out}: {ARCHIVE_NAME}, {archive_size / 1e6:.0f} MB, for actors {_ids(todo)}")
        settings = FetchSettings(retries=retries, backoff_s=backoff_s, timeout_s=timeout_s, progress=progress)
        _, failure = fetch_file(spec, out, settings)
        extracted, failures = ([], [failure]) if failure else _extract(out / spec.path, out, todo, checksums)
        if not failures and not keep_zip:
            (out / spec.path).unlink()  # 208 MB: the checksum list verifies the extracted files from now on
    frame, csv_path = write_failures(out, failures)
    return RavdessResult(out, present, extracted, frame, 0, csv_path)


def _extract(zip_path: Path, out: Path, actors, checksums: dict) -> tuple[list[int], list[dict]]:
    extracted, failures = [], []
    with zipfile.ZipFile(zip_path) as zf:
        members: dict[int, list[zipfile.ZipInfo]] = {}  # speech WAVs by actor, wherever Actor_XX/ sits in the zip
        for info in zf.infolist():
            match = _SPEECH_MEMBER.search(info.filename)
            if match and "__MACOSX" not in info.filename and match.group(1) == match.group(3):
                members.setdefault(int(match.group(1)), []).append(info)
        for actor in actors:
            infos = members.get(actor, [])
            folder = f"Actor_{actor:02d}"
            if len(infos) != FILES_PER_ACTOR:
                failures.append({"path": f"{folder}/", "url": str(zip_path), "reason": "incomplete_archive",
                                 "detail": f"{len(infos)} of {FILES_PER_ACTOR} speech files for actor {actor} in "
                                           f"{zip_path.name}; fetch the archive again (delete it) or use another "
                                           "--mirror"})
                continue
            n_failed = len(failures)
            for info in infos:
                rel = f"{folder}/{info.filename.rsplit('/', 1)[-1]}"
                try:
                    with atomic_path(out / rel) as tmp, zf.open(info) as src, open(tmp, "wb") as dst:
                        shutil.copyfileobj(src, dst)  # the zip reader raises BadZipFile at the end on a CRC mismatch
                except zipfile.BadZipFile as err:
                    failures.append({"path": rel, "url": zf.filename, "reason": "checksum_mismatch",
                                     "detail": f"{err}; the archive is damaged: delete {zf.filename} and re-run"})
                else:
                    checksums[rel] = (info.file_size, info.CRC)
            if len(failures) == n_failed:
                extracted.append(actor)
    rows = [(p, size, crc) for p, (size, crc) in sorted(checksums.items())]
    write_csv(out / CHECKSUMS_NAME, pd.DataFrame(rows, columns=["path", "size", "crc32"]), sep="\t")
    return extracted, failures


def _ids(actors) -> str:
    return ", ".join(str(a) for a in actors) if actors else "none"
