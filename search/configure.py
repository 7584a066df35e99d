"""configure (search): validate the candidates of search/params.yaml against the root's
defaults and variants, and write each one's resolved recipe to search/configs/<c>.json.

    python -m search.configure        (from the repository root; dvc runs it there)

screen@<c> depends on its own file only, so a change to the root's defaults re-screens just the
candidates whose resolved recipe changed."""
from mnist_iter import files
from mnist_iter.cli import command
from mnist_iter.recipe import PARAMS_FILE, SEARCH_PARAMS, load_search, unchanged_since


@command
def main() -> None:
    check = unchanged_since(PARAMS_FILE, SEARCH_PARAMS)
    screen = load_search().screen  # everything is validated before anything is written
    written = {files.search_config(name) for name in screen}
    with files.outputs() as out:
        for name, candidate in screen.items():
            out.json(files.search_config(name), candidate.recipe.to_dict())
        check()
    files.remove_others(files.SEARCH_CONFIGS, "*.json", written)
    print(f"{len(screen)} screen candidates: {', '.join(screen)}")


if __name__ == "__main__":
    main()
