"""Classification metrics, overall and by sex and age group, written as JSON.

A case is positive when its label is a finding. Its score is the highest probability among the
finding labels, which is what Argus reports; it is called positive at the manifest's
`thresholds.positive`.
"""

from __future__ import annotations

import numpy as np

AGE_GROUPS = (("<40", 0, 40), ("40-64", 40, 65), (">=65", 65, 200))


def auc(y: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties count half); None without both classes."""
    pos, neg = score[y == 1], score[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def _ratio(a: int, b: int) -> float | None:
    return float(a / b) if b else None


def binary_metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict:
    """Accuracy, sensitivity, specificity, precision, AUC, FPR, FNR and counts."""
    pred = score >= threshold
    tp, fn = int((pred & (y == 1)).sum()), int((~pred & (y == 1)).sum())
    tn, fp = int((~pred & (y == 0)).sum()), int((pred & (y == 0)).sum())
    return {
        "n": int(len(y)), "positives": tp + fn, "negatives": tn + fp,
        "accuracy": _ratio(tp + tn, len(y)), "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp), "precision": _ratio(tp, tp + fp),
        "auc_roc": auc(y, score), "fpr": _ratio(fp, fp + tn), "fnr": _ratio(fn, fn + tp),
    }


def finding_score(probs: np.ndarray, finding: np.ndarray) -> np.ndarray:
    """Highest probability among the finding labels, per case."""
    return probs[:, finding].max(axis=1)


def report(labels: np.ndarray, probs: np.ndarray, finding: np.ndarray, sex, age,
           threshold: float) -> dict:
    """Metrics overall, by sex and by age group; plus one-vs-rest AUC per label."""
    y = finding[labels].astype(int)
    score = finding_score(probs, finding)
    sex, age = np.asarray(sex), np.asarray(age)
    out = {"overall": binary_metrics(y, score, threshold), "by_sex": {}, "by_age": {}}
    for s in sorted(set(sex.tolist())):
        out["by_sex"][s] = binary_metrics(y[sex == s], score[sex == s], threshold)
    for name, lo, hi in AGE_GROUPS:
        keep = (age >= lo) & (age < hi)
        out["by_age"][name] = binary_metrics(y[keep], score[keep], threshold)
    out["auc_per_label"] = [auc((labels == k).astype(int), probs[:, k]) for k in range(probs.shape[1])]
    return out
