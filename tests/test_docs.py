"""The README and the site (docs/) say what the code and the recorded data say.

* Every fenced Python block of the README, the site and the files the site includes is
  either run here (``<!-- example: NAME -->`` before it) or marked
  ``<!-- not-run: reason -->``; named examples are also checked for what they claim.
* Figures the pages quote equal the data files they name: the quickstart
  (``docs/results/quickstart/quickstart.json``), the S-MNIST runs, the paper's Table 1
  against the task configs, Table 6's parameter counts against the built models, and
  benchmark figures against ``benchmarks/results/``.
* The tests a page names exist; every public module has an API page in the nav.
* One repository URL: ``[project.urls] Repository`` of pyproject.toml. Without one there
  is no Colab badge and no placeholder anywhere; with one every badge and install cell
  uses it.
"""

import glob
import importlib
import json
import os
import re
import sys
import tomllib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import HAS_MNIST, ROOT

README = os.path.join(ROOT, "README.md")
# Files whose Markdown the site shows: its pages, plus what they include whole.
PAGES = sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))
INCLUDED = [os.path.join(ROOT, "CHANGELOG.md"), os.path.join(ROOT, "benchmarks", "RESULTS.md")]
MARKDOWN = [README, *PAGES, *(p for p in INCLUDED if os.path.exists(p))]
FENCE = re.compile(r"^```(?:python|py|pycon)\b.*?$\n(.*?)^```\s*$", re.M | re.S)
MARKER = re.compile(r"<!--\s*(example|not-run):?\s*(.*?)\s*-->")
OFFICIAL_REPO = "github.com/ZhangShimin1/TC-LIF"  # the paper's code, not this project


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def rel(path: str) -> str:
    return os.path.relpath(path, ROOT)


def python_blocks():
    """(file, line, marker kind, marker text, code) for every fenced Python block."""
    blocks = []
    for path in MARKDOWN:
        text = read(path)
        for match in FENCE.finditer(text):
            before = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
            marker = MARKER.fullmatch(before.strip())
            kind, note = marker.groups() if marker else (None, None)
            line = text[: match.start()].count("\n") + 1
            blocks.append((rel(path), line, kind, note, match.group(1)))
    return blocks


BLOCKS = python_blocks()
EXAMPLES = {b[3].split()[0]: b for b in BLOCKS if b[2] == "example"}


def test_every_python_block_is_run_or_says_why_not():
    unmarked = [f"{f}:{line}" for f, line, kind, _, _ in BLOCKS if kind is None]
    assert not unmarked, (
        f"Python blocks without '<!-- example: NAME -->' or '<!-- not-run: reason -->' "
        f"on the line before: {unmarked}"
    )
    no_reason = [
        f"{f}:{line}" for f, line, kind, note, _ in BLOCKS if kind == "not-run" and not note
    ]
    assert not no_reason, f"not-run blocks must give the reason: {no_reason}"
    names = [b[3].split()[0] for b in BLOCKS if b[2] == "example"]
    assert len(names) == len(set(names)), f"example names repeat: {names}"
    # The examples this file checks in detail are still on the pages.
    assert {"api", "conv-tclif", "own-neuron", "layer-plots"} <= set(names), names


def run_example(name: str) -> dict:
    path, line, _, note, code = EXAMPLES[name]
    if "needs=mnist" in note.split() and not HAS_MNIST:
        pytest.skip(f"{path}:{line} needs real MNIST (set TCLIF_SHARED_DATA)")
    if "needs=torch" in note.split():
        pytest.importorskip("torch", reason=f"{path}:{line} needs torch (CI installs it)")
    scope: dict = {"__name__": f"example_{name.replace('-', '_')}"}
    exec(compile(code, f"{path}:{line}:{name}", "exec"), scope)  # noqa: S102
    return scope


def check_api(scope):
    from tclif_jax import count_params

    assert count_params(scope["model"]) == 85_136
    assert scope["logits"].shape == (8, 10)
    leaves = jax.tree.leaves(scope["grads"])
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert any(float(jnp.max(jnp.abs(g))) > 0 for g in leaves)
    neuron = scope["lif"].config.neuron
    assert getattr(neuron, "name", neuron) == "lif"


def check_conv_tclif(scope):
    losses = scope["losses"]
    assert len(losses) == 30 and all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses


def check_layer_plots(scope):
    assert scope["first"].shape == (2, 6)
    assert scope["spikes"].shape == (2, 15, 6)
    assert set(scope["states"]) == {"dendrite", "soma", "spike"}
    assert [a.get_ylabel() for a in scope["fig"].axes] == ["dendrite", "soma"]


def check_own_neuron(scope):
    from tclif_jax import Execution, apply, parameters
    from tclif_jax.neurons import NEURONS

    assert NEURONS["hard_lif"] is scope["HardResetLIF"]
    model, x = scope["model"], scope["x"]
    assert model(x).shape == (4, 20)
    params = parameters(model)

    def loss(p, execution):
        return jnp.sum(apply(model.config, p, x, execution)[0] ** 2)

    default = jax.grad(loss)(params, Execution())  # the neuron's adjoint in the time loop
    auto = jax.grad(loss)(params, Execution(backward="autodiff"))  # the reference
    for a, b in zip(jax.tree.leaves(default), jax.tree.leaves(auto)):
        scale = float(jnp.max(jnp.abs(b)))
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5 * scale)
    assert max(float(jnp.max(jnp.abs(b))) for b in jax.tree.leaves(auto)) > 0


CHECKS = {
    "api": check_api,
    "conv-tclif": check_conv_tclif,
    "layer-plots": check_layer_plots,
    "own-neuron": check_own_neuron,
}


def official_weights_file(tmp_path, monkeypatch):
    """The official-weights example reads ``smnist_ff.pth`` in the working directory:
    write one, in the official layout, from a seeded model, and return that model."""
    import torch

    from tclif_jax import from_preset, to_official

    source = from_preset("smnist-ff-64", seed=11)
    state = {k: torch.from_numpy(v.copy()) for k, v in to_official(source).items()}
    torch.save(state, tmp_path / "smnist_ff.pth")
    monkeypatch.chdir(tmp_path)
    return source


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs_as_written(name, tmp_path, monkeypatch):
    from tclif_jax.neurons import NEURONS

    registered = set(NEURONS)
    source = None
    if name == "official-weights":
        pytest.importorskip("torch", reason="the example reads a torch file (CI installs torch)")
        source = official_weights_file(tmp_path, monkeypatch)
    try:
        scope = run_example(name)
        CHECKS.get(name, lambda scope: None)(scope)
        if source is not None:  # the loaded model is the one whose weights were saved
            x = np.random.default_rng(0).random((2, 30, 1), dtype=np.float32)
            np.testing.assert_array_equal(np.asarray(scope["model"](x)), np.asarray(source(x)))
    finally:
        for added in set(NEURONS) - registered:  # keep the registry as other tests expect it
            NEURONS.pop(added)
        import matplotlib.pyplot as plt

        plt.close("all")


# ----------------------------------------------------------------------------- figures


def pct(value: float) -> str:
    return f"{100 * value:.2f}"


def test_quickstart_figures_come_from_their_file():
    record = json.loads(
        read(os.path.join(ROOT, "docs", "results", "quickstart", "quickstart.json"))
    )
    text = read(README)
    tclif, lif = record["runs"]["tclif"], record["runs"]["lif"]
    for run in (tclif, lif):
        assert f"`{run['command'].split(' --workdir')[0]}" in text or run["command"] in text
        assert run["epochs"] == 10 and run["steps"] == 320
    printed = (
        f"best test accuracy {pct(tclif['best_test_acc'])}%, final test "
        f"{pct(tclif['final_test_acc'])}% after {tclif['steps']} steps"
    )
    assert printed in text
    rows = {
        "| TC-LIF, `experiments/configs/delayed_cue.py` |": tclif,
        "| LIF, `--config.model.neuron=lif` |": lif,
    }
    for head, run in rows.items():
        row = (
            f"{head} {pct(run['best_test_acc'])}% | {pct(run['final_test_acc'])}% "
            f"| {run['wall_time_s']} s |"
        )
        assert row in text, row
    machine = record["machine"]
    stated = (
        f"Measured on {record['date']} on a {machine['cores']}-core {machine['cpu']} "
        f"(load average {machine['load_average_1min_at_start']}"
    )
    assert stated in " ".join(text.split()), stated
    assert record["regenerate"] in text


def full_data_runs(name: str) -> dict:
    """Per neuron, the records of ``docs/results/<name>/<neuron>/metrics.jsonl``."""
    runs = {}
    for neuron in ("tclif", "lif"):
        path = os.path.join(ROOT, "docs", "results", name, neuron, "metrics.jsonl")
        runs[neuron] = [json.loads(line) for line in read(path).splitlines() if line.strip()]
    return runs


@pytest.mark.parametrize("name", ["smnist-ff-64", "psmnist-ff-64"])
def test_full_data_tables_come_from_the_metrics_files(name):
    text = read(os.path.join(ROOT, "docs", "reproduction.md"))
    runs = full_data_runs(name)
    for neuron, label in (("tclif", "TC-LIF"), ("lif", "LIF")):
        records = runs[neuron]
        assert [r["epoch"] for r in records] == list(range(1, len(records) + 1))
        cells = " | ".join(pct(r["test_acc"]) for r in records)
        link = f"[metrics](results/{name}/{neuron}/metrics.jsonl)"
        assert f"| {label} ({link}) | {cells} |" in text, (label, cells)
        best = max(r["test_acc"] for r in records)
        measured = f"[{pct(best)}](results/{name}/{neuron}/metrics.jsonl) best after"
        assert f"{measured} {len(records)} of 200 epochs" in text


def table1_rows():
    text = read(os.path.join(ROOT, "docs", "reproduction.md"))
    section = text.split("## The paper's Table 1", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("| ") and "python -m" in r]
    return [[c.strip() for c in r.strip("|").split("|")] for r in rows]


def test_table1_has_every_entry_and_the_configs_paper_numbers():
    rows = table1_rows()
    entries = [r[0] for r in rows]
    tclif = [
        f"TC-LIF {v}, {t}"
        for t in ("S-MNIST", "PS-MNIST")
        for v in ("ff-64", "rec-64", "ff-40", "rec-40")
    ]
    tclif += [f"TC-LIF {v}, {t}" for t in ("GSC", "SHD", "SSC") for v in ("ff", "rec")]
    lif = [f"LIF {v}, {t}" for t in ("S-MNIST", "PS-MNIST") for v in ("ff-64", "rec-64")]
    assert sorted(entries) == sorted(tclif + lif), set(entries) ^ set(tclif + lif)
    for entry, paper, command, measured, missing in rows:
        match = re.search(r"--config=experiments/configs/(\w+)\.py:(\w+)", command)
        assert match, command
        task, variant = match.groups()
        assert measured != "-" or missing.startswith("all"), entry
        if "--config.model.neuron=lif" in command:
            assert entry.startswith("LIF"), entry
            continue
        config = importlib.import_module(f"experiments.configs.{task}").get_config(variant)
        figure = f"[{config.paper_accuracy:.2f}](../experiments/configs/{task}.py)"
        assert paper == figure, (entry, paper, figure)


def test_table6_parameter_counts_are_the_built_models():
    from tclif_jax import PRESETS, count_params, from_preset

    text = read(os.path.join(ROOT, "docs", "reproduction.md"))
    section = text.split("## Presets", 1)[1].split("\n## ", 1)[0]
    counts = {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            counts[cells[0].strip("`")] = int(cells[2].replace(",", ""))
    assert set(counts) == set(PRESETS), set(counts) ^ set(PRESETS)
    for name, count in counts.items():
        abstract = nnx.eval_shape(lambda name=name: from_preset(name))
        assert count_params(abstract) == count, name


def results(name: str) -> dict:
    return json.loads(read(os.path.join(ROOT, "benchmarks", "results", name)))


def medians(record: dict) -> dict:
    return {r["name"]: r["median_s"] for r in record["results"] if "median_s" in r}


def page_row(page: str, needle: str) -> str:
    rows = [r for r in read(os.path.join(ROOT, "docs", page)).splitlines() if needle in r]
    assert len(rows) == 1, (page, needle, rows)
    return rows[0]


def test_benchmark_figures_come_from_their_files():
    for name in ("smnist-ff-64_b256", "shd-rec_b256"):
        file = f"cpu_step_time_{name}_adjoint.json"
        record, row = results(file), page_row("benchmarks.md", file)
        m = medians(record)
        ours, torch = m["jax-fused-float32"], m["torch-reference"]
        assert record["machine"]["date"].startswith("2026-11-29")
        assert f"{ours:.3f} s (fused, f32)" in row and f"torch reference {torch:.3f} s" in row
        assert f"| {ours / torch:.2f}x |" in row, row
    for file in ("cpu_peers_a_b256.json", "cpu_peers_b_n1024.json"):
        record, row = results(file), page_row("benchmarks.md", file)
        m = medians(record)
        ours = m["ours-lif-auto(fused)"]
        assert record["machine"]["date"].startswith("2026-11-29")
        assert f"{ours:.3f} s (LIF, fused)" in row, row
        peers = f"spyx {m['spyx']:.3f} s, snnTorch {m['snntorch']:.3f} s, norse {m['norse']:.3f} s"
        assert peers in row, row
        assert f"| {ours / m['spyx']:.2f}x spyx |" in row, row


def test_event_input_figures_come_from_their_file():
    file = "events/cpu_peers_a_b256_events.json"
    record, row = results(file), page_row("benchmarks.md", file)
    by_name = {r["name"]: r for r in record["results"]}
    assert record["machine"]["date"].startswith("2026-12-03")
    for neuron in ("lif", "tclif"):
        ours = by_name[f"ours-{neuron}-auto(fused)-events"]
        ratio = ours["ratio_vs_fastest_peer_per_round"]
        assert f"{ours['median_s']:.3f} s" in row, row
        stated = f"{ratio['median']:.2f}x [{ratio['ci95'][0]:.2f}, {ratio['ci95'][1]:.2f}]"
        assert stated in row, (stated, row)
    assert f"spyx {by_name['spyx']['median_s']:.3f} s" in row, row
    readme = " ".join(read(README).split())
    for neuron in ("lif", "tclif"):
        ratio = by_name[f"ours-{neuron}-auto(fused)-events"]["ratio_vs_fastest_peer_per_round"]
        stated = f"{ratio['median']:.2f}x [{ratio['ci95'][0]:.2f}, {ratio['ci95'][1]:.2f}]"
        assert stated in readme, stated
    dense = by_name["ours-lif-auto(fused)"]["ratio_vs_fastest_peer_per_round"]["median"]
    assert f"takes {dense:.2f}x spyx 1.0's step with dense input" in readme


def test_remat_and_multihost_figures_come_from_their_files():
    memory = results("cpu_memory_smnist-ff-64_b256.json")
    peak = {
        (r["steps"], r["remat_chunk"]): r["peak_rss_gb"]
        for r in memory["rows"]
        if "peak_rss_gb" in r
    }
    text = " ".join(read(os.path.join(ROOT, "docs", "training.md")).split())
    with_remat, without = peak[(6272, 112)], peak[(6272, 0)]
    assert f"within {with_remat:.2f} GB peak RSS, against {without:.2f} GB without" in text
    assert f"measured {memory['machine']['date'][:10]}" in text

    multi = results("cpu_multihost.json")
    text = " ".join(read(os.path.join(ROOT, "docs", "multihost.md")).split())
    two = multi["seconds_per_step"]["2 processes x 2 devices"]["median_s"]
    one = multi["seconds_per_step"]["1 process x 4 devices"]["median_s"]
    assert f"at {two:.3f} s per step against {one:.3f} s" in text
    assert f"({multi['ratio_two_over_one']:.1f}x slower)" in text
    assert f"Measured {multi['machine']['date'][:10]} with `{multi['command']}`" in text


# ----------------------------------------------------------------------------- references


def test_tests_named_by_the_pages_exist():
    defined = set()
    for path in glob.glob(os.path.join(ROOT, "tests", "test_*.py")):
        defined |= set(re.findall(r"^def (test_\w+)", read(path), re.M))
    named = set()
    for path in MARKDOWN:
        # Test names have several words; `test_acc` and `test_loss` are metrics.
        named |= set(re.findall(r"`(test_[a-z0-9]+_\w+)`", read(path)))
    assert named, "the pages name no test"
    assert not named - defined, f"pages name tests that do not exist: {sorted(named - defined)}"


def test_every_public_module_has_an_api_page_in_the_nav():
    package = os.path.join(ROOT, "tclif_jax")
    modules = {
        name.removesuffix(".py")
        for name in os.listdir(package)
        if not name.startswith("_")
        and (name.endswith(".py") or os.path.isfile(os.path.join(package, name, "__init__.py")))
    }
    nav = [ln.split("#")[0] for ln in read(os.path.join(ROOT, "mkdocs.yml")).splitlines()]
    pages = {}
    for path in glob.glob(os.path.join(ROOT, "docs", "api", "*.md")):
        for module in re.findall(r"^::: tclif_jax\.(\w+)", read(path), re.M):
            pages[module] = os.path.relpath(path, os.path.join(ROOT, "docs"))
    missing = sorted(modules - set(pages))
    assert not missing, f"no docs/api page holds '::: tclif_jax.<module>' for {missing}"
    not_in_nav = sorted(m for m in modules if not any(pages[m] in ln for ln in nav))
    assert not not_in_nav, f"API pages missing from mkdocs.yml's nav: {not_in_nav}"


def test_readme_is_short_and_its_links_resolve():
    text = read(README)
    assert len(text.splitlines()) <= 150
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert os.path.exists(os.path.join(ROOT, target)), target


# ----------------------------------------------------------------------------- repository URL


def repository_url():
    sys.path.insert(0, os.path.join(ROOT, "docs", "scripts"))
    try:
        import repo_url
    finally:
        sys.path.pop(0)
    return repo_url


def test_one_repository_url_for_badges_and_install_cells():
    import nbformat

    tool = repository_url()
    url = tool.repository_url()
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        assert tool.repository_url() == tomllib.load(f)["project"].get("urls", {}).get("Repository")
    notebooks = sorted(glob.glob(os.path.join(ROOT, "colab", "*.ipynb")))
    texts = {rel(p): read(p) for p in [*MARKDOWN, *notebooks]}
    texts["mkdocs.yml"] = read(os.path.join(ROOT, "mkdocs.yml"))
    for name, text in texts.items():
        assert "OWNER/REPO" not in text, f"{name} holds a placeholder repository"
        for found in re.findall(r"github\.com/[\w.-]+/[\w.-]+", text):
            if found != OFFICIAL_REPO:
                assert url and found in url.replace(".git", ""), (name, found, url)
        if url is None:
            assert "colab.research.google.com" not in text, f"{name} has a badge but no URL"
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        want = tool.synced(nbformat.read(path, as_version=4), os.path.basename(path), url)
        assert nb.cells[0].source == want.cells[0].source, f"run docs/scripts/repo_url.py ({path})"
        assert nb.cells[1].source == want.cells[1].source, f"run docs/scripts/repo_url.py ({path})"
        assert f"REPO_URL = {url!r}" in nb.cells[1].source
        badge = tool.badge(url, os.path.basename(path))
        assert (
            (badge in nb.cells[0].source) if badge else ("Open In Colab" not in nb.cells[0].source)
        )
