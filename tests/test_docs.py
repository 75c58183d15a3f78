"""The docs never name a command or an option that does not exist (issue 21 item 9).

Every `mien ...` command line in README.md and docs/*.md (in ``` code blocks, optionally after `$ `; also
inline `mien ...` code spans) is resolved to its command path (`mien people forget`, `mien train emotion`, ...);
one fresh interpreter runs `mien <path> --help` for each distinct path through the real entry point (no model is
loaded) and every long option written on such a line must appear in that command's help. The pages' relative
links (and their #anchors) must resolve, and every `make TARGET` they show must be a Makefile target.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
LONG_OPTION = re.compile(r"(?<![\w-])--[A-Za-z0-9][\w-]*")
COMMAND_WORD = re.compile(r"^[a-z][a-z0-9-]*$")  # anything else (DIR, PATH..., ..., [x]) is a placeholder
SEPARATORS = {"|", "||", "&", "&&", ";", "(", ")"}

# Runs in a fresh interpreter: resolves each token list to its command path with the real parser, then runs
# `mien <path> --help` once per distinct path through `mien.pipeline.app.cli.main`.
PROBE = r"""
import argparse, contextlib, io, json, re, sys
from mien.pipeline.app import cli

word = re.compile(r"^[a-z][a-z0-9-]*$")
lines = json.load(sys.stdin)
top = cli.build_parser()

def subcommands(parser):
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)

resolved, helps = [], {}
for tokens in lines:
    parser, path, error = top, [], None
    for tok in tokens:
        sub = subcommands(parser)
        if sub is None:
            break
        if tok.startswith("-"):
            continue  # -v / -q / --version before the command name
        if not word.match(tok):
            break  # a placeholder such as COMMAND or ...
        if tok not in sub.choices:
            error = f"{' '.join(['mien', *path])} has no command {tok!r} (it has: {', '.join(sub.choices)})"
            break
        parser = sub.choices[tok]
        path.append(tok)
    resolved.append({"path": path, "error": error})
    key = " ".join(path)
    if key not in helps:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = cli.main([*path, "--help"])
            except SystemExit as exc:
                rc = exc.code
        helps[key] = {"rc": rc, "help": out.getvalue(), "stderr": err.getvalue()}

def all_options(parser):
    for action in parser._actions:
        yield from action.option_strings
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from all_options(sub)

print(json.dumps({"resolved": resolved, "helps": helps, "all_options": sorted(set(all_options(top)))}))
"""


@dataclass(frozen=True)
class DocCommand:
    page: str
    line: int
    text: str
    tokens: tuple[str, ...]  # after "mien"

    @property
    def options(self) -> list[str]:
        return sorted({m.split("=")[0] for t in self.tokens for m in LONG_OPTION.findall(t)})


def split_commands(text: str) -> list[list[str]]:
    """The shell words of each `mien ...` command in a line (comments dropped; split at | ; && ...)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        words = list(lexer)
    except ValueError:  # an unbalanced quote in prose: fall back to plain words
        words = text.split()
    commands, current = [], []
    for w in [*words, ";"]:
        if w in SEPARATORS:
            if current and current[0] == "$":
                current = current[1:]
            if current and current[0] == "mien":
                commands.append(current[1:])
            current = []
        else:
            current.append(w)
    return commands


def code_lines(text: str):
    """(line number, logical line) of every line inside fenced code blocks, backslash continuations joined."""
    in_block, pending, start = False, "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            in_block, pending = not in_block, ""
            continue
        if not in_block:
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield start, pending + line
        pending = ""


def prose_lines(text: str):
    """(line number, line) of every line outside fenced code blocks."""
    in_block = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            in_block = not in_block
        elif not in_block:
            yield number, line


def doc_commands(pages=PAGES) -> list[DocCommand]:
    """Every `mien ...` command the pages show, in code blocks and in inline code spans."""
    found = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        name = page.relative_to(REPO).as_posix() if page.is_relative_to(REPO) else page.name
        candidates = [(n, line.strip()) for n, line in code_lines(text)
                      if re.match(r"^\s*(\$\s+)?mien(\s|$)", line)]
        candidates += [(n, span.strip()) for n, line in prose_lines(text) for span in INLINE_CODE.findall(line)
                       if re.match(r"^mien(\s|$)", span.strip())]
        for n, line in candidates:
            for tokens in split_commands(line):
                found.append(DocCommand(name, n, line, tuple(tokens)))
    return found


def probe(commands: list[DocCommand]) -> dict:
    """Resolve each command and read its `--help`, in one fresh interpreter."""
    env = dict(os.environ, COLUMNS="200")
    r = subprocess.run([sys.executable, "-c", PROBE], input=json.dumps([list(c.tokens) for c in commands]),
                       capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert r.returncode == 0, f"the help probe failed:\n{r.stderr[-3000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def check_with_help(commands: list[DocCommand], result: dict | None = None) -> list[str]:
    """Problems found by resolving each command and reading its `--help` ([] if none)."""
    result = result or probe(commands)
    problems = []
    for cmd, res in zip(commands, result["resolved"]):
        where = f"{cmd.page}:{cmd.line}: {cmd.text}"
        if res["error"]:
            problems.append(f"{where}\n    {res['error']}")
            continue
        path = " ".join(["mien", *res["path"]])
        h = result["helps"][" ".join(res["path"])]
        if h["rc"] != 0:
            problems.append(f"{where}\n    `{path} --help` exited {h['rc']}: {h['stderr'].strip()}")
            continue
        options = set(LONG_OPTION.findall(h["help"]))
        for option in cmd.options:
            if option not in options:
                problems.append(f"{where}\n    `{path}` has no option {option} (see `{path} --help`)")
    return problems


COMMANDS = doc_commands()


@pytest.fixture(scope="module")
def probed() -> dict:
    return probe(COMMANDS)


def test_docs_show_commands():
    """The extraction finds the commands the README and docs are about (a guard against a vacuous pass)."""
    shown = {" ".join(c.tokens[:2]) for c in COMMANDS} | {c.tokens[0] for c in COMMANDS if c.tokens}
    for expected in ("enroll", "recognize", "people list", "people add", "people forget", "video", "serve",
                     "history", "models fetch", "train emotion", "export emotion", "evaluate emotion"):
        assert expected in shown, f"no `mien {expected}` line found in {[p.name for p in PAGES]}"
    assert any(c.page == "README.md" for c in COMMANDS)


def test_every_documented_command_and_option_exists(probed):
    problems = check_with_help(COMMANDS, probed)
    assert not problems, "the docs name commands or options mien does not have:\n" + "\n".join(problems)


def test_options_named_alone_exist(probed):
    """An option quoted on its own in prose or a table (`--yes`, `--max-upload-mb`) is an option of some command."""
    known, problems = set(probed["all_options"]), []
    for page in PAGES:
        for n, line in prose_lines(page.read_text(encoding="utf-8")):
            for span in INLINE_CODE.findall(line):
                if span.startswith("--") and (option := LONG_OPTION.match(span)) and option.group() not in known:
                    problems.append(f"{page.relative_to(REPO)}:{n}: `{span}`: no mien command has {option.group()}")
    assert not problems, "\n".join(problems)


def test_checker_catches_a_bogus_option_and_command(tmp_path):
    """The check itself fails on an option or a command that does not exist (and passes on real ones)."""
    page = tmp_path / "bogus.md"
    page.write_text("Try `mien people forget ann --yes`.\n\n```bash\n"
                    "$ mien recognize photos/ --json out.json --no-such-option   # comment --not-checked\n"
                    "mien peeple list\n"
                    "mien people forget ann \\\n    --yess\n"
                    "mien --version; mien COMMAND --help\n```\n", encoding="utf-8")
    commands = doc_commands([page])
    assert [c.tokens[0] for c in commands] == ["recognize", "peeple", "people", "--version", "COMMAND", "people"]
    problems = check_with_help(commands)
    assert len(problems) == 3, problems
    assert "has no option --no-such-option" in problems[0]
    assert "has no command 'peeple'" in problems[1]
    assert "`mien people forget` has no option --yess" in problems[2]


# ---- links and make targets ----------------------------------------------------------------------------------
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    out, seen = set(), {}
    for _, line in prose_lines(page.read_text(encoding="utf-8")):
        if m := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line):
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_relative_links_resolve():
    problems = []
    for page in PAGES:
        for number, line in prose_lines(page.read_text(encoding="utf-8")):
            for target in LINK.findall(line):
                if re.match(r"^[a-z]+:", target):
                    continue  # http(s), mailto
                path, _, anchor = target.partition("#")
                dest = (page.parent / path).resolve() if path else page
                where = f"{page.relative_to(REPO)}:{number}: {target}"
                if not dest.exists():
                    problems.append(f"{where}: {dest} does not exist")
                elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                    problems.append(f"{where}: no heading with anchor #{anchor} in {dest.name}")
    assert not problems, "\n".join(problems)


def test_make_targets_exist():
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", (REPO / "Makefile").read_text(), flags=re.M))
    problems = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        lines = [(n, line) for n, line in code_lines(text)]
        lines += [(n, span) for n, line in prose_lines(text) for span in INLINE_CODE.findall(line)]
        for n, line in lines:
            for m in re.finditer(r"(?:^|[;&|]\s*|^\$\s+)make\s+([A-Za-z0-9_.-]+)", line.strip()):
                if m.group(1) not in targets:
                    problems.append(f"{page.relative_to(REPO)}:{n}: make {m.group(1)}: no such Makefile target")
    assert not problems, "\n".join(problems)
