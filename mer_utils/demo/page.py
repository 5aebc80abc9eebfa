"""What the browser app shows for one input, built without any web framework (so it is tested directly): the
answer, every warning the command line would print, provenance, table, figures; a plain message on an error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from pathlib import Path
from typing import NamedTuple

from mer_utils.core.labels import label_name
from mer_utils.demo.defaults import DEFAULT_HOP_S, DEFAULT_WINDOW_S

logger = logging.getLogger(__name__)
PROMPT = "Upload a video, a recording or a face image, or record one with your webcam or microphone."
_EXPERTS = {"audio": "Speech expert", "visual": "Face expert"}


class Page(NamedTuple):
    answer: str  # markdown: the top emotion, the intended one when known, the fusion, the warnings
    fused: dict  # {emotion name: fused share}, for a label widget; empty on an error
    table: list  # rows [emotion, audio, visual, fused] (None: that expert did not answer)
    provenance: str  # markdown, one paragraph per expert
    figure: str | None = None  # PNG: probability bars, sampled frames with the face box, provenance
    timeline_figure: str | None = None
    timeline_csv: str | None = None
    ok: bool = True


def answer_file(path, *, checkpoints="checkpoints", out_dir, allow_synthetic: bool = False,
                window: float = DEFAULT_WINDOW_S, hop: float = DEFAULT_HOP_S) -> Page:
    """The page for one uploaded or recorded file (its kind is read from its content)."""
    from mer_utils.demo.predict import predict_clip, save_outputs
    if not path:
        return Page(PROMPT, {}, [], "", ok=False)
    path = Path(path)
    try:
        with collected_warnings() as heard:
            result = predict_clip(video=path, checkpoints=checkpoints, allow_synthetic=allow_synthetic,
                                  window=window, hop=hop)
            written = save_outputs(result, out_dir, figure=True)
    except Exception as err:  # the page says what went wrong in words; the log keeps the traceback
        logger.warning("could not answer %s", path, exc_info=True)
        return error_page(path, err)
    return page_for(result, written, extra_warnings=heard)


def error_page(path: Path, err: BaseException) -> Page:
    """A plain message naming the file (its name, not the server's temporary path) and the fix."""
    text = str(err).replace(str(path), path.name) or type(err).__name__
    return Page(f"### Could not analyse {path.name}\n\n{text}", {}, [], "", ok=False)


@contextlib.contextmanager
def collected_warnings():
    """Warnings raised (``warnings.warn``) or logged by the toolkit meanwhile, as a list of unique texts."""
    heard: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record):
            heard.append(record.getMessage())

    handler = _Collect(level=logging.WARNING)
    package = logging.getLogger("mer_utils")
    package.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield heard
        heard.extend(str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning))
    finally:
        package.removeHandler(handler)
        heard[:] = list(dict.fromkeys(heard))


def page_for(result, written: dict, *, extra_warnings=()) -> Page:
    """The page of one :class:`~mer_utils.demo.predict.DemoResult` and the files ``save_outputs`` wrote."""
    top = result.top_emotion
    lines = [f"## Top emotion: {label_name(top)} ({top})"]
    if result.inputs.label:
        lines.append(f"Intended emotion (from the file name): {label_name(result.inputs.label)} "
                     f"({result.inputs.label}).")
    # The rule's name here (it says "untuned" when nothing was tuned on both experts); its details below.
    lines.append(f"**Fusion:** {result.fusion.split(',')[0]} (details under *What each model was trained on*)")
    notes = [*result.notes, *(w for w in extra_warnings if w not in result.notes)]
    if notes:
        lines += ["", "### Warnings and notes", *[f"- {note}" for note in notes]]
    if result.timeline is not None:
        lines.append(f"\nTimeline: {len(result.timeline.starts)} windows; the probabilities are their mean.")
    table = [[label_name(e), *(None if p is None else round(float(p[i]), 3)
                               for p in (result.audio_probs, result.visual_probs, result.fused_probs))]
             for i, e in enumerate(result.labels)]
    fused = {label_name(e): float(result.fused_probs[i]) for i, e in enumerate(result.labels)}
    return Page("\n".join(lines), fused, table, provenance_markdown(result),
                _str(written.get("figure")), _str(written.get("timeline_figure")), _str(written.get("timeline_csv")))


def _str(path) -> str | None:
    return None if path is None else os.fspath(path)


def provenance_markdown(result) -> str:
    """One paragraph per expert on what its checkpoint was trained on, then the audio source and the fusion."""
    from mer_utils.demo.selection import describe_expert
    lines = ["### What each model was trained on"]
    for expert, entry in result.provenance.items():
        parts = [describe_expert(entry)]
        parts += [f"licence of the weights: {entry['licence']}"] if entry.get("licence") else []
        lines.append(f"- **{_EXPERTS.get(expert, expert)}**: " + "; ".join(parts))
    lines += [f"- **Audio from**: {result.audio_source}", f"- **Fusion**: {result.fusion}"]
    return "\n".join(lines)
