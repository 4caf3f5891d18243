"""``pnp_ula(loop="python")``: the same chains as the compiled ``lax.scan`` program."""

import jax
import numpy as np
import pytest

from astrobayes.imaging.operators import fourier_mask_operator
from astrobayes.imaging.pnp import pnp_ula


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ula", "mala"])
def test_python_loop_reproduces_the_scan_chains(method):
    rng = np.random.default_rng(0)
    op = fourier_mask_operator(rng.random((4, 4)) < 0.6)
    data = op(rng.normal(size=(4, 4)))
    kwargs = dict(
        score_lipschitz=1.0,
        box=(0.0, None),
        method=method,
        potential_fn=lambda x: 0.5 * (x**2).sum(),
        num_chains=3,
        num_samples=6,
        num_warmup=5,
        thinning=2,
    )
    args = (jax.random.key(3), op, data, 0.5, lambda x: -x, np.zeros((4, 4)))
    scan = pnp_ula(*args, **kwargs)
    python = pnp_ula(*args, loop="python", **kwargs)
    np.testing.assert_allclose(python.summaries, scan.summaries, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(python.mean, scan.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(python.variance, scan.variance, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(python.max_abs, scan.max_abs, rtol=1e-5)
    if method == "mala":
        assert python.acceptance_rate == pytest.approx(scan.acceptance_rate)
    assert python.status == scan.status
    # negative control: another key gives other chains
    other = pnp_ula(jax.random.key(4), *args[1:], loop="python", **kwargs)
    assert not np.allclose(other.summaries, scan.summaries)
    with pytest.raises(ValueError, match="loop must be 'scan' or 'python'"):
        pnp_ula(*args, loop="fori", **kwargs)


@pytest.mark.parametrize("loop", ["python", "scan"])
def test_progress_counts_every_iteration_and_changes_nothing(loop):
    op = fourier_mask_operator(np.ones((4, 4), dtype=bool))
    args = (jax.random.key(3), op, op(np.ones((4, 4))), 0.5, lambda x: -x, np.zeros((4, 4)))
    kwargs = dict(score_lipschitz=1.0, num_chains=2, num_samples=4, num_warmup=5, thinning=2)
    calls = []
    reported = pnp_ula(*args, loop=loop, progress_fn=lambda *a: calls.append(a), **kwargs)
    total = 2 * (3 + 4)  # thinning x (ceil(5 / 2) warm-up blocks + 4 kept samples)
    if loop == "python":  # after every block of `thinning` iterations
        assert calls == [("sampling", 2 * (b + 1), total) for b in range(7)]
    else:  # one compiled program: reported when it is done
        assert calls == [("sampling", total, total)]
    quiet = pnp_ula(*args, loop=loop, **kwargs)
    np.testing.assert_array_equal(reported.summaries, quiet.summaries)
