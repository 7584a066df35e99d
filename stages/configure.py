"""configure: validate params.yaml and write each variant's resolved recipe to configs/<v>.json.

train@<v> depends on its own file only, so `dvc exp run -S gamma=0.3` re-trains just the
variants whose resolved recipe changed (keys that do not apply to a variant are left out)."""
import shutil

from mnist_iter.cli import command
from mnist_iter.files import CONFIG_DIR, outputs
from mnist_iter.recipe import load_params


@command
def main() -> None:
    params = load_params()  # everything is validated before anything is written
    shutil.rmtree(CONFIG_DIR, ignore_errors=True)
    with outputs() as out:
        for name, variant in params.variants.items():
            out.json(CONFIG_DIR / f"{name}.json", variant.recipe.to_dict())
        for name, candidate in params.screen.items():
            out.json(CONFIG_DIR / "screen" / f"{name}.json", candidate.recipe.to_dict())
    print(f"{len(params.variants)} variants: {', '.join(params.variants)}")
    if params.screen:
        print(f"{len(params.screen)} screen candidates: {', '.join(params.screen)}")


if __name__ == "__main__":
    main()
