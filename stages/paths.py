"""Where each stage reads and writes; dvc.yaml names the same paths."""
from pathlib import Path

MODELS = Path("models")
VARIANT_REPORTS = Path("reports/variants")


def checkpoint(variant: str) -> Path:
    return MODELS / f"{variant}.pt"


def train_dir(variant: str) -> Path:
    return VARIANT_REPORTS / variant / "train"


def eval_dir(variant: str) -> Path:
    return VARIANT_REPORTS / variant / "eval"
