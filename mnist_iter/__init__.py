"""The library behind the MNIST iterations pipeline: recipes, data, models, training, reports.

The DVC stages in `stages/` are thin commands over these modules; nothing here imports a stage.
"""
