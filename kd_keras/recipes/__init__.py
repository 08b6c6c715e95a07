"""Recipes: `python -m kd_keras.recipes.<task>` over one shared runner."""
