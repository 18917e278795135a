"""A pretrained unsupnn encoder inside your own PyTorch model: a new head, the encoder frozen or fine-tuned.

    python examples/encoder_in_your_model.py outputs/pretrain/runs/<run>/encoder.safetensors
    python examples/encoder_in_your_model.py outputs/pretrain/runs/<run>/checkpoints/pretrain/last.ckpt
    python examples/encoder_in_your_model.py        # no file yet: fits an RBM on digits the scikit-learn way

From the load on, plain PyTorch: no Lightning, Hydra or unsupnn training code.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import unsupnn


class DigitClassifier(nn.Module):
    def __init__(self, encoder_path: str | Path, n_classes: int, *, freeze: bool):
        super().__init__()
        self.encoder = unsupnn.load_encoder(encoder_path, freeze=freeze)  # a plain nn.Sequential
        self.head = nn.Linear(self.encoder.out_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def fit(model: DigitClassifier, x: torch.Tensor, y: torch.Tensor, *, epochs: int = 30) -> DigitClassifier:
    groups = [{"params": model.head.parameters(), "lr": 3e-2}]
    trainable = [p for p in model.encoder.parameters() if p.requires_grad]  # none when frozen
    if trainable:
        groups.append({"params": trainable, "lr": 1e-3})  # fine-tune gently, the head learns faster
    optimizer = torch.optim.Adam(groups)
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(64):
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


def digits() -> list[torch.Tensor]:
    """x_train, x_test, y_train, y_test: scikit-learn's 8x8 digits scaled to [0, 1] (the pipeline's default)."""
    x, y = load_digits(return_X_y=True)
    parts = train_test_split(x / 16.0, y, test_size=0.2, random_state=0)
    return [torch.tensor(a, dtype=torch.float32 if a.ndim == 2 else torch.int64) for a in parts]


def an_encoder_file(x_train: torch.Tensor, folder: Path) -> Path:
    """An RBM encoder fitted with unsupnn.sklearn and exported: what unsupnn-train would also write."""
    from unsupnn.sklearn import RBMTransformer

    rbm = RBMTransformer(n_components=64, learning_rate=0.06, n_iter=20, random_state=0).fit(x_train.numpy())
    return unsupnn.save_encoder(rbm, folder / "encoder.safetensors")


def main(argv: list[str] | None = None) -> dict[str, float]:
    argv = sys.argv[1:] if argv is None else argv
    x_train, x_test, y_train, y_test = digits()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(argv[0]) if argv else an_encoder_file(x_train, Path(tmp))
        accuracy = {}
        for name, freeze in (("frozen", True), ("fine-tuned", False)):
            torch.manual_seed(0)
            model = fit(DigitClassifier(path, n_classes=10, freeze=freeze), x_train, y_train)
            with torch.no_grad():
                accuracy[name] = float((model(x_test).argmax(1) == y_test).float().mean())
            print(f"{name:>10} encoder ({path.name}): test accuracy {accuracy[name]:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
