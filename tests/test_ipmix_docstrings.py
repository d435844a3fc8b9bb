"""The transforms' docstrings follow Albumentations' own format, and their Examples run.

Albumentations documents every transform with the sections Args (``name (type): text``), Targets,
Image types, Number of channels, an optional Note, Examples (plural, doctest) and References
(``description: source``; a single reference without a leading dash, several each with one), and
its pre-commit tools reject ``---`` underlines and transforms without an Examples section. This
file checks those rules with its own small section parser, so the plugin's docs render and read
like the built-ins'.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re

import numpy as np
import pytest
from albumentations.core.transforms_interface import BasicTransform

import albumentations_ipmix
from albumentations_ipmix import transforms

SECTION_ORDER = ("Args", "Targets", "Image types", "Number of channels", "Note", "Examples", "References")
REQUIRED = {"Args", "Targets", "Image types", "Number of channels", "Examples", "References"}
_HEADER = re.compile(r"^([A-Z][A-Za-z ]*):$")
_ARG = re.compile(r"^(\w+) \((.+)\):(.*)$")


def _plugin_transforms() -> list[type[BasicTransform]]:
    """Every transform class defined in the plugin (its modules all imported), private bases included."""
    for info in pkgutil.walk_packages(albumentations_ipmix.__path__, "albumentations_ipmix."):
        importlib.import_module(info.name)
    found, stack = set(), [BasicTransform]
    while stack:
        for sub in stack.pop().__subclasses__():
            stack.append(sub)
            if sub.__module__.startswith("albumentations_ipmix."):
                found.add(sub)
    return sorted(found, key=lambda cls: cls.__qualname__)


ALL_TRANSFORMS = _plugin_transforms()
PUBLIC_TRANSFORMS = [cls for cls in ALL_TRANSFORMS if not cls.__name__.startswith("_")]


def _sections(doc: str) -> dict[str, list[str]]:
    """Split a cleaned docstring (``inspect.getdoc``) into its sections, body lines dedented once."""
    sections: dict[str, list[str]] = {"Description": []}
    current = "Description"
    for line in doc.splitlines():
        if (match := _HEADER.match(line)) is not None:
            current = match[1]
            assert current not in sections, f"section {current!r} appears twice"
            sections[current] = []
        else:
            sections[current].append(
                line[4:] if current != "Description" and line.startswith("    ") else line
            )
    return {name: [line.rstrip() for line in body] for name, body in sections.items()}


def _entries(body: list[str]) -> list[str]:
    """Join each top-level entry of a section with its indented continuation lines."""
    entries: list[str] = []
    for line in body:
        if not line.strip():
            continue
        if line.startswith(" ") and entries:
            entries[-1] += " " + line.strip()
        else:
            entries.append(line.strip())
    return entries


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def test_the_plugin_transforms_are_found():
    names = {cls.__name__ for cls in PUBLIC_TRANSFORMS}
    assert {"IPMix", "PixMix"} <= names
    assert set(PUBLIC_TRANSFORMS) >= {
        getattr(albumentations_ipmix, n)
        for n in albumentations_ipmix.__all__
        if isinstance(getattr(albumentations_ipmix, n), type)
        and issubclass(getattr(albumentations_ipmix, n), BasicTransform)
    }


@pytest.mark.parametrize("cls", ALL_TRANSFORMS, ids=lambda c: c.__name__)
def test_every_transform_has_an_examples_section_and_no_underlines(cls):
    doc = inspect.getdoc(cls)
    sections = _sections(doc)
    assert "Examples" in sections, f"{cls.__name__}: add an 'Examples:' section (plural)"
    assert "Example" not in sections, f"{cls.__name__}: use 'Examples:', not 'Example:'"
    assert "---" not in doc, f"{cls.__name__}: Google-style sections are not underlined"


@pytest.mark.parametrize("cls", PUBLIC_TRANSFORMS, ids=lambda c: c.__name__)
def test_public_transform_sections_are_complete_and_in_order(cls):
    sections = _sections(inspect.getdoc(cls))
    names = [name for name in sections if name != "Description"]
    assert set(names) <= set(SECTION_ORDER), (
        f"{cls.__name__}: unknown sections {set(names) - set(SECTION_ORDER)}"
    )
    assert REQUIRED <= set(names), f"{cls.__name__}: missing sections {REQUIRED - set(names)}"
    assert names == sorted(names, key=SECTION_ORDER.index), f"{cls.__name__}: sections out of order: {names}"
    assert sections["Description"][0].strip(), "the first line is a one-line summary"
    assert all(_entries(sections[name]) for name in names), f"{cls.__name__}: an empty section"


@pytest.mark.parametrize("cls", PUBLIC_TRANSFORMS, ids=lambda c: c.__name__)
def test_args_name_every_init_parameter_with_type_range_and_default(cls):
    entries = _entries(_sections(inspect.getdoc(cls))["Args"])
    parsed = [_ARG.match(entry) for entry in entries]
    assert all(parsed), f"{cls.__name__}: Args entries must read 'name (type): text': {entries}"
    parameters = inspect.signature(cls.__init__).parameters
    documented = [match[1] for match in parsed]
    assert documented == [name for name in parameters if name != "self"]
    for match in parsed:
        name, type_text, text = match[1], match[2], match[3]
        assert _balanced(type_text), f"{cls.__name__}.{name}: unbalanced brackets in {type_text!r}"
        assert text.strip(), f"{cls.__name__}.{name}: no description"
        if parameters[name].default is not inspect.Parameter.empty:
            assert "Default: " in text, f"{cls.__name__}.{name}: say the default as 'Default: value.'"


@pytest.mark.parametrize("cls", PUBLIC_TRANSFORMS, ids=lambda c: c.__name__)
def test_targets_and_image_types_match_the_code(cls):
    sections = _sections(inspect.getdoc(cls))
    targets = {word for word in re.split(r"[,\s]+", " ".join(_entries(sections["Targets"]))) if word}
    assert targets == {target.value.lower() for target in cls._targets}
    image_types = {word for word in re.split(r"[,\s]+", " ".join(_entries(sections["Image types"]))) if word}
    assert image_types == {np.dtype(dtype).name for dtype in transforms.SUPPORTED_DTYPES}


@pytest.mark.parametrize("cls", PUBLIC_TRANSFORMS, ids=lambda c: c.__name__)
def test_references_read_description_colon_source(cls):
    entries = _entries(_sections(inspect.getdoc(cls))["References"])
    dashed = [entry.startswith("- ") for entry in entries]
    if len(entries) == 1:
        assert not dashed[0], f"{cls.__name__}: a single reference has no leading dash"
    else:
        assert all(dashed), f"{cls.__name__}: several references each start with '- '"
    for entry in entries:
        description, _, source = entry.removeprefix("- ").partition(": ")
        assert description and "://" not in description, f"{cls.__name__}: reference {entry!r}"
        assert source.startswith("https://"), f"{cls.__name__}: reference {entry!r} names no source"


def test_the_parser_catches_what_it_checks():
    """The section parser sees a single dashed reference, an underline and an 'Example' header."""
    doc = "Summary.\n\nExample:\n    >>> 1\n    1\n\nReferences:\n    - Paper: https://x.org\n"
    sections = _sections(doc)
    assert "Example" in sections and "Examples" not in sections
    assert _entries(sections["References"]) == ["- Paper: https://x.org"]
    assert _ARG.match("width (int): Number of chains. Default: 3.")[2] == "int"
    assert not _balanced("Sequence[Literal['a']")


@pytest.mark.parametrize("cls", ALL_TRANSFORMS, ids=lambda c: c.__name__)
def test_examples_run(cls):
    finder = doctest.DocTestFinder(recurse=False)
    (test,) = finder.find(cls, cls.__name__, globs={})
    assert test.examples, f"{cls.__name__}: the Examples section has no doctest lines"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0
