"""download: the four MNIST files into data/MNIST/raw, MD5-checked; mirrors: $MNIST_MIRROR (a
folder or URL) first when set, then data.mirrors of params.yaml, each file from the first one
that serves it intact."""
from mnist_iter.cli import command
from mnist_iter.data import download, mirror_list
from mnist_iter.files import RAW_DIR
from mnist_iter.recipe import load_params


@command
def main() -> None:
    for name, source in download(RAW_DIR, mirror_list(load_params().mirrors)).items():
        print(f"{name:28s} ok  ({source})")


if __name__ == "__main__":
    main()
