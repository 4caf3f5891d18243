"""Package data of :mod:`astrobayes.cosmology.shear`.

The synthetic DES-Y1-like data vector with its covariance (``des_y1_like.npz``) and the trained emulator
(``des_y1_like_emulator.eqx``), made by ``scripts/make_shear_training_set.py`` and
``scripts/train_shear_emulator.py``.
"""
