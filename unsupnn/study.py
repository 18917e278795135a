"""The label-efficiency study: test accuracy against the number of labels, pretrained against scratch.

``unsupnn-pretrain experiment=label_efficiency`` pretrains once, then trains every classifier method at
each label budget in ``label_budgets`` (labels per class; null = every label). The rows go to
``results.csv``; ``label_efficiency.png`` draws accuracy against labels per class on a log axis, one line
per method, and the same figure goes to TensorBoard (run ``label_efficiency``, Images tab).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from unsupnn.io import atomic_write

COLUMNS = ("labels_per_class", "n_labelled", "method", "test_accuracy", "seconds", "steps")


def budget_name(budget) -> str:
    return "all" if budget is None else str(budget)


def write_csv(rows: list[dict], path: Path) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, out.getvalue().encode())


def figure(rows: list[dict], n_classes: int, title: str = ""):
    """Test accuracy against labels per class (log axis), one line per method."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for method in dict.fromkeys(r["method"] for r in rows):
        points = sorted((r["n_labelled"] / n_classes, r["test_accuracy"]) for r in rows if r["method"] == method)
        ax.plot(*zip(*points), marker="o", label=method)
    ax.set_xscale("log")
    ax.set_xlabel("labelled examples per class")
    ax.set_ylabel("test accuracy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def save_plot(rows: list[dict], n_classes: int, path: Path, *, title: str = "", tensorboard_dir: Path | None = None) -> None:
    """``label_efficiency.png`` (written atomically) and, given a folder, the figure in TensorBoard."""
    import matplotlib.pyplot as plt

    fig = figure(rows, n_classes, title)
    png = io.BytesIO()
    fig.savefig(png, format="png")
    atomic_write(path, png.getvalue())
    if tensorboard_dir is not None:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(tensorboard_dir)) as writer:
            writer.add_figure("label_efficiency/test_accuracy", fig, close=False)
    plt.close(fig)
