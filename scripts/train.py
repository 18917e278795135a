"""Unsupervised training only: `python scripts/train.py model=rbm model.n_hidden=256 trainer.max_epochs=5`."""

from unsupnn.cli import train_main

if __name__ == "__main__":
    train_main()
