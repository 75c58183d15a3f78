"""The `mien` command line's contract without any model: help everywhere, validation before loading, exit codes.

Each case runs in a fresh interpreter and also reports whether TensorFlow got imported: a usage mistake or a
database query must be answered at once, not after 12 s of model loading.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from mien.pipeline.app.cli import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "tensorflow": "tensorflow" in sys.modules, "sklearn": "sklearn" in sys.modules}))
"""


def mien(*args, home=None) -> tuple[dict, str, str]:
    """Run `mien ARGS` in a fresh interpreter: (probe result, stdout without the probe line, stderr)."""
    env = dict(os.environ, MIEN_HOME=str(home)) if home else dict(os.environ)
    r = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True, env=env,
                       timeout=120)
    *out, last = r.stdout.rstrip("\n").split("\n")
    return json.loads(last), "\n".join(out), r.stderr


def test_version():
    res, out, _ = mien("--version")
    assert res["rc"] == 0 and out.startswith("mien ") and "unknown" not in out


@pytest.mark.parametrize("command", [
    [], ["models", "fetch"], ["demo-data"], ["enroll"], ["train-svm"], ["people"], ["people", "add"],
    ["people", "forget"], ["recognize"], ["history"], ["serve"],
    ["video"], ["embed"], ["verify"], ["evaluate", "identity"], ["evaluate", "emotion"], ["train", "emotion"],
    ["train", "svm"], ["export", "emotion"]])
def test_every_command_has_help_with_defaults_and_verbosity(command):
    res, out, err = mien(*command, "--help")
    assert res["rc"] == 0, err
    assert not res["tensorflow"], "building the parser must not import TensorFlow"
    assert "--help" in out
    if command:
        assert "-v, --verbose" in out and "-q, --quiet" in out
    if command in (["recognize"], ["video"], ["serve"]):
        assert "(default: 20)" in out  # --min-face-size, from pipeline.options.Options


def test_train_emotion_has_the_trainers_options():
    _, out, _ = mien("train", "emotion", "--help")
    for option in ("--data", "--optimizer", "--init-from", "--resume", "--epochs"):
        assert option in out


@pytest.mark.parametrize("args, message", [
    (["recognize", "/no/such/dir"], "/no/such/dir: no such file or folder"),
    (["enroll", "/no/such/dir"], "/no/such/dir: no such folder"),
    (["video", "/no/such.mp4"], "no such video file"),
    (["video", "0", "--smoothing", "1.5"], "must be <= 1.0"),
    (["video", "0", "--every", "0"], "must be >= 1"),
    (["recognize", ".", "--detection-threshold", "abc"], "not a number"),
    (["evaluate", "emotion", "--data", "/no/such.npz"], "no such dataset"),
    (["evaluate", "emotion", "--data", ".", "--split", "Test"], "invalid choice: 'Test'"),
    (["history", "--since", "yesterday"], "expected a date"),
    (["serve", "--port", "70000"], "must be <= 65535"),
    (["serve", "--max-upload-mb", "nan"], "not a finite number"),
    (["serve", "--max-upload-mb", "-1"], "must be > 0"),
    (["video", "99999999999999999999"], "a webcam index is 0..63"),
    (["video", "0", "--out", "/etc/hostname/x.mp4"], "/etc/hostname is a file"),
    (["recognize", ".", "--json", "/"], "is a folder"),
    # every output is checked before the work (issue 26 item 15): a file where a folder goes, nowhere writable
    (["recognize", ".", "--annotate", "README.md"], "README.md: is a file; give a folder"),
    (["recognize", ".", "--annotate", "/proc/annotated"], "cannot write in /proc"),
    (["video", "0", "--out", "/proc/x.mp4"], "cannot write in /proc"),
    (["video", "0", "--summary", "/proc/summary"], "cannot write in /proc"),
    (["batch", ".", "--out", "README.md"], "README.md: is a file; give a folder"),
    (["embed", "README.md", "--out", "/proc/e.npz"], "cannot write in /proc"),
    (["evaluate", "identity", "--enroll", ".", "--test", ".", "--json", "/proc/r.json"], "cannot write in /proc"),
    # a typo gets a hint and one line of usage advice, not the whole usage block (issue 21 item 10)
    (["recognise", "."], "did you mean 'recognize'?"),
    (["recognize", ".", "--emotion-views", "miror"], "did you mean 'mirror'?"),
])
def test_usage_errors_exit_2_before_any_model_loads(args, message, tmp_path):
    res, _, err = mien(*args, home=tmp_path)
    assert res["rc"] == 2, err
    assert message in err and "Traceback" not in err
    assert not res["tensorflow"] and not res["sklearn"]
    assert "usage:" not in err  # one line and a hint, not the usage block


def test_a_bare_command_lists_what_it_can_do():
    for args, listed in ((), ("recognize", "enroll", "serve")), (("people",), ("list", "forget", "rename")):
        res, out, err = mien(*args)
        assert res["rc"] == 0 and err == ""
        assert all(name in out for name in listed)


def empty_results_db(path):
    from mien.pipeline.history import ResultsDB

    ResultsDB(path).close()
    return path


def test_verbosity_after_the_subcommand(tmp_path):
    res, _, err = mien("history", "-v", "--db", empty_results_db(tmp_path / "r.db"), home=tmp_path)
    assert res["rc"] == 0, err


def test_history_answers_without_tensorflow(tmp_path):
    res, out, err = mien("history", "--db", empty_results_db(tmp_path / "results.db"), home=tmp_path)
    assert res["rc"] == 0, err
    assert out.split() == ["time", "source", "file", "face", "who", "emotion"]
    res, out, err = mien("history", home=tmp_path / "fresh")  # nothing stored yet: said, not an error
    assert res["rc"] == 0 and "no recognitions stored yet" in err
    assert not res["tensorflow"] and not res["sklearn"]


def test_a_folder_without_images_is_a_usage_error_that_names_what_was_skipped(tmp_path):
    (tmp_path / "clip.mov").write_bytes(b"\0\0\0\x14ftypqt  ")
    (tmp_path / "photo.heic").write_bytes(b"\0" * 16)
    (tmp_path / "notes.txt").write_text("x")
    res, _, err = mien("recognize", tmp_path, home=tmp_path / "home")
    assert res["rc"] == 2, err
    assert "skipped 3 files" in err and ".mov" in err and ".heic" in err
    assert "no images found" in err
    assert not res["tensorflow"]


def test_terminal_escapes_in_a_file_name_do_not_reach_the_terminal_through_error_lines(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "x\x1b[2Jy.db"
    r = subprocess.run([sys.executable, "-m", "mien", "history", "--db", str(bad)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0 and "\x1b" not in r.stderr and "\\x1b[2J" in r.stderr, r.stderr


def test_a_busy_port_is_said_before_the_models_load(tmp_path):
    """`mien serve` binds before loading the models (issue 26, low items: it printed "serving" and then exited 3)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res, out, err = mien("serve", "--port", port, "--read-only", home=tmp_path)
    assert res["rc"] == 2 and f"cannot listen on 127.0.0.1:{port}: Address already in use" in err
    assert "serving" not in out and not res["tensorflow"]
