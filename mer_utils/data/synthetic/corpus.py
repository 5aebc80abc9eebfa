"""A small synthetic corpus in the official CREMA-D layout: the embedded default data set and the test fixture.
Both modalities carry the clip's emotion with independent random strengths (so fusion has something to combine);
actors have their own voices and faces (so speaker-independent splits score lower than random ones, as on CREMA-D)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from mer_utils.core.atomic_io import atomic_path, read_json, write_csv, write_json, write_text
from mer_utils.data.cremad_vocabulary import EMOTIONS, SENTENCES
from mer_utils.data.media_health import SAMPLE_RATE

logger = logging.getLogger(__name__)

# Bump when the generator changes what it writes, so old folders are not reused.
GENERATOR_VERSION = 1
DEFAULT_SENTENCES = ("DFA", "IEO", "ITS", "TSI")
CONFIG_NAME = "synth_config.json"
SCRATCH_NAME = ".partial"
# Like the real corpus, IEO is acted at three intensities (NEU only unspecified).
IEO_LEVELS = ("LO", "MD", "HI")
LEVEL_GAIN = {"LO": 0.6, "MD": 0.85, "HI": 1.1, "XX": 0.85}


def clip_plan(*, n_actors: int, sentences=DEFAULT_SENTENCES) -> list[tuple[int, str, str, str]]:
    """(actor_id, sentence, emotion, level) of every clip, in CREMA-D's naming.

    >>> plan = clip_plan(n_actors=2, sentences=("DFA", "IEO"))
    >>> len(plan), plan[0]
    (44, (1001, 'DFA', 'ANG', 'XX'))
    """
    return [(actor, sentence, emotion, level) for actor in range(1001, 1001 + n_actors) for sentence in sentences
            for emotion in EMOTIONS for level in (IEO_LEVELS if sentence == "IEO" and emotion != "NEU" else ("XX",))]


def _check_arguments(n_actors, sentences, seed, duration_s, fps, frame_size) -> None:
    rules = (
        (2 <= n_actors <= 91, f"n_actors must be between 2 (one per sex) and 91 (as in CREMA-D), got {n_actors}"),
        (sentences and set(sentences) <= set(SENTENCES) and len(set(sentences)) == len(sentences),
         f"sentences must be distinct CREMA-D codes from {sorted(SENTENCES)}, got {sentences}"),
        (isinstance(seed, (int, np.integer)) and seed >= 0, f"seed must be a non-negative integer, got {seed!r}"),
        (0.8 <= duration_s <= 6.0, f"duration_s must be between 0.8 and 6 seconds, got {duration_s}"),
        (5 <= fps <= 60, f"fps must be between 5 and 60, got {fps}"),
        (len(frame_size) == 2 and frame_size[0] >= 96 and frame_size[1] >= 72,
         f"frame_size is (width, height) of at least (96, 72) so faces stay detectable, got {frame_size}"),
    )
    for ok, message in rules:
        if not ok:
            raise ValueError(message)


def _demographics(n_actors: int, seed: int) -> list[dict]:
    """One row per actor, half men (odd positions, like actor 1001) and half women."""
    rows = []
    for i in range(n_actors):
        actor = 1001 + i
        rng = np.random.default_rng([seed, actor, 0])
        race = rng.choice(["Caucasian", "African American", "Asian", "Unknown"], p=[0.6, 0.25, 0.12, 0.03])
        rows.append({"ActorID": actor, "Age": int(rng.integers(20, 75)), "Sex": "Male" if i % 2 == 0 else "Female",
                     "Race": str(race), "Ethnicity": "Hispanic" if rng.random() < 0.1 else "Not Hispanic"})
    return rows


def _atomic_media(path: Path):
    """``atomic_path`` with the temporary file in a scratch folder: it keeps its extension (OpenCV picks the
    container from it) and no ``VideoFlash/*.flv`` glob sees it."""
    return atomic_path(path, scratch_dir=path.parent.parent / SCRATCH_NAME)


def _expected_files(out_dir: Path, plan, with_video: bool) -> list[Path]:
    files = [out_dir / "AudioWAV" / f"{_name(c)}.wav" for c in plan]
    if with_video:
        files += [out_dir / "VideoFlash" / f"{_name(c)}.flv" for c in plan]
    return files + [out_dir / "VideoDemographics.csv", out_dir / "README.txt"]


def _name(clip) -> str:
    return "_".join(str(part) for part in clip)


def _start_or_skip(out_dir: Path, params: dict, expected: list[Path]) -> bool:
    """True when ``out_dir`` already holds this exact corpus; refuse folders that hold something else."""
    config_path = out_dir / CONFIG_NAME
    if config_path.exists():
        found = read_json(config_path)
        if found.get("parameters") != params:
            raise ValueError(f"{out_dir} holds a synthetic corpus made with other parameters "
                             f"({found.get('parameters')}); choose another folder or delete this one")
        if found.get("complete") and all(p.exists() for p in expected):
            return True
    elif (out_dir / "AudioWAV").is_dir() and any((out_dir / "AudioWAV").iterdir()):
        raise ValueError(f"{out_dir}/AudioWAV already has files but no {CONFIG_NAME}: it looks like a real "
                         f"CREMA-D copy; refusing to write synthetic clips into it. Choose an empty folder.")
    write_json(config_path, {"parameters": params, "complete": False})
    return False


def make_synthetic_corpus(out_dir, *, n_actors: int = 12, sentences=DEFAULT_SENTENCES, seed: int = 0,
                          with_video: bool = True, duration_s: float = 1.6, fps: int = 15,
                          frame_size: tuple = (192, 144), progress: bool = True) -> Path:
    """Write a synthetic CREMA-D-shaped corpus and return its root; same ``seed``, same bytes. ``duration_s``: the
    mean clip length (each varies by up to 10 %). A re-run with the same parameters returns at once or finishes an
    interrupted corpus; other parameters in the same folder raise ``ValueError``."""
    from tqdm import tqdm

    sentences = tuple(sentences)
    frame_size = tuple(int(v) for v in frame_size)
    _check_arguments(n_actors, sentences, seed, duration_s, fps, frame_size)
    out_dir = Path(out_dir)
    plan = clip_plan(n_actors=n_actors, sentences=sentences)
    params = {"generator_version": GENERATOR_VERSION, "n_actors": n_actors, "sentences": list(sentences),
              "seed": int(seed), "with_video": bool(with_video), "duration_s": float(duration_s), "fps": int(fps),
              "frame_size": list(frame_size), "sample_rate": SAMPLE_RATE, "n_clips": len(plan)}
    expected = _expected_files(out_dir, plan, with_video)
    out_dir.mkdir(parents=True, exist_ok=True)
    if _start_or_skip(out_dir, params, expected):
        logger.info("%s already holds this synthetic corpus (%d clips); nothing to do", out_dir, len(plan))
        return out_dir

    for sub in ("AudioWAV", "VideoFlash") if with_video else ("AudioWAV",):
        (out_dir / sub).mkdir(exist_ok=True)
    demographics = _demographics(n_actors, int(seed))
    actors = {row["ActorID"]: _make_actor(row, int(seed), frame_size) for row in demographics}
    for clip in tqdm(plan, desc=f"Synthesising {out_dir.name}", unit="clip", disable=not progress):
        _write_clip(out_dir, clip, actors[clip[0]], params)

    import csv

    import pandas as pd

    # The official file quotes every header and string field but not the numbers.
    write_csv(out_dir / "VideoDemographics.csv", pd.DataFrame(demographics), quoting=csv.QUOTE_NONNUMERIC)
    write_text(out_dir / "README.txt", _readme(params))
    write_json(out_dir / CONFIG_NAME, {"parameters": params, "complete": True})
    shutil.rmtree(out_dir / SCRATCH_NAME, ignore_errors=True)
    return out_dir


def _make_actor(row: dict, seed: int, frame_size: tuple) -> dict:
    from mer_utils.data.synthetic.audio import random_voice
    from mer_utils.data.synthetic.video import random_look

    voice_seq, look_seq = np.random.SeedSequence([seed, row["ActorID"], 1]).spawn(2)
    return {"voice": random_voice(np.random.default_rng(voice_seq), sex=row["Sex"]),
            "look": random_look(np.random.default_rng(look_seq), sex=row["Sex"], race=row["Race"],
                                frame_size=frame_size)}


def _write_clip(out_dir: Path, clip, actor: dict, params: dict) -> None:
    """Render one clip's audio and video (each only if missing) from a clip-specific seed."""
    import soundfile as sf

    from mer_utils.data.synthetic import audio as synth_audio, video as synth_video

    actor_id, sentence, emotion, level = clip
    key = [params["seed"], actor_id, list(SENTENCES).index(sentence), EMOTIONS.index(emotion),
           list(LEVEL_GAIN).index(level), 2]
    rng = np.random.default_rng(np.random.SeedSequence(key))
    duration = params["duration_s"] * rng.uniform(0.9, 1.1)
    # Each modality expresses the label with its own random strength: a clip can
    # sound flat yet look clearly happy, which is what fusion can exploit.
    audio_strength, video_strength = LEVEL_GAIN[level] * rng.uniform(0.35, 1.25, 2)
    audio_rng, video_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(key).spawn(2))
    style = synth_audio.clip_style(actor["voice"], emotion, strength=audio_strength, rng=audio_rng)

    wav = out_dir / "AudioWAV" / f"{_name(clip)}.wav"
    if not wav.exists():
        samples = synth_audio.synthesize_utterance(actor["voice"], style, sentence=sentence, duration_s=duration,
                                                   sr=params["sample_rate"], rng=audio_rng)
        with _atomic_media(wav) as tmp:
            sf.write(str(tmp), samples, params["sample_rate"], subtype="PCM_16", format="WAV")  # as CREMA-D's
    flv = out_dir / "VideoFlash" / f"{_name(clip)}.flv"
    if params["with_video"] and not flv.exists():
        peak = synth_video.clip_expression(actor["look"], emotion, strength=video_strength, rng=video_rng)
        frames = synth_video.render_frames(actor["look"], peak, n_frames=int(round(duration * params["fps"])),
                                           frame_size=tuple(params["frame_size"]), fps=params["fps"],
                                           syllable_rate=style["rate"], rng=video_rng)
        with _atomic_media(flv) as tmp:
            synth_video.write_video(tmp, frames, fps=params["fps"])


def _readme(params: dict) -> str:
    lines = [
        "SYNTHETIC CREMA-D-SHAPED CORPUS - NOT REAL SPEECH OR FACES",
        "",
        "Made by mer_utils.data.synthetic.corpus.make_synthetic_corpus so the toolkit runs end to end without",
        "the real CREMA-D. Voices come from a source-filter model (harmonic source, formants,",
        "syllable rhythm) and faces are drawn cartoons; emotion moves pitch, loudness, rate,",
        "spectral tilt and breathiness, and the mouth, brows and eyes. Each actor has a voice",
        "and face of their own, and each clip a random expression strength per modality.",
        "Scores measured on it test the code, not emotion recognition: never report them as",
        "CREMA-D results.",
        "",
        "Parameters (also in synth_config.json; the same parameters give the same files):",
    ]
    lines += [f"  {key}: {value}" for key, value in sorted(params.items())]
    return "\n".join(lines) + "\n"
