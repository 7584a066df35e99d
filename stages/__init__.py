"""The pipeline's stages, one module each. Importing the package sets the default arithmetic's
environment before torch loads (mnist_iter/cpu_math.py), so the usual recipe starts no second
process."""
from mnist_iter import cpu_math

cpu_math.preset()
