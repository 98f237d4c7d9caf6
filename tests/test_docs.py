"""The tour in docs/ stays true: its code runs, its links resolve, its figures exist.

Every ```python block of a chapter runs, in order, in one namespace per
chapter (so a later block uses names from an earlier one), from the
repository root. A failure names the chapter, the block and its line.
Excerpts are checked line by line against the files they quote: ```cuda
blocks against cuda/*.cu and docs/solutions/*.cu, ```py blocks (shown, not
run) against tinyseg/ and docs/solutions/. Every exercise's solution in
docs/solutions/ runs.
"""
import importlib.util
import pathlib
import re
import runpy
import shutil
import subprocess
import traceback

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SOLUTIONS = DOCS / "solutions"
CHAPTERS = sorted(DOCS.glob("[0-9][0-9]-*.md"))
PAGES = CHAPTERS + [DOCS / "README.md", SOLUTIONS / "README.md"]
SOLUTION_SCRIPTS = sorted(SOLUTIONS.glob("*.py"))
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
CUDA_FENCE = re.compile(r"^```cuda[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
PY_EXCERPT_FENCE = re.compile(r"^```py[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]+)\)")
IDENTIFIER = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
MODULE_ALIASES = {"ts", "F", "nn", "np"}


def python_blocks(path):
    """(line number of the block's first code line, code) for each ```python block."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in FENCE.finditer(text)]


def relative_links(path):
    """(text, target) for links that point into the repository."""
    text = path.read_text(encoding="utf-8")
    return [(t, u) for t, u in LINK.findall(text) if not re.match(r"[a-z]+:|#", u)]


def test_there_is_a_tour():
    assert CHAPTERS, "docs/ has no chapters"
    assert (DOCS / "README.md").exists()


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_chapter_snippets_run(chapter, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    namespace = {"__name__": f"docs_{chapter.stem.replace('-', '_')}"}
    for number, (line, code) in enumerate(python_blocks(chapter), 1):
        # Pad with blank lines so tracebacks show the chapter's own line numbers.
        compiled = compile("\n" * (line - 1) + code, str(chapter.relative_to(ROOT)), "exec")
        failure = None
        try:
            exec(compiled, namespace)
        except Exception:  # report which snippet broke, with the traceback into it
            failure = traceback.format_exc()
        if failure:
            pytest.fail(f"{chapter.name}: python snippet {number} (line {line}) failed:\n{failure}",
                        pytrace=False)


def test_index_lists_the_chapters_in_order():
    index = DOCS / "README.md"
    linked = [u for _, u in relative_links(index) if re.fullmatch(r"\d\d-[\w-]+\.md", u)]
    assert linked == [c.name for c in CHAPTERS], "docs/README.md must link every chapter, in order"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page):
    for text, target in relative_links(page):
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.name}: link [{text}]({target}) points at nothing"
        # [`name`](file.py): the file must still define name (each dotted part of it)
        name = text.strip("`")
        if (path.suffix == ".py" and text.startswith("`") and IDENTIFIER.fullmatch(name)
                and not name.endswith(".py")):
            source = path.read_text(encoding="utf-8")
            for part in name.split("."):
                if part in MODULE_ALIASES:
                    continue
                pattern = rf"^\s*(def|class)\s+{part}\b|^{part}\s*="
                assert re.search(pattern, source, re.M), \
                    f"{page.name}: [{text}]({target}) but {path.name} defines no {part}"


def _make_figures():
    spec = importlib.util.spec_from_file_location("make_figures", DOCS / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hrenet_shape_table_matches_a_run():
    """Chapter 4's table (paper preset) has the steps and spatial sizes a real run produces.

    The small preset with the paper's convolution counts has the paper
    preset's topology, so a cheap run of it at 400x500 checks every step name
    and every H x W of the table.
    """
    chapter = DOCS / "04-lstm-renet.md"
    if not chapter.exists():
        pytest.skip("chapter 4 not written")
    import numpy as np
    import tinyseg as ts
    from tinyseg.models import PRESETS, HReNet

    table = re.findall(r"^\| ([^|]+?) \| \((\d+), (\d+), (\d+), (\d+)\) \|([^|]*)\|",
                       chapter.read_text(encoding="utf-8"), re.M)
    model = HReNet(preset="small", convs_per_block=PRESETS["paper"]["convs_per_block"])
    model.eval()
    image = ts.tensor(np.zeros((1, 1, 400, 500), dtype=np.float32))
    _, rows = _make_figures().hrenet_walk(model, image)
    assert [t[0] for t in table] == [r[0] for r in rows]
    assert [(int(t[3]), int(t[4])) for t in table] == [tuple(r[1][2:]) for r in rows]
    total = re.search(r"^\| total \| \| ([\d,]+) \|", chapter.read_text(encoding="utf-8"), re.M)
    params = [int(t[5].strip().replace(",", "") or 0) for t in table]
    assert total and sum(params) == int(total.group(1).replace(",", ""))


def _lines_of(paths):
    lines = set()
    for path in paths:
        lines.update(line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return lines


def _check_excerpts(chapter, fence, paths, what):
    excerpts = fence.findall(chapter.read_text(encoding="utf-8"))
    if not excerpts:
        return
    source = _lines_of(paths)
    for number, excerpt in enumerate(excerpts, 1):
        for line in excerpt.splitlines():
            line = line.strip()
            if line and line != "..." and not line.startswith(("// ...", "# ...")):
                assert line in source, f"{chapter.name}: {what} excerpt {number} has a line not in {what} sources: {line}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_cuda_excerpts_are_in_the_kernels(chapter):
    """Every line of a ```cuda excerpt is a line of some cuda/*.cu or docs/solutions/*.cu file
    (``...`` marks a cut)."""
    _check_excerpts(chapter, CUDA_FENCE, sorted((ROOT / "cuda").glob("*.cu")) + sorted(SOLUTIONS.glob("*.cu")),
                    "cuda")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_python_excerpts_are_in_the_code(chapter):
    """Every line of a ```py excerpt is a line of tinyseg/ or docs/solutions/ (``...`` marks a cut)."""
    _check_excerpts(chapter, PY_EXCERPT_FENCE, sorted((ROOT / "tinyseg").rglob("*.py")) + SOLUTION_SCRIPTS,
                    "python")


@pytest.mark.parametrize("solution", SOLUTION_SCRIPTS, ids=lambda p: p.name)
def test_solutions_run(solution, monkeypatch):
    """Each solution runs as ``python docs/solutions/<file>`` would. (A ``*_test.py`` file is
    only imported here; chapter 8 runs its tests with pytest, on the emulated GPU.)"""
    if "requires: g++" in solution.read_text(encoding="utf-8") and shutil.which("g++") is None:
        pytest.skip("needs g++ for the CUDA emulator")
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.syspath_prepend(str(SOLUTIONS))
    runpy.run_path(str(solution), run_name=solution.stem if solution.stem.endswith("_test") else "__main__")


def test_every_chapter_has_exercises_with_solutions():
    linked = set()
    for chapter in CHAPTERS:
        text = chapter.read_text(encoding="utf-8")
        assert "\n## Exercises\n" in text, f"{chapter.name} has no Exercises section"
        exercises = text.split("\n## Exercises\n", 1)[1]
        targets = [u for _, u in relative_links(chapter) if u.startswith("solutions/") and u in exercises]
        assert targets, f"{chapter.name}: its exercises link no solution"
        linked.update(pathlib.Path(u).name for _, u in relative_links(chapter) if u.startswith("solutions/"))
    modules = {"leaky_relu.py"}            # imported by the chapter and by its test, not an exercise
    unlinked = {p.name for p in SOLUTION_SCRIPTS} - linked - modules
    assert not unlinked, f"solutions no chapter links: {sorted(unlinked)}"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
@pytest.mark.parametrize("source", sorted(SOLUTIONS.glob("*.cu")), ids=lambda p: p.name)
def test_solution_kernels_compile_for_the_gpu(source, tmp_path):
    """The tour's own .cu files compile to PTX as cuda/ does in CI (with cuda/ as the include path)."""
    result = subprocess.run(["nvcc", "--ptx", "-std=c++14", "-arch=sm_80", f"-I{ROOT / 'cuda'}",
                             "-o", str(tmp_path / "kernel.ptx"), str(source)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_figures_come_from_make_figures():
    source = (DOCS / "make_figures.py").read_text(encoding="utf-8")
    for page in PAGES:
        for text, target in relative_links(page):
            if target.endswith(".png"):
                name = pathlib.Path(target).stem
                assert re.search(rf"^def {name}\(", source, re.M), \
                    f"{page.name}: figure {target} is not drawn by docs/make_figures.py"
