"""``mien video --summary`` charts: each person's emotions over time, and who is on screen when.

Series break where a person is off screen (a NaN row between on-screen spans) instead of drawing a
straight line across the gap; each emotion has one fixed colour in every chart.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from mien.identity.storage import atomic_path

if TYPE_CHECKING:
    from mien.pipeline.app.tracking import Observation

# One colour per emotion everywhere (the stacked areas, the dominant-emotion bands and the combined timeline).
EMOTION_COLORS = {"angry": "#d62728", "disgust": "#2ca02c", "fear": "#9467bd", "happy": "#f5c400",
                  "sad": "#1f77b4", "surprise": "#ff7f0e", "neutral": "#a8a8a8", "contempt": "#e377c2",
                  "uncertain": "#e4e4e4"}
ON_SCREEN_COLOR = "#5b7083"  # spans of a person when no emotion model is loaded
OFF_SCREEN_COLOR = "#f4f4f4"


def emotion_color(label: str | None) -> str:
    """The fixed colour of an emotion label (``None``: on screen, no emotion known)."""
    return ON_SCREEN_COLOR if label is None else EMOTION_COLORS.get(label, "#444444")


def runs(frames: Sequence[int], max_gap: int) -> list[tuple[int, int]]:
    """``[start, stop)`` index ranges of consecutive observations at most ``max_gap`` frames apart (on-screen spans)."""
    if not len(frames):
        return []
    cuts = [i for i in range(1, len(frames)) if frames[i] - frames[i - 1] > max_gap]
    bounds = [0, *cuts, len(frames)]
    return list(zip(bounds[:-1], bounds[1:]))


def series_with_gaps(times: Sequence[float], frames: Sequence[int], values: np.ndarray, max_gap: int,
                     frame_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Step series (draw with ``step="post"``): each span ends one frame after its last observation and is followed
    by a NaN row, so lines and areas break where the person was off screen."""
    values = np.asarray(values, dtype=np.float64).reshape(len(times), -1)
    ts, rows = [], []
    for i0, i1 in runs(frames, max_gap):
        end = times[i1 - 1] + frame_s
        ts.extend([*times[i0:i1], end, end])
        rows.extend([*values[i0:i1], values[i1 - 1], np.full(values.shape[1], np.nan)])
    if not ts:
        return np.zeros(0), np.zeros((0, values.shape[1]))
    return np.asarray(ts[:-1], dtype=np.float64), np.asarray(rows[:-1])  # no NaN row after the last span


def one_per_frame(obs: Sequence[Observation]) -> list[Observation]:
    """A person's observations sorted by frame, one per frame (the first, should two tracks share a name)."""
    seen: dict[int, Observation] = {}
    for o in sorted(obs, key=lambda o: o.frame):
        seen.setdefault(o.frame, o)
    return list(seen.values())


def spans(obs: Sequence[Observation], max_gap: int, frame_s: float) -> list[dict]:
    """On-screen spans of one person: start and end second and the emotion most often shown (smoothed) in each."""
    obs = one_per_frame(obs)
    out = []
    for i0, i1 in runs([o.frame for o in obs], max_gap):
        shown = Counter(o.emotion for o in obs[i0:i1] if o.emotion)
        out.append({"start_s": round(obs[i0].time, 3), "end_s": round(obs[i1 - 1].time + frame_s, 3),
                    "emotion": shown.most_common(1)[0][0] if shown else None})
    return out


def label_segments(obs: Sequence[Observation], max_gap: int, frame_s: float) -> list[tuple[float, float, str | None]]:
    """``(start, width, label)`` of each stretch of one smoothed label within the on-screen spans (obs one per frame)."""
    out = []
    for i0, i1 in runs([o.frame for o in obs], max_gap):
        k = i0
        for j in range(i0, i1):
            if j + 1 == i1 or obs[j + 1].emotion != obs[k].emotion:
                end = obs[j + 1].time if j + 1 < i1 else obs[j].time + frame_s
                out.append((obs[k].time, end - obs[k].time, obs[k].emotion))
                k = j + 1
    return out


def _save(fig, target: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _shade_off_screen(ax, person_spans: list[dict], duration: float) -> None:
    edges = [0.0] + [x for s in person_spans for x in (s["start_s"], s["end_s"])] + [duration]
    for a, b in zip(edges[::2], edges[1::2]):
        if b > a:
            ax.axvspan(a, b, color=OFF_SCREEN_COLOR, lw=0, zorder=0)


def person_chart(target: Path, person: str, obs: Sequence[Observation], info: dict, labels: list[str] | None,
                 max_gap: int, frame_s: float, duration: float) -> None:
    """One person's PNG: a band of the dominant (smoothed) emotion over a stacked area of the 7 smoothed scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    obs = one_per_frame(obs)
    fig, (band, ax) = plt.subplots(2, 1, figsize=(10, 3.6), dpi=100, sharex=True,
                                   gridspec_kw={"height_ratios": [1, 6], "hspace": 0.08})
    for a in (band, ax):
        _shade_off_screen(a, info["spans"], duration)
    for start, width, label in label_segments(obs, max_gap, frame_s):
        band.broken_barh([(start, width)], (0, 1), color=emotion_color(label), lw=0)
    band.set_yticks([0.5], ["top emotion"], fontsize=8)
    band.set_ylim(0, 1)
    band.tick_params(axis="x", bottom=False)
    scored = [o for o in obs if o.scores]
    shown = [lb for lb in (labels or []) if lb in EMOTION_COLORS]
    if scored and labels:
        t, v = series_with_gaps([o.time for o in scored], [o.frame for o in scored],
                                np.array([[o.scores[lb] for lb in labels] for o in scored]), max_gap, frame_s)
        bottom = np.zeros(len(t))
        for j, lb in enumerate(labels):
            top = bottom + v[:, j]
            ax.fill_between(t, bottom, top, step="post", color=emotion_color(lb), lw=0, label=lb)
            bottom = top
        ax.set_ylabel("smoothed probability\n(stacked)", fontsize=9)
        ax.set_ylim(0, 1)
        share = ", ".join(f"{k} {v:.0%}" for k, v in list(info["emotion_share"].items())[:3])
        title = f"{person}: {info['seconds']:.1f} s on screen; {share}"
    else:
        band.set_yticks([0.5], ["on screen"], fontsize=8)
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no emotion model loaded: time on screen only", transform=ax.transAxes, ha="center",
                va="center", color="#777777", fontsize=10)
        title = f"{person}: {info['seconds']:.1f} s on screen"
    handles = [Patch(color=emotion_color(lb), label=lb) for lb in reversed(shown)]  # top of the stack first
    handles += [Patch(color=emotion_color(lb), label=lb or "on screen") for lb in ("uncertain", None)
                if any(o.emotion == lb for o in obs)]
    handles.append(Patch(facecolor=OFF_SCREEN_COLOR, edgecolor="#bbbbbb", label="off screen"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.18), fontsize=8, frameon=False)
    band.set_title(title, fontsize=10)
    ax.set_xlabel("time (s)")
    ax.set_xlim(0, max(duration, 1e-3))
    fig.subplots_adjust(left=0.1, right=0.86, top=0.9, bottom=0.14)
    _save(fig, target)


def timeline_chart(target: Path, people: dict[str, dict], duration: float) -> None:
    """All people in one PNG: a row per person, a bar per on-screen span coloured by its dominant emotion."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    names = list(people)
    fig, ax = plt.subplots(figsize=(10, 1.3 + 0.45 * len(names)), dpi=100)
    used: dict[str | None, None] = {}
    for row, name in enumerate(names):
        for s in people[name]["spans"]:
            width = s["end_s"] - s["start_s"]
            ax.broken_barh([(s["start_s"], width)], (row - 0.35, 0.7), color=emotion_color(s["emotion"]),
                           edgecolor="white", lw=0.5)
            used[s["emotion"]] = None
            text = s["emotion"] or ""
            if text and width > 0.07 * duration:
                ax.text(s["start_s"] + width / 2, row, text, ha="center", va="center", fontsize=8,
                        color="white" if s["emotion"] in ("angry", "fear", "sad", "disgust") else "black")
    ax.set_yticks(range(len(names)), names, fontsize=9)
    ax.set_ylim(len(names) - 0.5, -0.5)  # first to appear on top
    ax.set_xlim(0, max(duration, 1e-3))
    ax.set_xlabel("time (s)")
    ax.grid(axis="x", color="#dddddd", lw=0.6)
    ax.set_axisbelow(True)
    order = [lb for lb in EMOTION_COLORS if lb in used] + ([None] if None in used else [])
    ax.legend(handles=[Patch(color=emotion_color(lb), label=lb or "on screen") for lb in order],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False, title="dominant emotion",
              title_fontsize=8)
    ax.set_title("who is on screen when (colour: the emotion shown most in each span)", fontsize=10)
    fig.tight_layout()
    _save(fig, target)
