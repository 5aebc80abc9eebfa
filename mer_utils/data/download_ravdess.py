"""Getting RAVDESS speech (``mer download ravdess``): Zenodo's one archive of all 24 actors, fetched with
CREMA-D's engine (resumable), then the requested actors extracted to ``OUT/Actor_XX/``, each member checked by
the archive's CRC-32 and written atomically; ``ravdess_files.tsv`` lets a re-run verify them without the archive.
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
import zlib
from pathlib import Path

import pandas as pd

from mer_utils.core.atomic_io import atomic_path, write_csv, write_text
from mer_utils.data.download import DownloadResult, FetchSettings, RemoteFile, fetch_file, write_failures

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
    actors = _check_actors(actors)
    print(LICENCE)
    write_text(out / "LICENSE_RAVDESS.txt", LICENCE + "\n")
    checksums = _read_checksums(out)
    present = [a for a in actors if _actor_verified(out, a, checksums)]
    todo = [a for a in actors if a not in present]
    if not todo:
        return _finish(out, present, [], [])
    url = (mirror.rstrip("/") + "/" + ARCHIVE_NAME) if mirror else OFFICIAL_URL
    spec = RemoteFile(f".downloads/{ARCHIVE_NAME}", (url,), archive_size, f"md5:{archive_md5}", resume=True)
    if progress:
        print(f"RAVDESS -> {out}: {ARCHIVE_NAME}, {archive_size / 1e6:.0f} MB, for actors {_ids(todo)}")
    settings = FetchSettings(jobs=1, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s, progress=progress)
    fetched = fetch_file(spec, out, settings)
    if fetched.status == "failed":
        return _finish(out, present, [], [fetched.failure_row()])
    zip_path = out / spec.path
    extracted, failures = _extract(zip_path, out, todo, checksums)
    if not failures and not keep_zip:
        zip_path.unlink()  # 208 MB: the checksum list verifies the extracted files from now on
    return _finish(out, present, extracted, failures)


def _check_actors(actors) -> list[int]:
    actors = sorted(set(int(a) for a in actors)) if actors else list(ACTORS)
    wrong = [a for a in actors if a not in ACTORS]
    if wrong:
        raise ValueError(f"RAVDESS actor(s) {wrong} do not exist: actors are numbered 1 to 24; fix --actors")
    return actors


def _finish(out: Path, present, extracted, failures: list[dict]) -> RavdessResult:
    frame, csv_path = write_failures(out, failures)
    return RavdessResult(out, present, extracted, frame, 0, csv_path)


def _speech_members(zf: zipfile.ZipFile) -> dict[int, list[zipfile.ZipInfo]]:
    """Speech WAVs of the archive by actor, wherever the ``Actor_XX/`` folders sit in it."""
    members: dict[int, list[zipfile.ZipInfo]] = {}
    for info in zf.infolist():
        match = _SPEECH_MEMBER.search(info.filename)
        if match and "__MACOSX" not in info.filename and match.group(1) == match.group(3):
            members.setdefault(int(match.group(1)), []).append(info)
    return members


def _extract(zip_path: Path, out: Path, actors, checksums: dict) -> tuple[list[int], list[dict]]:
    extracted, failures = [], []
    with zipfile.ZipFile(zip_path) as zf:
        members = _speech_members(zf)
        for actor in actors:
            infos = members.get(actor, [])
            folder = f"Actor_{actor:02d}"
            if len(infos) != FILES_PER_ACTOR:
                failures.append({"path": f"{folder}/", "url": str(zip_path), "reason": "incomplete_archive",
                                 "detail": f"{len(infos)} of {FILES_PER_ACTOR} speech files for actor {actor} in "
                                           f"{zip_path.name}; fetch the archive again (delete it) or use another "
                                           "--mirror"})
                continue
            problems = [_extract_member(zf, info, out / folder, checksums) for info in infos]
            failures += [p for p in problems if p]
            if not any(problems):
                extracted.append(actor)
    _write_checksums(out, checksums)
    return extracted, failures


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, folder: Path, checksums: dict) -> dict | None:
    name = info.filename.rsplit("/", 1)[-1]
    rel = f"{folder.name}/{name}"
    try:
        with atomic_path(folder / name) as tmp, zf.open(info) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)  # the zip reader raises BadZipFile at the end on a CRC mismatch
    except zipfile.BadZipFile as err:
        return {"path": rel, "url": zf.filename, "reason": "checksum_mismatch",
                "detail": f"{err}; the archive is damaged: delete {zf.filename} and re-run"}
    checksums[rel] = (info.file_size, info.CRC)
    return None


def _read_checksums(out: Path) -> dict[str, tuple[int, int]]:
    path = out / CHECKSUMS_NAME
    if not path.exists():
        return {}
    frame = pd.read_csv(path, sep="\t", dtype={"path": str, "size": "int64", "crc32": "int64"})
    return {p: (int(s), int(c)) for p, s, c in frame.itertuples(index=False)}


def _write_checksums(out: Path, checksums: dict) -> None:
    frame = pd.DataFrame([(p, s, c) for p, (s, c) in sorted(checksums.items())], columns=["path", "size", "crc32"])
    write_csv(out / CHECKSUMS_NAME, frame, sep="\t")


def _actor_verified(out: Path, actor: int, checksums: dict) -> bool:
    """All 60 files of ``actor`` are listed and match their size and CRC-32."""
    prefix = f"Actor_{actor:02d}/"
    listed = {p: v for p, v in checksums.items() if p.startswith(prefix)}
    return len(listed) == FILES_PER_ACTOR and all(_crc_ok(out / p, size, crc) for p, (size, crc) in listed.items())


def _crc_ok(path: Path, size: int, crc: int) -> bool:
    if not path.is_file() or path.stat().st_size != size:
        return False
    value = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            value = zlib.crc32(chunk, value)
    return value == crc


def _ids(actors) -> str:
    return ", ".join(str(a) for a in actors) if actors else "none"
