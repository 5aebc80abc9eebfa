"""A small synthetic corpus in the official CREMA-D layout: the embedded default data set and the test fixture.
Both modalities carry the clip's emotion with independent random strengths (so fusion has something to combine);
actors have their own voices and faces (so speaker-independent splits score lower than random ones, as on CREMA-D)."""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

import numpy as np

from mer_utils.core.atomic_io import atomic_path, read_json, write_csv, write_json, write_text
from mer_utils.data.cremad_vocabulary import EMOTIONS, SENTENCES
from mer_utils.data.media_health import SAMPLE_RATE
from mer_utils.data.synthetic import audio as synth_audio, video as synth_video

logger = logging.getLogger(__name__)

# Bump when the generator changes what it writes, so old folders are not reused.
GENERATOR_VERSION = 1
DEFAULT_SENTENCES = ("DFA", "IEO", "ITS", "TSI")
CONFIG_NAME = "synth_config.json"
SCRATCH_NAME = ".partial"
# Like the real corpus, IEO is acted at three intensities (NEU only unspecified).
IEO_LEVELS = ("LO", "MD", "HI")
LEVEL_GAIN = {"LO": 0.6, "MD": 0.85, "HI": 1.1, "XX": 0.85}
DURATION_S = 1.6  # mean clip length; each clip varies by up to 10 %
FPS = 15
FRAME_SIZE = (192, 144)  # (width, height); the Haar cascade needs at least (96, 72)
README = """SYNTHETIC CREMA-D-SHAPED CORPUS - NOT REAL SPEECH OR FACES

Made by mer_utils.data.synthetic.corpus.make_synthetic_corpus so the toolkit runs end to end without
the real CREMA-D. Voices come from a source-filter model (harmonic source, formants,
syllable rhythm) and faces are drawn cartoons; emotion moves pitch, loudness, rate,
spectral tilt and breathiness, and the mouth, brows and eyes. Each actor has a voice
and face of their own, and each clip a random expression strength per modality.
Scores measured on it test the code, not emotion recognition: never report them as
CREMA-D results.

Parameters (also in synth_config.json; the same parameters give the same files):
"""


def clip_plan(*, n_actors: int, sentences=DEFAULT_SENTENCES) -> list[tuple[int, str, str, str]]:
    """(actor_id, sentence, emotion, level) of every clip, in CREMA-D's naming.

    >>> plan = clip_plan(n_actors=2, sentences=("DFA", "IEO"))
    >>> len(plan), plan[0]
    (44, (1001, 'DFA', 'ANG', 'XX'))
    """
    return [(actor, sentence, emotion, level) for actor in range(1001, 1001 + n_actors) for sentence in sentences
            for emotion in EMOTIONS for level in (IEO_LEVELS if sentence == "IEO" and emotion != "NEU" else ("XX",))]


def _atomic_media(path: Path):
    """``atomic_path`` in a scratch folder: the file keeps its extension (OpenCV's container) and no glob sees it."""
    return atomic_path(path, scratch_dir=path.parent.parent / SCRATCH_NAME)


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
                          with_video: bool = True, progress: bool = True) -> Path:
    """Write a synthetic CREMA-D-shaped corpus and return its root; same ``seed``, same bytes. A re-run with the
    same parameters returns at once or finishes an interrupted corpus; other parameters there raise ``ValueError``."""
    from tqdm import tqdm

    sentences = tuple(sentences)
    for ok, message in (
        (2 <= n_actors <= 91, f"n_actors must be between 2 (one per sex) and 91 (as in CREMA-D), got {n_actors}"),
        (sentences and set(sentences) <= set(SENTENCES) and len(set(sentences)) == len(sentences),
         f"sentences must be distinct CREMA-D codes from {sorted(SENTENCES)}, got {sentences}"),
        (isinstance(seed, (int, np.integer)) and seed >= 0, f"seed must be a non-negative integer, got {seed!r}"),
    ):
        if not ok:
            raise ValueError(message)
    out_dir = Path(out_dir)
    plan = clip_plan(n_actors=n_actors, sentences=sentences)
    params = {"generator_version": GENERATOR_VERSION, "n_actors": n_actors, "sentences": list(sentences),
              "seed": int(seed), "with_video": bool(with_video), "duration_s": DURATION_S, "fps": FPS,
              "frame_size": list(FRAME_SIZE), "sample_rate": SAMPLE_RATE, "n_clips": len(plan)}
    media = {"AudioWAV": ".wav", "VideoFlash": ".flv"} if with_video else {"AudioWAV": ".wav"}
    expected = [out_dir / folder / f"{_name(c)}{suffix}" for folder, suffix in media.items() for c in plan]
    expected += [out_dir / "VideoDemographics.csv", out_dir / "README.txt"]
    out_dir.mkdir(parents=True, exist_ok=True)
    if _start_or_skip(out_dir, params, expected):
        logger.info("%s already holds this synthetic corpus (%d clips); nothing to do", out_dir, len(plan))
        return out_dir

    for folder in media:
        (out_dir / folder).mkdir(exist_ok=True)
    demographics, actors = [], {}
    for i, actor in enumerate(range(1001, 1001 + n_actors)):  # half men (like actor 1001), half women
        rng = np.random.default_rng([int(seed), actor, 0])
        race = str(rng.choice(["Caucasian", "African American", "Asian", "Unknown"], p=[0.6, 0.25, 0.12, 0.03]))
        sex = "Male" if i % 2 == 0 else "Female"
        demographics.append({"ActorID": actor, "Age": int(rng.integers(20, 75)), "Sex": sex, "Race": race,
                             "Ethnicity": "Hispanic" if rng.random() < 0.1 else "Not Hispanic"})
        voice_seq, look_seq = np.random.SeedSequence([int(seed), actor, 1]).spawn(2)
        actors[actor] = {"voice": synth_audio.random_voice(np.random.default_rng(voice_seq), sex=sex),
                         "look": synth_video.random_look(np.random.default_rng(look_seq), sex=sex, race=race,
                                                         frame_size=FRAME_SIZE)}
    for clip in tqdm(plan, desc=f"Synthesising {out_dir.name}", unit="clip", disable=not progress):
        _write_clip(out_dir, clip, actors[clip[0]], params)

    import pandas as pd

    # The official file quotes every header and string field but not the numbers.
    write_csv(out_dir / "VideoDemographics.csv", pd.DataFrame(demographics), quoting=csv.QUOTE_NONNUMERIC)
    write_text(out_dir / "README.txt", README + "".join(f"  {k}: {v}\n" for k, v in sorted(params.items())))
    write_json(out_dir / CONFIG_NAME, {"parameters": params, "complete": True})
    shutil.rmtree(out_dir / SCRATCH_NAME, ignore_errors=True)
    return out_dir


def _write_clip(out_dir: Path, clip, actor: dict, params: dict) -> None:
    """Render one clip's audio and video (each only if missing) from a clip-specific seed."""
    import soundfile as sf

    actor_id, sentence, emotion, level = clip
    key = [params["seed"], actor_id, list(SENTENCES).index(sentence), EMOTIONS.index(emotion),
           list(LEVEL_GAIN).index(level), 2]
    rng = np.random.default_rng(np.random.SeedSequence(key))
    duration = params["duration_s"] * rng.uniform(0.9, 1.1)
    # Each modality has its own random strength: a clip can sound flat yet look clearly happy (fusion exploits it).
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

