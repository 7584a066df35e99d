"""The search for smaller networks (README.md here). Importing the package sets the default
arithmetic's environment before torch loads (mnist_iter/cpu_math.py)."""
from mnist_iter import cpu_math

cpu_math.preset()
