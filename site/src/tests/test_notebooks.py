"""The Colab notebooks run top to bottom in smoke mode (TCLIF_SMOKE=1) and are saved clean."""

import os

import nbformat
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLAB = os.path.join(REPO, "colab")
NOTEBOOKS = ("quickstart.ipynb", "gradient_analysis.ipynb", "shd_tclif.ipynb")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_saved_clean_with_an_install_cell(name):
    nb = nbformat.read(os.path.join(COLAB, name), as_version=4)
    nbformat.validate(nb)
    # The Colab badge and REPO_URL follow pyproject.toml's repository URL: tests/test_docs.py.
    assert "pip" in nb.cells[1].source and 'find_spec("tclif_jax")' in nb.cells[1].source
    for cell in nb.cells:
        if cell.cell_type == "code":
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            assert not errors, f"{name} carries a stale error output"


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_smoke_mode(name, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    # The kernel inherits this environment: smoke sizes, the repo importable (so the
    # install cell is a no-op), a non-interactive plotting backend.
    monkeypatch.setenv("TCLIF_SMOKE", "1")
    monkeypatch.setenv("PYTHONPATH", REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TCLIF_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    nb = nbformat.read(os.path.join(COLAB, name), as_version=4)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError if any cell raises
    install_out = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "tclif_jax" in install_out and "pip" not in install_out
