"""Command groups of the ``cityhealth`` CLI; each module exposes ``register(app)``."""
