"""docs/notebook.ipynb runs start to finish in a real Jupyter kernel, offline."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

import embedstack

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "notebook.ipynb"


def own_kernelspec(folder: Path) -> dict[str, str]:
    """A `python3` kernelspec for this interpreter, and the environment that makes Jupyter find
    it first: a global spec could start another Python, without this checkout's embedstack."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    source = str(Path(embedstack.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p)
    kernel = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (embedstack tests)",
        "language": "python",
        "env": {"PYTHONPATH": path},
    }
    (spec / "kernel.json").write_text(json.dumps(kernel))
    return {"JUPYTER_PATH": str(folder), "JUPYTER_DATA_DIR": str(folder / "data")}


def cell_html(cell) -> str:
    """The text/html of a code cell's outputs."""
    return "".join(out.get("data", {}).get("text/html", "") for out in cell.get("outputs", []))


def test_example_notebook_runs(tmp_path, monkeypatch):
    for name, value in own_kernelspec(tmp_path / "jupyter").items():
        monkeypatch.setenv(name, value)
    from jupyter_client.kernelspec import KernelSpecManager

    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "strip outputs"
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError on the first cell that fails

    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [out for c in code for out in c.outputs if out.output_type == "error"]
    assert not errors
    search = next(c for c in code if "kb.search(" in c.source)
    assert "<table" in cell_html(search) and "printer" in cell_html(search)
    answer = next(c for c in code if "kb.ask(" in c.source)
    assert "descaling" in cell_html(answer) and "Evidence" in cell_html(answer)
    assert "spearman" in cell_html(next(c for c in code if "evaluate_sts(" in c.source))
