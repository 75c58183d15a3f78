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


def package_of(module: str) -> str | None:
    """``mien.emotion.model`` -> ``emotion``: which of the design's packages a module belongs to (None: not ours)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "mien" and len(parts) > 1 else None


@pytest.mark.parametrize("package, forbidden", [
    ("identity", ("emotion", "pipeline")),
    ("emotion", ("identity", "pipeline")),
])
def test_leaf_packages_do_not_know_each_other(package, forbidden):
    bad = {f"{p.relative_to(REPO)}: {m}" for p in modules(package) for m in imports_of(p)
           if package_of(m) in forbidden}
    assert not bad, sorted(bad)


def test_one_import_name_the_old_top_level_names_are_gone():
    """Installed, mien occupies `mien` alone: no module of the project imports a bare identity/emotion/pipeline."""
    code = [p for pkg in ("identity", "emotion", "pipeline", "mien", "tests", "benchmarks") for p in modules(pkg)]
    bad = {f"{p.relative_to(REPO)}: {m}" for p in code for m in imports_of(p)
           if m.split(".")[0] in ("identity", "emotion", "pipeline")}
    assert not bad, sorted(bad)


def test_emotion_inference_does_not_import_training():
    inference = [p for p in modules("emotion") if "training" not in p.parts]
    bad = {f"{p.relative_to(REPO)}: {m}" for p in inference for m in imports_of(p)
           if m.startswith("mien.emotion.training")}
    assert not bad, sorted(bad)


def test_pipeline_core_does_not_import_the_applications():
    core = [p for p in modules("pipeline") if "app" not in p.relative_to(REPO / "pipeline").parts]
    assert len(core) >= 10
    bad = {f"{p.relative_to(REPO)}: {m}" for p in core for m in imports_of(p) if m.startswith("mien.pipeline.app")}
    assert not bad, sorted(bad)


def test_every_cli_command_module_registers_itself():
    from mien.pipeline.app import cli

    for name in cli.COMMAND_MODULES:
        source = (REPO / "pipeline" / "app" / "cli" / f"{name}.py").read_text()
        assert "def register(" in source and "set_defaults(run=" in source, name


def test_the_servers_routes_leave_mien_errors_to_one_place():
    """Issue 34 item 6: `create_app` was one 289-line function whose endpoints each turned mien's errors into
    HTTPExceptions; now each concern is a router of its own and ``routes/errors.py`` answers those errors for all
    of them: no route catches an exception to raise an HTTPException, and ``create_app`` only assembles."""
    routes = modules("pipeline/app/routes")
    assert {p.stem for p in routes} >= {"recognize", "people", "video", "history", "stream", "site", "errors", "deps"}
    bad = []
    for path in routes:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ExceptHandler) and "HTTPException" in ast.unparse(node):
                bad.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not bad, bad
    server = ast.parse((REPO / "pipeline" / "app" / "server.py").read_text())
    [create_app] = [n for n in server.body if isinstance(n, ast.FunctionDef) and n.name == "create_app"]
    assert create_app.end_lineno - create_app.lineno < 25
    assert not [n for stmt in create_app.body for n in ast.walk(stmt)
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]  # no endpoint defined inside


def module_name(path: Path) -> str:
    """``pipeline/app/video.py`` -> ``mien.pipeline.app.video`` (a package's ``__init__`` is the package)."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["mien", *parts] if parts[0] != "mien" else parts)


def project_import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (at any depth; ``from pkg import name`` counts as importing
    ``pkg.name`` when that is a module, else ``pkg``)."""
    paths = [p for pkg in ("identity", "emotion", "pipeline", "mien") for p in modules(pkg)]
    names = {module_name(p) for p in paths}
    graph = {}
    for p in paths:
        me = module_name(p)
        targets = set()
        for m in imports_of(p):
            while m and m not in names:
                m = m.rpartition(".")[0]
            if m and m != me and not me.startswith(m + "."):  # a module importing its own package is no circle
                targets.add(m)
        graph[me] = targets
    return graph


def test_no_import_circles_inside_the_project():
    """Tarjan's strongly connected components over the import graph: every one must be a single module."""
    graph = project_import_graph()
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, circles


def test_tensorflow_imported_through_mien_says_nothing_on_stderr():
    """`import mien` silences TensorFlow's C++ start-up lines (absl, CPU feature guard) before any TF import."""
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    r = subprocess.run([sys.executable, "-c", "import mien.emotion.model, tensorflow as tf; tf.constant(1) + 1"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr


def test_mien_environment_variables_are_read_in_one_module():
    """Issue 21 item 6: `MIEN_*` variables were read in 9 modules; pipeline/settings.py names and reads them all."""
    import re

    from mien.pipeline import settings

    named = set()
    for package in ("identity", "emotion", "pipeline", "mien"):
        for path in modules(package):
            text = path.read_text()
            named.update(re.findall(r"\bMIEN_[A-Z_]+\b", text))
            if path.name != "settings.py":
                assert not re.search(r"os\.(environ|getenv)\b[^\n]*MIEN_", text), f"{path} reads a MIEN_ variable"
    assert named <= set(settings.ALL), f"not in settings.ALL: {sorted(named - set(settings.ALL))}"


def test_a_bad_setting_is_one_line_naming_the_variable(monkeypatch):
    from mien.pipeline import settings

    monkeypatch.setenv("MIEN_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(settings.SettingError, match=r"MIEN_MAX_IMAGE_PIXELS='lots': expected a whole number"):
        settings.max_image_pixels()
    monkeypatch.setenv("MIEN_API_TOKEN", "  s3cret-token-of-enough-length\n")
    assert settings.api_token() == "s3cret-token-of-enough-length"
