"""Who + emotion per photo, end to end: today's defaults against the reference backends, and against
face_recognition (who only), all measured in the same run on the 25 held-out demo photos.

    python benchmarks/recognize.py [--peers [--rounds 5]] [--json FILE]

Configurations, each in fresh processes: ``reference`` = mtcnn 1.0 + TensorFlow FaceNet/emotion
(``--detector mtcnn-keras --runtime tensorflow``), ``default`` = MTCNN, FaceNet and emotion on OpenVINO,
``mirror-always`` = the default with ``--mirror always`` (FaceNet and the emotion networks look at every face's
mirror image, the default until issue 36's third round; the default looks only where unsure), ``int8`` = the
default with ``--precision int8`` (FaceNet quantized now if needed; the default runs it too once `mien models
fetch` has made it).
For each: warm ms/photo one at a time (a first pass over the photos, in which OpenVINO also prepares its kernels
for each new photo size, and a second pass) and batched (in one process, after loading), cold
``mien recognize one.jpg`` wall seconds and peak RSS, ``mien recognize VAL`` peak RSS, and whether the
names and emotions equal the reference's. ``--peers`` installs face_recognition 1.3.0 (dlib HOG + ResNet,
who only) into a throwaway venv and times it on the same photos, mien's default and it taking turns in fresh
processes for ``--rounds`` rounds (the median ratio: this machine's speed drifts by tens of % within minutes).
Pause other work (a training run) first.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CONFIGS = {  # name -> (mien flags, the same as Options fields)
    "reference": (["--detector", "mtcnn-keras", "--runtime", "tensorflow"],
                  {"detector": "mtcnn-keras", "runtime": "tensorflow"}),
    "default": ([], {}),
    "mirror-always": (["--mirror", "always"], {"mirror": "always"}),
    "int8": (["--precision", "int8"], {"precision": "int8"}),
}
FACE_RECOGNITION = """
import json, sys, time
from pathlib import Path
import face_recognition as fr
import numpy as np
train, val = Path(sys.argv[1]), Path(sys.argv[2])
known, names = [], []
for p in sorted(train.rglob('*.jpg')):
    enc = fr.face_encodings(fr.load_image_file(p))
    if enc:
        known.append(enc[0]); names.append(p.parent.name)
known = np.array(known)
photos = sorted(val.rglob('*.jpg'))
def who(p):
    img = fr.load_image_file(p)
    out = []
    for e in fr.face_encodings(img, fr.face_locations(img)):
        d = fr.face_distance(known, e)
        out.append(names[int(d.argmin())] if d.min() <= 0.6 else 'unknown')
    return out
who(photos[0])
t = time.perf_counter()
answers = [who(p) for p in photos]
ms = 1000 * (time.perf_counter() - t) / len(photos)
t = time.perf_counter()
[who(p) for p in photos]
steady = 1000 * (time.perf_counter() - t) / len(photos)
correct = sum(1 for a, p in zip(answers, photos) if p.parent.name in a)
print(json.dumps({'ms_per_photo': ms, 'ms_per_photo_second_pass': steady, 'correct': correct, 'photos': len(photos)}))
"""


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB from wait4(), stdout) of one command in a fresh process; raises if it fails."""
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.DEVNULL, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited with {os.waitstatus_to_exitcode(status)}")
        out.seek(0)
        return wall, usage.ru_maxrss / 1024, out.read()


def child_main(config: str, val: Path) -> dict:
    from mien.pipeline import Options, Recognizer
    from mien.pipeline.images import load_image

    options = Options(**CONFIGS[config][1])
    t = time.perf_counter()
    rec = Recognizer(options)
    load_s = time.perf_counter() - t
    paths = sorted(val.rglob("*.jpg"))
    images = [load_image(p) for p in paths]
    rec.recognize_batch(images[:2], ["a", "b"])  # warm-up

    def one_at_a_time():
        t = time.perf_counter()
        records = [rec.recognize(img, p.name) for img, p in zip(images, paths)]
        return records, 1000 * (time.perf_counter() - t) / len(paths)

    records, one_ms = one_at_a_time()
    _, second_ms = one_at_a_time()  # OpenVINO has now prepared its kernels for these photo sizes (~3 ms a new shape)
    t = time.perf_counter()
    for i in range(0, len(images), 16):
        rec.recognize_batch(images[i:i + 16], [p.name for p in paths[i:i + 16]])
    batch_ms = 1000 * (time.perf_counter() - t) / len(paths)
    answers = [[(f.identity.name if f.identity else None, f.emotion.label if f.emotion else None) for f in r.faces]
               for r in records]
    correct = sum(1 for a, p in zip(answers, paths) if a and a[0][0] == p.parent.name)
    return {"load_s": load_s, "ms_per_photo": one_ms, "ms_per_photo_second_pass": second_ms,
            "ms_per_photo_batched": batch_ms, "answers": answers,
            "correct": correct, "photos": len(paths)}


def peers(train: Path, val: Path) -> list[str]:
    """face_recognition 1.3.0 in a throwaway venv (dlib-bin wheel, no compiler): the command that times it on the
    same photos (its output: one JSON line)."""
    venv = Path(tempfile.mkdtemp(prefix="mien-peer-")) / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run(pip + ["dlib-bin"], check=True)
    subprocess.run(pip + ["--no-deps", "face_recognition==1.3.0", "face_recognition_models==0.3.0"], check=True)
    subprocess.run(pip + ["Click", "Pillow", "numpy", "setuptools<81"], check=True)
    script = venv.parent / "who.py"
    script.write_text(FACE_RECOGNITION)
    return [str(venv / "bin" / "python"), str(script), str(train), str(val)]


def alternate_with_peer(peer: list[str], val: Path, env: dict[str, str], rounds: int) -> dict:
    """mien's default and face_recognition take turns, each in a fresh process, ``rounds`` times: the median of
    the rounds' ratios (this machine's speed drifts by tens of % within minutes, so one pair is a lottery)."""
    import numpy as np

    out: dict = {"rounds": []}
    for _ in range(rounds):
        m = json.loads(run_measured([sys.executable, __file__, "--child", "default", "--val", str(val)], env)[2]
                       .strip().splitlines()[-1])
        _, rss, text = run_measured(peer, env)
        f = json.loads(text.strip().splitlines()[-1])
        f["peak_rss_mb"] = rss
        out["rounds"].append({"mien_ms": m["ms_per_photo"], "mien_ms_second_pass": m["ms_per_photo_second_pass"],
                              "face_recognition_ms": f["ms_per_photo"],
                              "face_recognition_ms_second_pass": f["ms_per_photo_second_pass"],
                              "ratio": m["ms_per_photo"] / f["ms_per_photo"],
                              "ratio_second_pass": m["ms_per_photo_second_pass"] / f["ms_per_photo_second_pass"]})
        out["face_recognition"] = f
    for key in ("ratio", "ratio_second_pass"):
        out[f"median_{key}"] = float(np.median([r[key] for r in out["rounds"]]))
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peers", action="store_true", help="also time face_recognition (installed in a temp venv)")
    ap.add_argument("--rounds", type=int, default=5, help="with --peers: rounds of mien and face_recognition taking "
                                                             "turns (default 5)")
    ap.add_argument("--json", help="also write the numbers here")
    ap.add_argument("--child", choices=tuple(CONFIGS), help=argparse.SUPPRESS)
    ap.add_argument("--val", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child_main(args.child, args.val)))
        return {}

    from workspace import demo_workspace, finish

    work, train, val = demo_workspace()
    env = dict(os.environ)
    mien = [sys.executable, "-m", "mien"]
    run_measured(mien + ["models", "fetch"], env)  # conversions cached before anything is timed
    run_measured(mien + ["enroll", str(train)], env)
    one = sorted(val.rglob("*.jpg"))[0]
    for flags, _ in CONFIGS.values():  # untimed: converts other test-time views' graphs before any timing
        run_measured(mien + ["recognize", str(one), *flags], env)
    r: dict = {"photos": len(list(val.rglob("*.jpg")))}
    for name, (flags, _) in CONFIGS.items():
        _, _, out = run_measured([sys.executable, __file__, "--child", name, "--val", str(val)], env)
        c = json.loads(out.strip().splitlines()[-1])
        c["cold_one_s"], c["cold_one_rss_mb"], _ = run_measured(mien + ["recognize", str(one), *flags], env)
        c["folder_s"], c["folder_rss_mb"], _ = run_measured(mien + ["recognize", str(val), *flags], env)
        r[name] = c
    ref, new = r["reference"], r["default"]
    r["ratio_warm"] = new["ms_per_photo"] / ref["ms_per_photo"]
    r["ratio_warm_vs_mirror_always"] = new["ms_per_photo"] / r["mirror-always"]["ms_per_photo"]
    r["same_answers"] = new["answers"] == ref["answers"]
    r["differences"] = [f"{p.name}: {a} vs {b}" for p, a, b in
                        zip(sorted(val.rglob("*.jpg")), ref["answers"], new["answers"]) if a != b]
    if args.peers:
        r["peer_rounds"] = alternate_with_peer(peers(train, val), val, env, args.rounds)
        r["face_recognition"] = r["peer_rounds"]["face_recognition"]

    print(f"{r['photos']} held-out demo photos, who + emotion")
    for name in CONFIGS:
        c = r[name]
        print(f"{name:9s}: warm {c['ms_per_photo']:.1f} ms/photo one at a time ({c['ms_per_photo_second_pass']:.1f} "
              f"the second time), {c['ms_per_photo_batched']:.1f} batched; "
              f"load {c['load_s']:.1f} s; cold `mien recognize one.jpg` {c['cold_one_s']:.1f} s, "
              f"{c['cold_one_rss_mb']:.0f} MB; folder peak RSS {c['folder_rss_mb']:.0f} MB; named {c['correct']}/{c['photos']}")
    print(f"default / reference warm: {r['ratio_warm']:.2f}x (goal <= 0.5); same names and emotions: {r['same_answers']}")
    print(f"default / mirror-always warm: {r['ratio_warm_vs_mirror_always']:.2f}x (what looking at the mirror image "
          "only when unsure saves)")
    for d in r["differences"]:
        print("  differs (reference vs default):", d)
    if args.peers:
        f, pr = r["face_recognition"], r["peer_rounds"]
        print(f"face_recognition 1.3.0 (who only): {f['ms_per_photo']:.1f} ms/photo, {f['peak_rss_mb']:.0f} MB, "
              f"named {f['correct']}/{f['photos']}")
        each = ", ".join(f"{x['ratio']:.2f}" for x in pr["rounds"])
        print(f"mien who + emotion / face_recognition who, {len(pr['rounds'])} rounds taking turns: median "
              f"{pr['median_ratio']:.2f}x (rounds {each}); second passes {pr['median_ratio_second_pass']:.2f}x "
              "(issue 36's goal <= 0.20)")
    return finish(work, r, args.json)


if __name__ == "__main__":
    main()
