"""Shipped weights of :mod:`astrobayes.physics` (package data; read through :mod:`astrobayes.io`).

- ``chemistry_mlp_ensemble.eqx``: the MLP deep ensemble (5 members, 96×3) surrogate of the
  primordial chemistry network, written by ``scripts/physics_train_surrogates.py`` (command
  and training record in ``chemistry_mlp_ensemble.json``); load it with
  :func:`astrobayes.io.surrogates.load_shipped_chemistry_surrogate`.
- ``chemistry_mlp_check.npz``: 16 held-out test trajectories (never trained on) with which
  the shipped weights' recorded error is reproduced (tests/test_physics_surrogates.py).
"""

__all__: list[str] = []
