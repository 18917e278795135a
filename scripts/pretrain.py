"""The whole pipeline: `python scripts/pretrain.py` (pretrain, export, probe / fine-tune / scratch)."""

from unsupnn.cli import pretrain_main

if __name__ == "__main__":
    pretrain_main()
