"""configure: validate params.yaml and write each variant's resolved recipe to configs/<v>.json.

train@<v> depends on its own file only, so `dvc exp run -S gamma=0.3` re-trains just the
variants whose resolved recipe changed (keys that do not apply to a variant are left out).
The new files replace the old ones only when all are written (a failed write changes nothing)."""
from mnist_iter import files
from mnist_iter.cli import command
from mnist_iter.recipe import PARAMS_FILE, load_params, unchanged_since


@command
def main() -> None:
    check = unchanged_since(PARAMS_FILE)
    params = load_params()  # everything is validated before anything is written
    written = {files.config_file(name) for name in params.variants}
    with files.outputs() as out:
        for name, variant in params.variants.items():
            out.json(files.config_file(name), variant.recipe.to_dict())
        check()  # what DVC will record in dvc.lock is what these configs were made from
    files.remove_others(files.CONFIG_DIR, "*.json", written)
    print(f"{len(params.variants)} variants: {', '.join(params.variants)}")


if __name__ == "__main__":
    main()
