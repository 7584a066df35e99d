"""prepare: parse the four IDX files into data/mnist.pt (uint8 images, int64 labels, the
training images' mean and std)."""
from mnist_iter.cli import command
from mnist_iter.data import prepare
from mnist_iter.files import DATA_FILE, RAW_DIR, outputs, sweep_stale


@command
def main() -> None:
    sweep_stale(DATA_FILE.parent)
    with outputs() as out:
        data = prepare(RAW_DIR, out, DATA_FILE)
    print(f"train {tuple(data['train_images'].shape)}  test {tuple(data['test_images'].shape)}  "
          f"mean {data['mean']:.4f}  std {data['std']:.4f}  -> {DATA_FILE}")


if __name__ == "__main__":
    main()
