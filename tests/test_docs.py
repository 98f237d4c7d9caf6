"""The tour in docs/ stays true: its code runs, its links resolve, its figures exist.

Every ```python block of a chapter runs, in order, in one namespace per
chapter (so a later block uses names from an earlier one), from the
repository root. A failure names the chapter, the block and its line.
"""
import importlib.util
import pathlib
import re
import traceback

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CHAPTERS = sorted(DOCS.glob("[0-9][0-9]-*.md"))
PAGES = CHAPTERS + [DOCS / "README.md"]
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
CUDA_FENCE = re.compile(r"^```cuda[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
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


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_cuda_excerpts_are_in_the_kernels(chapter):
    """Every line of a ```cuda excerpt is a line of some cuda/*.cu file (``...`` marks a cut)."""
    excerpts = CUDA_FENCE.findall(chapter.read_text(encoding="utf-8"))
    if not excerpts:
        return
    source = set()
    for path in sorted((ROOT / "cuda").glob("*.cu")):
        source.update(line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    for number, excerpt in enumerate(excerpts, 1):
        for line in excerpt.splitlines():
            line = line.strip()
            if line and line != "..." and not line.startswith("// ..."):
                assert line in source, f"{chapter.name}: cuda excerpt {number} has a line not in cuda/: {line}"


def test_figures_come_from_make_figures():
    source = (DOCS / "make_figures.py").read_text(encoding="utf-8")
    for page in PAGES:
        for text, target in relative_links(page):
            if target.endswith(".png"):
                name = pathlib.Path(target).stem
                assert re.search(rf"^def {name}\(", source, re.M), \
                    f"{page.name}: figure {target} is not drawn by docs/make_figures.py"
