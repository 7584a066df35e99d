"""Not a stage: `from stages.models import load_model` keeps working (the README's example)."""
from mnist_iter.models import load_model  # noqa: F401
