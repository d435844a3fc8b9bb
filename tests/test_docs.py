"""The documentation: the site builds strictly, and every Python snippet of README.md and docs/*.md runs.

A snippet is a fenced block opened with ```` ```python ````. It runs in a fresh namespace, in a temporary
working folder that holds the small files the snippets name (``fractals/``, ``data/ipmix_set/``,
``data/train/<class>/``), made here from random pixels. A block whose first non-blank line starts with
``>>>`` is a doctest and must print what it shows. A block that cannot run in the tests (it needs
ImageNet or a GPU) carries ``<!-- snippet: not-run (the reason) -->`` on the line before its fence; it is
reported as skipped with that reason. ``<!-- snippet: slow -->`` there marks a block that takes more
than a few seconds (it still runs in ``make test`` and CI, as every ``slow`` test does).
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"<!--\s*snippet:\s*not-run\s*\((?P<reason>[^)]+)\)\s*-->")
SLOW = re.compile(r"<!--\s*snippet:\s*slow\s*-->")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>`{3,})\s*(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Snippet:
    """One fenced Python block: where it is, its code, and the reason it is not run (None: it runs)."""

    path: Path
    line: int  # 1-based line of the opening fence
    code: str
    not_run: str | None
    slow: bool = False

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def python_snippets(path: Path) -> list[Snippet]:
    """Every ```` ```python ```` block of a Markdown file, with its not-run marker if it has one."""
    lines = path.read_text(encoding="utf-8").splitlines()
    snippets: list[Snippet] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, ticks = len(opening["indent"]), opening["ticks"]
        language = opening["info"].split()[0] if opening["info"].split() else ""
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(ticks):
            end += 1
        if end == len(lines):
            raise AssertionError(f"{path.name}:{i + 1}: code fence never closed")
        if language == "python":
            before = lines[i - 1] if i > 0 else ""
            marker = NOT_RUN.search(before)
            code = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
            reason = marker["reason"].strip() if marker else None
            snippets.append(Snippet(path, i + 1, code, reason, slow=SLOW.search(before) is not None))
        i = end + 1
    return snippets


SNIPPETS = [snippet for document in DOCUMENTS for snippet in python_snippets(document)]


def _picture(path: Path, seed: int, size: int = 40) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def snippet_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with the files the snippets name, as small as they can be."""
    for k in range(3):
        _picture(tmp_path / "fractals" / f"{k}.png", k)
        _picture(tmp_path / "data" / "ipmix_set" / f"{k}.png", 10 + k)
    for c, name in enumerate(("cat", "dog")):
        for k in range(2):
            _picture(tmp_path / "data" / "train" / name / f"{k}.png", 20 + 2 * c + k, size=32)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_ALBUMENTATIONS_UPDATE", "1")
    monkeypatch.delenv("TIMM_EXT_FRACTALS", raising=False)
    return tmp_path


def test_every_document_is_searched_and_snippets_are_found() -> None:
    assert (ROOT / "docs" / "index.md") in DOCUMENTS
    names = {snippet.path.name for snippet in SNIPPETS}
    assert {"README.md", "albumentations_ipmix.md", "timm_ext.md", "metrics.md"} <= names
    not_run = [snippet.name for snippet in SNIPPETS if snippet.not_run]
    assert len(not_run) <= 3, f"keep not-run snippets few: {not_run}"


def test_the_snippet_reader_honours_markers_and_indented_fences(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n```python\nx = 1\n```\n\n<!-- snippet: not-run (needs ImageNet) -->\n"
        "```python\nopen('/imagenet')\n```\n\n```bash\nls\n```\n\n  ```python\n  y = 2\n  ```\n"
        "<!-- snippet: slow -->\n```python\nz = 3\n```\n"
    )
    found = python_snippets(page)
    assert [(s.line, s.code, s.not_run, s.slow) for s in found] == [
        (3, "x = 1\n", None, False),
        (8, "open('/imagenet')\n", "needs ImageNet", False),
        (16, "y = 2\n", None, False),
        (20, "z = 3\n", None, True),
    ]


def _run_doctest(snippet: Snippet) -> None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(snippet.code, {"__name__": "__snippet__"}, snippet.name, str(snippet.path), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted > 0 and failed == 0, f"{snippet.name}: {failed} of {attempted} doctest examples failed"


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")
@pytest.mark.parametrize(
    "snippet",
    [pytest.param(s, id=s.name, marks=[pytest.mark.slow] if s.slow else []) for s in SNIPPETS],
)
def test_snippet_runs(snippet: Snippet, snippet_folder: Path) -> None:
    if snippet.not_run:
        pytest.skip(f"marked not-run: {snippet.not_run}")
    try:
        if snippet.code.lstrip().startswith(">>>"):
            _run_doctest(snippet)
        else:
            exec(compile(snippet.code, snippet.name, "exec"), {"__name__": "__snippet__"})
    finally:
        timm_ext = sys.modules.get("timm_ext")
        if timm_ext is not None and timm_ext.is_registered():
            timm_ext.unregister()  # a snippet's register() must not leak into the next test


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    # the docs tools live in their own environment (docs/requirements.txt says why); make test sets this
    mkdocs = os.environ.get("ROBUST_MIX_MKDOCS") or str(ROOT / ".venv-docs" / "bin" / "mkdocs")
    assert Path(mkdocs).is_file(), f"no {mkdocs}: run `make docs-env` (or make test, which does)"
    env = {**os.environ, "DISABLE_MKDOCS_2_WARNING": "true", "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [mkdocs, "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    reference = tmp_path / "site" / "reference"
    for package in ("robust_mix", "albumentations_ipmix", "timm_ext", "robust_eval"):
        assert (reference / package / "index.html").is_file(), f"no API reference page for {package}"
    assert (reference / "robust_eval" / "metrics" / "index.html").is_file()
