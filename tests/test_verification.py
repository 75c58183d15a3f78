"""Verification on pairs (issue 23): the LFW pairs format, k-fold accuracy with thresholds chosen on the other
folds, AUC and TAR at FAR, checked against an independent computation (scikit-learn) on synthetic distances."""
from __future__ import annotations

import numpy as np
import pytest


def test_lfw_pairs_are_read_with_their_folds(tmp_path):
    from mien.pipeline.verification import PairsFileError, read_lfw_pairs

    (tmp_path / "pairs.txt").write_text("2\t1\nAnn\t1\t2\nAnn\t1\tBob\t3\nCy\t2\t4\nBob\t1\tCy\t1\n")
    pairs = read_lfw_pairs(tmp_path / "pairs.txt", tmp_path)
    assert pairs.same.tolist() == [True, False, True, False] and pairs.fold.tolist() == [0, 0, 1, 1]
    assert pairs.first[1] == str(tmp_path / "Ann" / "Ann_0001.jpg") and pairs.second[1].endswith("Bob/Bob_0003.jpg")
    assert len(pairs.images) == 7
    (tmp_path / "short.txt").write_text("2\t1\nAnn\t1\t2\n")
    with pytest.raises(PairsFileError, match=r"short.txt: the header promises 2 folds of 2 x 1 pairs \(4 lines\)"):
        read_lfw_pairs(tmp_path / "short.txt", tmp_path)
    (tmp_path / "bad.txt").write_text("1\t1\nAnn\t1\t2\nAnn\tx\tBob\t3\n")
    with pytest.raises(PairsFileError, match="line 3"):
        read_lfw_pairs(tmp_path / "bad.txt", tmp_path)


def test_csv_pairs_and_their_errors(tmp_path):
    from mien.pipeline.verification import PairsFileError, read_csv_pairs

    (tmp_path / "p.csv").write_text("img1,img2,same\na.jpg,b.jpg,1\na.jpg,c.jpg,false\n")
    pairs = read_csv_pairs(tmp_path / "p.csv", folds=2)
    assert pairs.same.tolist() == [True, False] and pairs.fold.tolist() == [0, 1]
    (tmp_path / "q.csv").write_text("a,b\nx,y\n")
    with pytest.raises(PairsFileError, match="needs the columns img1, img2, same"):
        read_csv_pairs(tmp_path / "q.csv")


def test_scores_agree_with_an_independent_computation():
    from sklearn.metrics import roc_auc_score

    from mien.pipeline.verification import best_threshold, score_pairs

    rng = np.random.default_rng(0)
    same = np.arange(600) % 2 == 0
    dist = np.where(same, rng.normal(0.8, 0.15, 600), rng.normal(1.35, 0.15, 600))
    fold = np.arange(600) // 200
    dist[5] = np.inf  # an image without a face: wrong whatever the threshold
    r = score_pairs(dist, same, fold, verify_threshold=1.1)
    assert r["pairs_without_face"] == 1 and r["folds"] == 3
    for k, t in enumerate(r["fold_thresholds"]):  # each fold scored at the threshold best on the other two
        train, test = fold != k, fold == k
        ok = np.isfinite(dist)
        assert t == pytest.approx(best_threshold(dist[train & ok], same[train & ok]))
        assert r["fold_accuracy"][k] == pytest.approx(np.mean(((dist[test] <= t) == same[test]) & ok[test]))
    assert r["kfold_accuracy"] == pytest.approx(np.mean(r["fold_accuracy"]))
    finite = np.isfinite(dist)
    assert r["auc"] == pytest.approx(roc_auc_score(same[finite], -dist[finite]), abs=2e-3)
    assert r["accuracy_at_verify_threshold"] == pytest.approx(np.mean(((dist <= 1.1) == same) & finite))
    tar = r["tar_at_far"]["0.01"]
    assert tar["far"] <= 0.01 and tar["tar"] == pytest.approx(np.mean(dist[same] <= tar["threshold"]))
