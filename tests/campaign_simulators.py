"""Light simulators for the campaign tests (imported by process and Dask workers)."""

import time

import numpy as np


def noisy(seed, theta):
    """``theta`` plus unit Gaussian noise from ``seed``; fails where ``theta[0] > 10``."""
    if theta[0] > 10:
        raise RuntimeError("outside the simulator's range")
    return theta + np.random.default_rng(seed).normal(size=theta.shape)


def slow_noisy(seed, theta):
    """``noisy`` after a 50 ms sleep (a stand-in for an external code)."""
    time.sleep(0.05)
    return noisy(seed, theta)
