"""Not a stage: `from stages.models import load_model` keeps working (older READMEs' example)."""
from mnist_iter.checkpoint import load_model  # noqa: F401
