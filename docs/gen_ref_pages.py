"""Build the API reference from the package tree, at every `mkdocs build` (mkdocs-gen-files).

Every public module of the four packages gets one page holding ``::: module`` (mkdocstrings renders it
from the docstrings), and ``reference/SUMMARY.md`` lists them for mkdocs-literate-nav. Nothing is
listed by hand, so a module that moves, appears or disappears changes the reference by itself.
"""

from __future__ import annotations

from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("robust_mix", "albumentations_ipmix", "timm_ext", "robust_eval")

nav = mkdocs_gen_files.Nav()
for package in PACKAGES:
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__main__" or any(p.startswith("_") and p != "__init__" for p in parts):
            continue  # entry-point shims and private modules are not API
        if not all((ROOT / Path(*parts[:i]) / "__init__.py").is_file() for i in range(1, len(parts))):
            continue  # a folder of scripts or data inside a package, not an importable module
        if parts[-1] == "__init__":
            parts = parts[:-1]
            doc_path = Path(*parts, "index.md")
        else:
            doc_path = Path(*parts).with_suffix(".md")
        nav[tuple(parts)] = doc_path.as_posix()
        with mkdocs_gen_files.open(Path("reference", doc_path), "w") as page:
            page.write(f"::: {'.'.join(parts)}\n")
        mkdocs_gen_files.set_edit_path(Path("reference", doc_path), path.relative_to(ROOT))

with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as summary:
    summary.writelines(nav.build_literate_nav())
