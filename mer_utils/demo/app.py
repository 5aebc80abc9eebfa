"""``mer app``: the demo in a browser (Gradio), locally, in Colab or as a Hugging Face Space (``build_app(
"hf://REPO_ID").launch()``); what a page shows is built without Gradio (:func:`answer_file`) and tested directly."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import NamedTuple

from mer_utils.core.labels import label_name
from mer_utils.demo import DEFAULT_HOP_S, DEFAULT_WINDOW_S
from mer_utils.demo.hub import local_checkpoints

# Set before gradio is imported: no usage statistics leave the user's machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
logger = logging.getLogger(__name__)
PROMPT = "Upload a video, a recording or a face image, or record one with your webcam or microphone."
_EXPERTS = {"audio": "Speech expert", "visual": "Face expert"}
TITLE = "Multimodal emotion recognition"
_INTRO = ("Upload a video, a recording or a face image, or record one, and the speech and face experts each give "
          "one probability per emotion (CREMA-D's six); the fusion combines them. Uploads and answers live in the "
          "server's temporary files and are deleted after about an hour.")
_KEEP_S = 3600  # how long uploads and the answers' files are kept


def build_app(checkpoints="checkpoints", *, allow_synthetic: bool = False):
    """The app's ``gr.Blocks``, its experts loaded once; ``checkpoints``: a folder or ``hf://REPO_ID``."""
    import gradio as gr

    checkpoints = local_checkpoints(checkpoints)
    models = warm_up(checkpoints, allow_synthetic=allow_synthetic)
    out_root = Path(tempfile.mkdtemp(prefix="mer_app_"))

    def respond(path, allow):
        for folder in out_root.glob("*"):  # earlier answers (a server runs for days)
            if folder.is_dir() and time.time() - folder.stat().st_mtime > _KEEP_S:
                shutil.rmtree(folder, ignore_errors=True)
        page = answer_file(path, checkpoints=checkpoints, out_dir=out_root / uuid.uuid4().hex[:12],
                           allow_synthetic=bool(allow))
        rows = [[cell if cell is not None else "n/a" for cell in row] for row in page.table]
        return (page.answer, gr.Label(value=page.fused or None), gr.Dataframe(value=rows or None), page.figure,
                page.provenance, gr.Image(value=page.timeline_figure, visible=page.timeline_figure is not None),
                gr.File(value=page.timeline_csv, visible=page.timeline_csv is not None))

    # delete_cache: Gradio's copies of uploads and outputs go after an hour, like the answers' own folders.
    with gr.Blocks(title=TITLE, delete_cache=(_KEEP_S, _KEEP_S)) as blocks:
        gr.Markdown(f"# {TITLE}\n\n{_INTRO}\n\n{models}", elem_id="mer-models")
        current = gr.State(None)  # the last file given, whichever way
        with gr.Row():
            with gr.Column(scale=2):
                with gr.Tab("Upload a file"):
                    upload = gr.File(label="A video (FLV/MP4/WebM), a recording (WAV/MP3/M4A) or a face image "
                                           "(PNG/JPEG)", type="filepath", elem_id="mer-upload")
                with gr.Tab("Record a video"):
                    # Not mirrored and with its sound: the file goes to the experts as recorded.
                    video = gr.Video(sources=["webcam"], include_audio=True, label="Webcam",
                                     webcam_options=gr.WebcamOptions(mirror=False), elem_id="mer-webcam")
                with gr.Tab("Record your voice"):
                    voice = gr.Audio(sources=["microphone"], type="filepath", label="Microphone",
                                     elem_id="mer-microphone")
                with gr.Tab("Take a photo"):
                    photo = gr.Image(sources=["webcam"], type="filepath", format="png", label="Face photo",
                                     elem_id="mer-photo")
                allow = gr.Checkbox(value=allow_synthetic, label="Also use models trained on the SYNTHETIC corpus "
                                    "(their answers on real people are not meaningful)", elem_id="mer-allow-synthetic")
                again = gr.Button("Analyse again", elem_id="mer-analyse")
            with gr.Column(scale=3):
                answer = gr.Markdown(PROMPT, elem_id="mer-answer")
                with gr.Row():
                    fused = gr.Label(label="Fused", num_top_classes=6, elem_id="mer-fused")
                    table = gr.Dataframe(headers=["emotion", "audio", "visual", "fused"], interactive=False,
                                         label="Probabilities per expert", elem_id="mer-probabilities")
                # No label: it would cover the figure's own title.
                figure = gr.Image(label="Probabilities, sampled frames and face boxes", show_label=False,
                                  type="filepath", interactive=False, elem_id="mer-figure")
                provenance = gr.Markdown(elem_id="mer-provenance")
                timeline_figure = gr.Image(label="Emotion timeline", type="filepath", interactive=False,
                                           visible=False, elem_id="mer-timeline")
                timeline_csv = gr.File(label="Timeline CSV (one row per window)", visible=False,
                                       elem_id="mer-timeline-csv")
        outputs = [answer, fused, table, figure, provenance, timeline_figure, timeline_csv]
        for source in (upload, video, voice, photo):
            source.change(lambda path: path, inputs=source, outputs=current).then(
                respond, inputs=[current, allow], outputs=outputs)
        again.click(respond, inputs=[current, allow], outputs=outputs)
    # One request at a time: the experts are shared by every request of the process.
    blocks.queue(default_concurrency_limit=1)
    blocks.mer_out_root = out_root
    return blocks


def warm_up(checkpoints, *, allow_synthetic: bool = False) -> str:
    """Load the experts a real video would get (the loaders keep them for the process) and say which they are."""
    import numpy as np

    from mer_utils.demo.predict import DemoInputs
    from mer_utils.demo.selection import describe_expert, load_experts
    probe = DemoInputs(video=None, audio=None, label="", name="a real video", kind="video")
    experts = load_experts(probe, checkpoints, weights_dir=checkpoints, allow_synthetic=allow_synthetic)
    if experts.audio is not None:  # the first prediction loads the feature libraries: do it now
        experts.audio.predict_proba([(np.random.default_rng(0).normal(0, 0.01, 16_000).astype(np.float32), 16_000)])
    lines = ["**Models for a real video:**"]
    lines += [f"- {'speech' if k == 'audio' else 'face'}: {describe_expert(e)}" for k, e in experts.provenance.items()]
    lines += [f"- {note}" for note in experts.notes]
    return "\n".join(lines)


def launch_app(checkpoints="checkpoints", *, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
               allow_synthetic: bool = False, block: bool = True, inline: bool | None = None):
    """Build and serve the app and print its URL; ``block=False`` returns at once (a notebook shows it inline)."""
    blocks = build_app(checkpoints, allow_synthetic=allow_synthetic)
    _, local_url, share_url = blocks.launch(server_name=host, server_port=port, share=share, inline=inline, quiet=True,
                                            prevent_thread_lock=True, allowed_paths=[str(blocks.mer_out_root)])
    print(f"mer app: serving on {local_url}" + (f" (public link: {share_url})" if share_url else ""), flush=True)
    if block:
        blocks.block_thread()
    return blocks


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
    from mer_utils.demo.selection import describe_expert
    if not path:
        return Page(PROMPT, {}, [], "", ok=False)
    path = Path(path)
    try:
        with collected_warnings() as heard:
            result = predict_clip(video=path, checkpoints=checkpoints, allow_synthetic=allow_synthetic,
                                  window=window, hop=hop)
            written = save_outputs(result, out_dir)
    except Exception as err:  # the page says what went wrong in words; the log keeps the traceback
        logger.warning("could not answer %s", path, exc_info=True)
        text = str(err).replace(str(path), path.name) or type(err).__name__  # the file's name, not the server's path
        return Page(f"### Could not analyse {path.name}\n\n{text}", {}, [], "", ok=False)
    top = result.top_emotion
    lines = [f"## Top emotion: {label_name(top)} ({top})"]
    if result.inputs.label:
        lines.append(f"Intended emotion (from the file name): {label_name(result.inputs.label)} "
                     f"({result.inputs.label}).")
    # The rule's name here (it says "untuned" when nothing was tuned on both experts); its details below.
    lines.append(f"**Fusion:** {result.fusion.split(',')[0]} (details under *What each model was trained on*)")
    notes = [*result.notes, *(w for w in heard if w not in result.notes)]
    if notes:
        lines += ["", "### Warnings and notes", *[f"- {note}" for note in notes]]
    if result.timeline is not None:
        lines.append(f"\nTimeline: {len(result.timeline.starts)} windows; the probabilities are their mean.")
    table = [[label_name(e), *(None if p is None else round(float(p[i]), 3)
                               for p in (result.audio_probs, result.visual_probs, result.fused_probs))]
             for i, e in enumerate(result.labels)]
    fused = {label_name(e): float(result.fused_probs[i]) for i, e in enumerate(result.labels)}
    provenance = ["### What each model was trained on"]
    provenance += [f"- **{_EXPERTS.get(expert, expert)}**: {describe_expert(entry)}"
                   + (f"; licence of the weights: {entry['licence']}" if entry.get("licence") else "")
                   for expert, entry in result.provenance.items()]
    provenance += [f"- **Audio from**: {result.audio_source}", f"- **Fusion**: {result.fusion}"]
    files = (os.fspath(written[k]) if k in written else None for k in ("figure", "timeline_figure", "timeline_csv"))
    return Page("\n".join(lines), fused, table, "\n".join(provenance), *files)


@contextlib.contextmanager
def collected_warnings():
    """Warnings raised (``warnings.warn``) or logged by the toolkit meanwhile, as a list of unique texts."""
    heard: list[str] = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = lambda record: heard.append(record.getMessage())
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
