"""The fusion notebook stays thin, parameterised and committed without outputs.

CI executes it with nbmake once the expert runs exist; these checks catch a
broken structure in a second, without running it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "FUSION_02_multimodal_audio_visual_final_v01.ipynb"


@pytest.fixture(scope="module")
def notebook():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    return nb


def test_colab_cell_then_tagged_parameters(notebook):
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert 'if "google.colab" in sys.modules:' in code[0].source
    assert "parameters" in code[1].metadata.get("tags", [])
    for name in ("DATA_ROOT = None", "PROTOCOL =", "OUTPUTS =", "STRATEGIES =", "METADATA_DIR ="):
        assert name in code[1].source


def test_committed_without_outputs_and_without_function_definitions(notebook):
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            assert "def " not in cell.source and "class " not in cell.source


def test_every_step_is_explained_and_calls_the_package(notebook):
    kinds = [c.cell_type for c in notebook.cells]
    sources = "\n".join(c.source for c in notebook.cells)
    assert kinds.count("markdown") >= 5
    for call in ("latest_expert_runs(", "build_master_table(", "fuse_runs(", "make_report("):
        assert call in sources
