"""configure: validate params.yaml and write each variant's effective recipe to configs/<v>.json.

    python -m stages.configure

train@<v> depends on its own file only, so `dvc exp run -S gamma=0.3` re-trains just the
variants whose effective recipe changed (those that use a step schedule and inherit gamma).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from stages.config import load_params
from stages.errors import cli
from stages.io import write_json

CONFIG_DIR = Path("configs")


def configure(out_dir: Path = CONFIG_DIR) -> list[str]:
    params = load_params()  # everything is validated before anything is written
    shutil.rmtree(out_dir, ignore_errors=True)
    for name, variant in params.variants.items():
        write_json(out_dir / f"{name}.json", variant.recipe.to_dict())
    return list(params.variants)


@cli
def main() -> None:
    names = configure()
    print(f"{len(names)} variants: {', '.join(names)}")


if __name__ == "__main__":
    main()
