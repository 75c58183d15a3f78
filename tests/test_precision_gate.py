"""Issue 36's gate for a reduced-precision network (benchmarks/precision.py): McNemar's exact test on known counts,
and the LFW gate's figures from two arms' pair distances."""
from __future__ import annotations

import importlib.util
from math import comb
from pathlib import Path

import numpy as np
import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "precision.py"


@pytest.fixture(scope="module")
def gate():
    """benchmarks/precision.py as a module (benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("precision_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("b, c, expected", [
    (0, 6, 2 / 64),  # all 6 discordant pairs one way: 2 * 0.5^6
    (1, 5, 2 * (1 + 6) / 64),  # 2 * P(X <= 1), X ~ Bin(6, 1/2)
    (2, 10, 2 * (comb(12, 0) + comb(12, 1) + comb(12, 2)) / 2 ** 12),  # 0.0386: a difference at p < 0.05
    (10, 2, 2 * (comb(12, 0) + comb(12, 1) + comb(12, 2)) / 2 ** 12),  # symmetric
    (3, 3, 1.0),
    (0, 0, 1.0),  # no pair differs: nothing to test
])
def test_mcnemar_exact_on_known_counts(gate, b, c, expected):
    assert gate.mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)


def test_verification_gate_counts_the_discordant_pairs_at_verify_threshold(gate):
    """Pairs that cross `mien verify`'s 1.10 are the discordant ones (an image without a face counts as wrong); the
    AUC and TAR at FAR 1e-2 figures are the arm's minus fp32's; a one-sided difference fails, an even one passes."""
    from mien.pipeline.verification import roc_auc, tar_at_far

    rng = np.random.default_rng(0)
    same = np.repeat([True, False], 900)
    base = np.where(same, rng.uniform(0.3, 1.0, 1800), rng.uniform(1.2, 1.9, 1800))
    arm = base.copy()
    arm[:4] = 1.15  # 4 same-person pairs now rejected
    arm[900:902] = 1.05  # 2 different-person pairs now accepted
    arm[4] = np.inf  # an image without a face
    got = gate.verification_gate(base, arm, same)
    assert got["mcnemar_p"]["detail"].startswith("7 pairs right only in fp32, 0 only in this arm, of 1800 at 1.10")
    assert got["mcnemar_p"]["value"] == pytest.approx(2 / 2 ** 7, abs=1e-4) and not got["mcnemar_p"]["pass"]
    assert got["auc"]["value"] == pytest.approx(roc_auc(arm, same) - roc_auc(base, same), abs=1e-5)
    assert got["tar_at_far_1e-2_points"]["value"] == pytest.approx(
        100 * (tar_at_far(arm, same, 1e-2)["tar"] - tar_at_far(base, same, 1e-2)["tar"]), abs=0.01)
    assert got["auc"]["pass"] and got["tar_at_far_1e-2_points"]["pass"]  # 7 of 1,800 pairs move neither much

    wrong_in_fp32 = base.copy()
    wrong_in_fp32[900:903] = 1.05  # fp32 accepts 3 different-person pairs the arm rejects
    even = base.copy()
    even[:3] = 1.15  # and the arm rejects 3 same-person pairs fp32 accepts
    got = gate.verification_gate(wrong_in_fp32, even, same)
    assert got["mcnemar_p"]["detail"].startswith("3 pairs right only in fp32, 3 only in this arm")
    assert got["mcnemar_p"]["value"] == 1.0 and got["mcnemar_p"]["pass"]

    further = gate.verification_gate(base, base + 0.5 * same, same)  # every same-person pair 0.5 further apart
    assert not any(further[k]["pass"] for k in ("mcnemar_p", "auc", "tar_at_far_1e-2_points")), further
