"""Synthetic talking faces: a shaded cartoon face, drawn with OpenCV, that its Haar cascade finds. Emotion moves the
facial action units of the FER literature; each actor has a look, resting face and way of showing each emotion of
their own; every clip has head jitter, an expression onset, talking, blinks, a lighting change and sensor noise."""

from __future__ import annotations

import dataclasses

import numpy as np

from mer_utils.core.config import one_of
from mer_utils.data.cremad_vocabulary import EMOTIONS

# Expression parameters per emotion (0 = relaxed): eye: eye opening (1 = normal), brow_h: brow raise, brow_a:
# inner-brow lowering (+, anger's knit) or raising (-, sadness/fear), curve: lip-corner pull (+ smile, - frown),
# open: jaw drop, teeth: teeth shown, sneer: upper-lip raise.
FACE_KEYS = ("eye", "brow_h", "brow_a", "curve", "open", "teeth", "sneer")
EMOTION_FACE = {
    "ANG": dict(eye=0.75, brow_h=-1.0, brow_a=1.0, curve=-0.3, open=0.35, teeth=1.0, sneer=0.2),
    "DIS": dict(eye=0.65, brow_h=-0.5, brow_a=0.4, curve=-0.5, open=0.15, teeth=0.0, sneer=1.0),
    "FEA": dict(eye=1.45, brow_h=1.1, brow_a=-0.5, curve=-0.25, open=0.85, teeth=0.0, sneer=0.0),
    "HAP": dict(eye=0.75, brow_h=0.2, brow_a=0.0, curve=1.0, open=0.45, teeth=0.8, sneer=0.0),
    "NEU": dict(eye=1.0, brow_h=0.0, brow_a=0.0, curve=0.0, open=0.05, teeth=0.0, sneer=0.0),
    "SAD": dict(eye=0.7, brow_h=0.2, brow_a=-1.0, curve=-0.8, open=0.0, teeth=0.0, sneer=0.0),
}
FACE_NOISE = dict(eye=0.12, brow_h=0.25, brow_a=0.25, curve=0.25, open=0.12, teeth=0.2, sneer=0.2)

# Skin tones (BGR) from light to dark; an actor's tone is drawn around one of them.
_SKIN = {"Caucasian": (150, 180, 225), "Asian": (120, 165, 210),
         "African American": (60, 90, 130), "Unknown": (105, 140, 185)}


@dataclasses.dataclass(frozen=True)
class Look:
    """What stays constant across one actor's clips (sizes in pixels)."""

    skin: tuple
    hair: tuple
    shirt: tuple
    background: tuple
    centre: tuple           # face centre (x, y)
    half_width: float
    half_height: float
    eye_gap: float          # eye distance from the midline, as a fraction of half_width
    mouth_width: float      # fraction of half_width
    long_hair: bool
    resting: dict           # the actor's resting face: offsets to every expression parameter
    habits: dict            # per-emotion offsets: this actor's own way of showing each emotion


def random_look(rng: np.random.Generator, *, sex: str, race: str, frame_size: tuple) -> Look:
    """Draw an actor's appearance for frames of ``frame_size`` = (width, height)."""
    width, height = frame_size
    half_height = height * rng.uniform(0.27, 0.32) * (1.04 if sex == "Male" else 0.97)
    skin = np.clip(np.array(_SKIN.get(race, _SKIN["Unknown"])) * rng.uniform(0.85, 1.12)
                   + rng.normal(0, 8, 3), 30, 245)
    hair = rng.uniform(10, 70, 3) if rng.random() < 0.75 else np.array([60.0, 120.0, 170.0]) * rng.uniform(0.7, 1.2)
    background = rng.uniform(50, 210, 3)
    # The cascade needs the face outline: hair and background must not blend into the skin.
    if abs(_luma(hair) - _luma(skin)) < 60:
        hair = hair * 0.4
    if abs(_luma(background) - _luma(skin)) < 35:
        background = np.clip(background + (45 if _luma(skin) < 128 else -45), 0, 255)
    return Look(skin=tuple(skin.tolist()), hair=tuple(hair.tolist()), shirt=tuple(rng.uniform(30, 220, 3).tolist()),
                background=tuple(background.tolist()),
                centre=(width / 2 + rng.uniform(-0.08, 0.08) * width, height * rng.uniform(0.46, 0.54)),
                half_width=half_height * rng.uniform(0.68, 0.82), half_height=half_height,
                eye_gap=float(rng.uniform(0.36, 0.46)), mouth_width=float(rng.uniform(0.32, 0.45)),
                long_hair=sex == "Female" and rng.random() < 0.8,
                resting={key: float(rng.normal(0.0, 0.8 * FACE_NOISE[key])) for key in FACE_KEYS},
                habits={emotion: {key: float(rng.normal(0.0, FACE_NOISE[key])) for key in FACE_KEYS}
                        for emotion in EMOTIONS})


def _luma(bgr) -> float:
    return float(np.dot(bgr, (0.114, 0.587, 0.299)))


def clip_expression(look: Look, emotion: str, *, strength: float, rng: np.random.Generator) -> dict:
    """Peak expression of one clip: the actor's resting face moved ``strength`` of the way to ``emotion``."""
    one_of(emotion, EMOTIONS, "emotion")
    neutral, target, habits = EMOTION_FACE["NEU"], EMOTION_FACE[emotion], look.habits[emotion]
    return {key: neutral[key] + look.resting[key] + strength * (target[key] - neutral[key] + habits[key])
            + rng.normal(0.0, FACE_NOISE[key]) for key in FACE_KEYS}


def _static_layer(look: Look, frame_size: tuple, lighting: float) -> np.ndarray:
    """Background, shoulders, hair and the shaded skin: what does not move with the expression."""
    import cv2

    width, height = frame_size
    cx, cy = look.centre
    a, b = look.half_width, look.half_height
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    img[:] = np.array(look.background, np.float32) * (1.1 - 0.2 * yy / height)[..., None]
    cv2.ellipse(img, _pt((cx, cy + 2.1 * b)), _pt((2.0 * a, b)), 0, 180, 360, look.shirt, -1)  # shoulders
    cv2.rectangle(img, _pt((cx - 0.4 * a, cy + 0.6 * b)), _pt((cx + 0.4 * a, cy + 1.3 * b)),
                  _bgr(0.8 * np.array(look.skin)), -1)  # neck
    cv2.ellipse(img, _pt((cx, cy - 0.1 * b)), _pt((1.15 * a, 1.1 * b)), 0, 180, 360, look.hair, -1)
    if look.long_hair:
        cv2.rectangle(img, _pt((cx - 1.15 * a, cy - 0.1 * b)), _pt((cx + 1.15 * a, cy + 1.35 * b)), look.hair, -1)
    # Skin: lit from the upper left, darker towards the rim (a rough Lambertian ball).
    d = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2
    shade = np.clip(1.1 - 0.35 * d - 0.08 * (xx - cx) / a - 0.08 * (yy - cy) / b, 0.5, 1.15)
    face = d <= 1.0
    img[face] = (np.array(look.skin, np.float32) * shade[face][:, None])
    # A fringe keeps the forehead from looking bald and frames the face.
    cv2.ellipse(img, _pt((cx, cy - 0.72 * b)), _pt((0.95 * a, 0.32 * b)), 0, 180, 360, look.hair, -1)
    return img * lighting


def _draw_features(img: np.ndarray, look: Look, ex: dict) -> None:
    import cv2

    cx, cy = look.centre
    a, b = look.half_width, look.half_height
    skin = np.array(look.skin, np.float32)
    eye_y = cy - 0.18 * b
    for side in (-1, 1):
        ex_ = cx + side * look.eye_gap * a
        brow_y = eye_y - 0.22 * b - ex["brow_h"] * 0.06 * b
        # The socket spans eye to brow, so raised brows (fear, sadness) keep the dark eye band.
        socket_h = max(0.16 * b, (eye_y - brow_y) / 2 + 0.09 * b)
        _ellipse(img, (ex_, (eye_y + brow_y) / 2 + 0.04 * b), (0.3 * a, socket_h), skin * 0.5)
        height = 0.09 * b * max(ex["eye"], 0.08)
        _ellipse(img, (ex_, eye_y), (0.2 * a, height), (200, 200, 205))
        if ex["eye"] > 0.2:
            r = max(1.0, 0.07 * b * min(ex["eye"], 1.0))
            cv2.circle(img, _pt((ex_, eye_y)), int(round(r)), (25, 20, 20), -1, cv2.LINE_AA)
        cv2.ellipse(img, _pt((ex_, eye_y)), _pt((0.2 * a, height)), 0, 180, 360, (20, 20, 25), 1, cv2.LINE_AA)
        inner = (cx + side * 0.14 * a, brow_y + ex["brow_a"] * 0.06 * b)
        outer = (cx + side * 0.72 * a, brow_y - ex["brow_a"] * 0.02 * b)
        cv2.line(img, _pt(inner), _pt(outer), _bgr(np.array(look.hair) * 0.7), max(2, int(0.07 * b)), cv2.LINE_AA)
    nose_y = cy + 0.15 * b
    _ellipse(img, (cx, nose_y), (0.13 * a, 0.06 * b), skin * 0.65)
    cv2.line(img, _pt((cx + 0.05 * a, eye_y + 0.1 * b)), _pt((cx + 0.06 * a, nose_y - 0.05 * b)),
             _bgr(skin * 0.8), 2, cv2.LINE_AA)
    if ex["sneer"] > 0.3:  # disgust wrinkles the nose
        for y in (nose_y - 0.14 * b, nose_y - 0.09 * b):
            cv2.line(img, _pt((cx - 0.12 * a, y)), _pt((cx + 0.12 * a, y)),
                     _bgr(skin * (1 - 0.25 * min(ex["sneer"], 1.2))), 1, cv2.LINE_AA)
    mouth_y = cy + 0.47 * b
    half = look.mouth_width * a * (1 + 0.15 * max(ex["curve"], 0.0))
    t = np.linspace(-1, 1, 17)
    bend = mouth_y - ex["curve"] * 0.12 * b * t**2
    opening = max(ex["open"], 0.0) * 0.16 * b * (1 - t**2)
    lift = max(ex["sneer"], 0.0) * 0.05 * b * np.clip(1 - (t - 0.4) ** 2 * 3, 0, 1)  # one-sided upper-lip raise
    top = np.c_[cx + half * t, bend - 0.03 * b - lift - 0.3 * opening]
    bottom = np.c_[cx + half * t, bend + 0.03 * b + opening]
    lips = np.r_[top, bottom[::-1]]
    cv2.fillPoly(img, [np.round(lips).astype(np.int32)], _bgr(skin * np.array([0.55, 0.5, 0.85])), cv2.LINE_AA)
    if ex["open"] > 0.12:
        inner = np.r_[top[2:-2] + [0, 0.025 * b], bottom[2:-2][::-1] - [0, 0.025 * b]]
        cv2.fillPoly(img, [np.round(inner).astype(np.int32)], (35, 25, 45), cv2.LINE_AA)
        if ex["teeth"] > 0.3:
            show = 0.025 * b + 0.05 * b * min(ex["teeth"], 1.2)
            teeth = np.r_[top[3:-3] + [0, 0.025 * b], top[3:-3][::-1] + [0, show]]
            cv2.fillPoly(img, [np.round(teeth).astype(np.int32)], (215, 220, 225), cv2.LINE_AA)


def _pt(xy) -> tuple:
    return int(round(xy[0])), int(round(xy[1]))


def _ellipse(img, centre, axes, colour) -> None:
    import cv2
    cv2.ellipse(img, _pt(centre), _pt(axes), 0, 0, 360, _bgr(colour), -1, cv2.LINE_AA)


def _bgr(colour) -> tuple:
    # OpenCV wants plain Python numbers for a colour, not numpy scalars.
    return tuple(float(c) for c in colour)


def render_frames(look: Look, peak: dict, *, n_frames: int, frame_size: tuple, fps: float,
                  syllable_rate: float, rng: np.random.Generator) -> np.ndarray:
    """Frames (n, height, width, 3) uint8 BGR: onset from the resting face to ``peak``, talking, blinks, jitter."""
    import cv2

    width, height = frame_size
    base = _static_layer(look, frame_size, lighting=rng.uniform(0.85, 1.12))
    onset = rng.uniform(0.1, 0.4) * n_frames
    talk_phase = rng.uniform(0, 2 * np.pi)
    blink = int(rng.integers(0, n_frames)) if rng.random() < 0.4 else -1
    shift = np.cumsum(rng.normal(0.0, 0.6, (n_frames, 2)), axis=0)  # slow head drift
    angle = np.cumsum(rng.normal(0.0, 0.4, n_frames))
    rest = {key: EMOTION_FACE["NEU"][key] + look.resting[key] for key in FACE_KEYS}
    frames = np.empty((n_frames, height, width, 3), np.uint8)
    for i in range(n_frames):
        ramp = min(i / max(onset, 1.0), 1.0)
        ex = {key: rest[key] + ramp * (peak[key] - rest[key]) for key in FACE_KEYS}
        ex["open"] += 0.12 * max(np.sin(2 * np.pi * syllable_rate * i / fps + talk_phase), 0.0)
        if i == blink:
            ex["eye"] = 0.1
        img = base.copy()
        _draw_features(img, look, ex)
        rot = cv2.getRotationMatrix2D(look.centre, float(np.clip(angle[i], -6, 6)), 1.0)
        rot[:, 2] += np.clip(shift[i], -4, 4)
        img = cv2.warpAffine(img, rot, (width, height), borderMode=cv2.BORDER_REPLICATE)
        # Sensor noise: uniform integers (sd ~3) are five times cheaper to draw than Gaussians.
        img = cv2.GaussianBlur(img, (0, 0), 0.8) + rng.integers(-5, 6, img.shape, dtype=np.int8)
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def write_video(path, frames: np.ndarray, *, fps: float) -> None:
    """Encode frames as Flash Video (Sorenson H.263, 'FLV1') that OpenCV reads back."""
    import cv2

    height, width = frames.shape[1:3]
    # FFmpeg's FLV muxer knows the codec by its FLV tag (2); the 'FLV1' fourcc prints a warning per clip.
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, 2, float(fps), (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write FLV video to {path}: its FFmpeg backend lacks the FLV1 encoder")
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
