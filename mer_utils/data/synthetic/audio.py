"""Synthetic emotional speech from a source-filter voice model (numpy and scipy only): harmonics along a pitch
contour, cut into syllables shaped by vowel formants. Emotion moves pitch, loudness, rate, spectral tilt and
breathiness; each actor's own voice and mannerisms make seen actors easier than new ones, as on real CREMA-D."""

from __future__ import annotations

import dataclasses

import numpy as np

from mer_utils.core.config import one_of
from mer_utils.data.cremad_vocabulary import EMOTIONS

# Prosody and voice quality per emotion, in the directions reported for acted speech (e.g. Scherer 2003).
#   f0_st: pitch shift (semitones), range_st: pitch excursion, gain_db: loudness, rate: syllables/s, tilt: harmonic
#   roll-off exponent (higher = darker), breath: aspiration-noise share, tremor_st: vibrato depth, final_st: final
#   rise/fall, formant: relative formant shift (a smile shortens the vocal tract and raises them).
STYLE_KEYS = ("f0_st", "range_st", "gain_db", "rate", "tilt", "breath", "tremor_st", "final_st", "formant")
EMOTION_STYLE = {emotion: dict(zip(STYLE_KEYS, row)) for emotion, row in {
    #      f0_st range gain  rate  tilt  breath tremor final formant
    "ANG": (3.5, 5.0, 7.0, 5.0, 0.75, 0.03, 0.0, -1.5, 0.02),
    "DIS": (-1.5, 3.0, -1.0, 3.5, 1.45, 0.18, 0.0, -3.0, -0.02),
    "FEA": (5.5, 3.0, 1.0, 5.6, 1.30, 0.20, 0.6, 2.5, 0.02),
    "HAP": (4.5, 7.0, 4.0, 4.9, 0.95, 0.05, 0.0, 1.0, 0.05),
    "NEU": (0.0, 3.0, 0.0, 4.3, 1.20, 0.07, 0.0, -1.0, 0.0),
    "SAD": (-2.5, 1.5, -6.0, 3.1, 1.70, 0.25, 0.15, -2.0, -0.03),
}.items()}
# Clip-to-clip variation of one actor acting one emotion (one standard deviation).
CLIP_NOISE = dict(zip(STYLE_KEYS, (0.72, 0.6, 0.9, 0.21, 0.06, 0.018, 0.03, 0.48, 0.009)))
# Actors' habits (their own way of acting each emotion) vary this many times more: seen actors are easier.
HABIT_SCALE = 2.0

# Formants (Hz) of a few vowels for an adult male vocal tract, scaled by the actor's vocal-tract factor.
VOWEL_FORMANTS = {
    "a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (300, 2200, 2900),
    "o": (570, 840, 2410), "u": (330, 1020, 2240), "@": (500, 1500, 2500),
}
# Vowel nucleus of each syllable of the CREMA-D sentences (rough: what matters is each sentence's own rhythm).
SENTENCE_VOWELS = {
    "IEO": "ieee@o", "TIE": "aie@aioa@", "IOM": "aoaeu@ii", "IWW": "au@oii@a",
    "TAI": "@eeiooou", "MTI": "eiuooiiio", "IWL": "auae@uao", "ITH": "aiaae@o@o@",
    "DFA": "oo@e@ae", "ITS": "aiaiie@o", "TSI": "@@e@ii", "WSI": "ioi@u@oi@",
}


@dataclasses.dataclass(frozen=True)
class Voice:
    """What stays constant across one actor's clips."""

    f0_hz: float            # speaking base pitch
    tract: float            # formant scale (vocal-tract length)
    timbre_hz: float        # an extra resonance that colours this voice
    timbre_gain: float
    jitter: float           # cycle-to-cycle pitch irregularity (relative)
    habits: dict            # per-emotion offsets to EMOTION_STYLE: the actor's own way of acting
    quirks: dict            # per-emotion (Hz, gain) resonance: how this actor's voice colours each emotion
    noise_tilt: float       # colour of the recording-room noise


def random_voice(rng: np.random.Generator, *, sex: str) -> Voice:
    """Draw an actor's voice; ``sex`` ("Male"/"Female") sets pitch and tract length."""
    male = sex == "Male"
    habits = {emotion: {key: float(rng.normal(0.0, HABIT_SCALE * CLIP_NOISE[key])) for key in STYLE_KEYS}
              for emotion in EMOTIONS}  # drawn first: the seed's voices depend on this order
    return Voice(f0_hz=float(rng.uniform(95, 140) if male else rng.uniform(175, 235)),
                 tract=float(rng.uniform(0.92, 1.04) if male else rng.uniform(1.10, 1.24)),
                 timbre_hz=float(rng.uniform(1200, 4200)),
                 timbre_gain=float(rng.uniform(0.05, 0.25)),  # the resonator peaks at ~10x: a bump of 2-8 dB
                 jitter=float(rng.uniform(0.004, 0.015)), habits=habits,
                 # Mannerisms no other actor shares (a nasal disgust, a pressed anger): cues a model can learn
                 # for the actors it has heard but that do not carry to new ones.
                 quirks={e: (float(rng.uniform(700, 3800)), float(rng.uniform(0.06, 0.25))) for e in EMOTIONS},
                 noise_tilt=float(rng.uniform(0.0, 0.9)))


def clip_style(voice: Voice, emotion: str, *, strength: float, rng: np.random.Generator) -> dict:
    """Prosody settings of one clip; ``strength`` in [0, 1.2]: 0 is the actor's neutral voice (as in the real
    crowd votes, weakly acted clips sound neutral)."""
    one_of(emotion, EMOTIONS, "emotion")
    style = {}
    for key in STYLE_KEYS:
        neutral = EMOTION_STYLE["NEU"][key] + voice.habits["NEU"][key]
        target = EMOTION_STYLE[emotion][key] + voice.habits[emotion][key]
        style[key] = neutral + strength * (target - neutral) + rng.normal(0.0, CLIP_NOISE[key])
    style.update(rate=max(style["rate"], 2.0), tilt=max(style["tilt"], 0.4),
                 breath=min(max(style["breath"], 0.0), 0.6), tremor_st=max(style["tremor_st"], 0.0))
    quirk_hz, quirk_gain = voice.quirks[emotion]
    style.update(quirk_hz=quirk_hz * rng.uniform(0.95, 1.05), quirk_gain=quirk_gain * rng.uniform(0.7, 1.3))
    return style


def _resonator(x: np.ndarray, freq: float, bandwidth: float, sr: int) -> np.ndarray:
    """Klatt's second-order resonator: unity gain at 0 Hz, a peak at ``freq``."""
    from scipy.signal import lfilter
    c = -np.exp(-2 * np.pi * bandwidth / sr)
    b = 2 * np.exp(-np.pi * bandwidth / sr) * np.cos(2 * np.pi * min(freq, 0.45 * sr) / sr)
    return lfilter([1.0 - b - c], [1.0, -b, -c], x)


def _pitch_track(voice: Voice, style: dict, n: int, sr: int, syllables, rng) -> np.ndarray:
    """F0 in Hz per sample: declination, one accent per syllable, final rise/fall, tremor, jitter."""
    t = np.arange(n) / sr
    rel = np.linspace(0.0, 1.0, n)
    st = np.full(n, style["f0_st"]) - 0.3 * style["range_st"] * rel
    for start, stop in syllables:
        centre, width = (start + stop) / 2 / sr, max((stop - start) / sr / 2.5, 0.02)
        st += style["range_st"] * rng.uniform(0.1, 0.7) * np.exp(-0.5 * ((t - centre) / width) ** 2)
    st += style["final_st"] * np.clip((rel - 0.75) / 0.25, 0.0, 1.0)
    st += style["tremor_st"] * np.sin(2 * np.pi * rng.uniform(5.0, 7.0) * t)
    # Jitter: white noise smoothed over ~5 ms, so it wobbles the period rather than adding hiss.
    wobble = np.convolve(rng.normal(0.0, 1.0, n), np.ones(80) / np.sqrt(80), mode="same")
    return voice.f0_hz * 2.0 ** (st / 12.0) * (1.0 + voice.jitter * wobble)


def _harmonic_source(f0: np.ndarray, tilt: float, sr: int) -> np.ndarray:
    step = np.exp(2j * np.pi * np.cumsum(f0) / sr)
    harmonic = np.ones_like(step)
    source = np.zeros_like(f0)
    for k in range(1, int(5000 / f0.min()) + 1):
        harmonic *= step  # exp(i k phase) by repeated multiplication: cheaper than k sines
        audible = (k * f0) < 5000.0  # keep below 5 kHz: no aliasing, speech-like band
        source += audible * harmonic.imag / k**tilt
    return source


def synthesize_utterance(voice: Voice, style: dict, *, sentence: str, duration_s: float,
                         sr: int, rng: np.random.Generator) -> np.ndarray:
    """Render one sentence as float32 samples in [-1, 1]."""
    from scipy.signal import lfilter

    n = int(round(duration_s * sr))
    vowels = SENTENCE_VOWELS[sentence]
    lead = int(rng.uniform(0.08, 0.2) * sr)
    # Speaking rate sets how long the speech lasts; a slow sentence fills the clip.
    speech = min(int(len(vowels) / style["rate"] * sr), n - lead - int(0.08 * sr))
    bounds = lead + np.cumsum(np.r_[0, rng.uniform(0.7, 1.3, len(vowels))])
    bounds = (lead + (bounds - lead) / (bounds[-1] - lead) * speech).astype(int)
    syllables = list(zip(bounds[:-1], bounds[1:]))

    f0 = _pitch_track(voice, style, n, sr, syllables, rng)
    voiced = _harmonic_source(f0, style["tilt"], sr)
    voiced /= np.std(voiced) + 1e-9
    # Aspiration noise, low-passed: breathiness should darken the voice, not add hiss.
    breath = lfilter([1.0], [1.0, -0.6], rng.normal(0.0, 1.0, n))
    breath /= np.std(breath) + 1e-9
    out = np.zeros(n)
    for (start, stop), vowel in zip(syllables, vowels):
        seg = stop - start
        burst = min(int(rng.uniform(0.02, 0.045) * sr), seg // 3)
        env = np.ones(seg - burst)
        ramp = min(len(env) // 2, int(0.03 * sr))
        window = np.hanning(2 * ramp)
        env[:ramp], env[-ramp:] = window[:ramp], window[ramp:]
        env *= rng.uniform(0.6, 1.0)  # stressed vs unstressed syllables
        sl = slice(start + burst, stop)
        excitation = (1 - style["breath"]) * voiced[sl] + style["breath"] * breath[sl]
        tract = voice.tract * (1.0 + style["formant"])
        # Cascade of F1-F3 (Klatt-style): the low harmonics pass, so pitch stays audible.
        for freq, bw in zip(VOWEL_FORMANTS[vowel], (80.0, 110.0, 160.0)):
            excitation = _resonator(excitation, freq * tract, bw * tract, sr)
        vowel_part = env * excitation
        out[sl] += vowel_part
        # The consonant: a noise burst before the vowel at 0.3 of its level, not to swamp the voice-quality cues.
        hiss = _resonator(rng.normal(0.0, 1.0, burst) * np.hanning(burst), rng.uniform(2500, 5000), 1500.0, sr)
        out[start:start + burst] += 0.3 * hiss * np.std(vowel_part) / (np.std(hiss) + 1e-12)
    out += voice.timbre_gain * _resonator(out, voice.timbre_hz, 300.0, sr)
    out += style["quirk_gain"] * _resonator(out, style["quirk_hz"], 250.0, sr)

    active = out[lead:lead + speech]
    out *= 10 ** ((-24.0 + style["gain_db"]) / 20) / (np.sqrt(np.mean(active**2)) + 1e-12)
    out = np.tanh(out * 1.2) / 1.2  # loud voices saturate softly instead of clipping
    room = rng.normal(0.0, 1.0, n)
    room = room - voice.noise_tilt * np.r_[0.0, room[:-1]]  # differenced noise is brighter
    out += 10 ** (rng.uniform(-58, -48) / 20) * room / (np.std(room) + 1e-12)
    return np.clip(out, -1.0, 1.0).astype(np.float32)
