"""Package floors: robust_mix <- albumentations_ipmix <- timm_ext <- robust_eval; no import runs up.

Every import statement of every module is read (module level and inside functions: a function-local
import hides a cycle from an import-time check). The one roof is the launcher,
``robust_mix/launch.py``, which lazily imports the three command-line interfaces.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The packages from the ground floor up.
FLOORS = ("robust_mix", "albumentations_ipmix", "timm_ext", "robust_eval")
#: (module file, imported package) pairs allowed to point up: the launcher and its CLIs.
ROOF = {("robust_mix/launch.py", "albumentations_ipmix"), ("robust_mix/launch.py", "timm_ext")}
ROOF |= {("robust_mix/launch.py", "robust_eval")}


def imported_packages(path: Path) -> set[str]:
    """The top-level project packages that ``path``'s import statements name (relative imports: its own)."""
    own = path.relative_to(ROOT).parts[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(own if node.level else (node.module or "").split(".")[0])
    return found & set(FLOORS)


def upward_arrows() -> list[str]:
    """``module -> package`` for every import that runs from a lower floor to a higher one."""
    arrows = []
    for floor, package in enumerate(FLOORS):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            for target in sorted(imported_packages(path)):
                if FLOORS.index(target) > floor and (name, target) not in ROOF:
                    arrows.append(f"{name} -> {target}")
    return arrows


def test_no_import_runs_up_a_floor():
    assert upward_arrows() == []


def test_the_checker_sees_function_local_and_relative_imports(tmp_path, monkeypatch):
    source = "def f():\n    from robust_eval import cli\n\nfrom . import errors\nimport timm_ext.cli\n"
    fake = tmp_path / "robust_mix" / "x.py"
    fake.parent.mkdir()
    fake.write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert imported_packages(fake) == {"robust_eval", "robust_mix", "timm_ext"}


@pytest.mark.parametrize("package", FLOORS)
def test_every_package_is_read(package):
    assert any((ROOT / package).rglob("*.py"))
