"""Label budgets: the downstream classifier sees only a few labelled examples per class.

Pretraining still uses every training example (without its label); only the classifier's training set
shrinks. This is the setting where unsupervised pretraining pays off.
"""

from __future__ import annotations

import numpy as np

Budget = int | float | None


def check_budget(labels_per_class: Budget) -> Budget:
    """A whole number of examples per class (>= 1), a fraction of each class in (0, 1], or None (all)."""
    if labels_per_class is None:
        return None
    if isinstance(labels_per_class, bool) or not isinstance(labels_per_class, (int, float)):
        raise ValueError(
            f"data.labels_per_class={labels_per_class!r}; give a whole number of examples per class (e.g. 10), "
            "a fraction of each class in (0, 1] (e.g. 0.05), or null for every label"
        )
    if isinstance(labels_per_class, int) and labels_per_class < 1:
        raise ValueError(f"data.labels_per_class={labels_per_class}; it must be at least 1 (or null for every label)")
    if isinstance(labels_per_class, float) and not 0.0 < labels_per_class <= 1.0:
        raise ValueError(
            f"data.labels_per_class={labels_per_class}; a float is a fraction of each class and must be in (0, 1]: "
            f"write a whole number (e.g. {max(1, round(labels_per_class))}) for a count per class"
        )
    return labels_per_class


def pick_labelled(y: np.ndarray, labels_per_class: int | float, *, seed: int) -> np.ndarray:
    """Sorted indices into ``y`` of a stratified, seeded subset with exactly the budget of every class.

    A fraction keeps round(fraction * class size) examples of each class, at least one. All classes are
    picked from one seeded permutation, so for a fixed seed the picks of a smaller budget are a subset of
    those of a larger one: points on a label-efficiency curve differ only by the added labels.
    """
    y = np.asarray(y)
    order = np.random.default_rng(seed).permutation(len(y))
    picks = []
    for cls in np.unique(y):
        members = order[y[order] == cls]
        want = labels_per_class if isinstance(labels_per_class, int) else max(1, round(labels_per_class * len(members)))
        if want > len(members):
            raise ValueError(
                f"data.labels_per_class={labels_per_class} asks for {want} examples of class {cls}, but the training "
                f"split holds only {len(members)}: lower data.labels_per_class or give it as a fraction"
            )
        picks.append(members[:want])
    return np.sort(np.concatenate(picks))
