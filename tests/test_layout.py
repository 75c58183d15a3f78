"""The package boundaries of the design, checked on the source: each top-level package owns one concern.

identity knows nothing of emotion or pipeline; emotion knows nothing of identity or pipeline, and its inference
modules nothing of its training; the pipeline core never imports pipeline.app (what people run sits on top).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imports_of(path: Path) -> set[str]:
    """Every module a file imports (at any depth: lazy imports inside functions count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("package, forbidden", [
    ("identity", ("emotion", "pipeline")),
    ("emotion", ("identity", "pipeline")),
])
def test_leaf_packages_do_not_know_each_other(package, forbidden):
    bad = {f"{p.relative_to(REPO)}: {m}" for p in modules(package) for m in imports_of(p)
           if m.split(".")[0] in forbidden}
    assert not bad, sorted(bad)


def test_emotion_inference_does_not_import_training():
    inference = [p for p in modules("emotion") if "training" not in p.parts]
    bad = {f"{p.relative_to(REPO)}: {m}" for p in inference for m in imports_of(p)
           if m.startswith("emotion.training")}
    assert not bad, sorted(bad)


def test_pipeline_core_does_not_import_the_applications():
    core = [p for p in modules("pipeline") if "app" not in p.relative_to(REPO / "pipeline").parts]
    assert len(core) >= 10
    bad = {f"{p.relative_to(REPO)}: {m}" for p in core for m in imports_of(p) if m.startswith("pipeline.app")}
    assert not bad, sorted(bad)


def test_every_cli_command_module_registers_itself():
    from pipeline.app import cli

    for name in cli.COMMAND_MODULES:
        source = (REPO / "pipeline" / "app" / "cli" / f"{name}.py").read_text()
        assert "def register(" in source and "set_defaults(run=" in source, name
