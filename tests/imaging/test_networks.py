"""The shared imaging networks: shapes, bias-free scale equivariance, clear errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes.imaging.networks import DnCNN, UNet, parameter_count


def test_unet_shapes_and_multiscale():
    net = UNet(3, 2, key=jax.random.key(0), widths=(4, 8, 8))
    assert net.size_multiple == 4
    out = eqx.filter_jit(net)(jnp.ones((3, 12, 16)))
    assert out.shape == (2, 12, 16)
    batch = eqx.filter_jit(lambda m, x: jax.vmap(m)(x))(net, jnp.ones((5, 3, 8, 8)))
    assert batch.shape == (5, 2, 8, 8)


def test_unet_uses_coarse_scale():
    # A perturbation far from a pixel reaches it only through the coarse path's
    # receptive field: with 3 levels of 3x3 convs the output at (0, 0) must depend on
    # input pixels more than 4 pixels away (a single-level net would not).
    net = UNet(1, 1, key=jax.random.key(1), widths=(4, 4, 4), convs_per_level=1)
    x = jax.random.normal(jax.random.key(2), (1, 16, 16))
    grad = jax.jit(jax.grad(lambda z: net(z)[0, 0, 0]))(x)
    assert float(jnp.abs(grad[0, 6:, 6:]).sum()) > 0.0
    flat = UNet(1, 1, key=jax.random.key(1), widths=(4,), convs_per_level=1)
    grad_flat = jax.jit(jax.grad(lambda z: flat(z)[0, 0, 0]))(x)
    assert float(jnp.abs(grad_flat[0, 6:, 6:]).sum()) == 0.0


@pytest.mark.parametrize(
    "make",
    [
        lambda k: UNet(1, 1, key=k, widths=(4, 8), use_bias=False),
        lambda k: DnCNN(1, 1, key=k, width=4, depth=4, use_bias=False),
    ],
)
def test_bias_free_networks_are_scale_equivariant(make):
    net = make(jax.random.key(3))
    x = jax.random.normal(jax.random.key(4), (1, 8, 8))
    np.testing.assert_allclose(net(2.5 * x), 2.5 * net(x), rtol=1e-5, atol=1e-6)
    # Negative control: with biases the same identity fails.
    biased = UNet(1, 1, key=jax.random.key(3), widths=(4, 8), use_bias=True)
    biased = eqx.tree_at(lambda m: m.head.bias, biased, jnp.ones_like(biased.head.bias))
    assert not np.allclose(biased(2.5 * x), 2.5 * biased(x), rtol=1e-3)


def test_circular_padding_is_translation_equivariant():
    net = DnCNN(1, 1, key=jax.random.key(5), width=4, depth=3, padding_mode="CIRCULAR")
    x = jax.random.normal(jax.random.key(6), (1, 8, 8))
    shifted = jnp.roll(x, (3, 2), axis=(1, 2))
    np.testing.assert_allclose(net(shifted), jnp.roll(net(x), (3, 2), axis=(1, 2)), atol=1e-5)


def test_parameter_count():
    net = DnCNN(2, 1, key=jax.random.key(0), width=3, depth=2, use_bias=True)
    assert parameter_count(net) == 9 * (2 * 3 + 3 * 1) + 3 + 1


def test_bad_inputs_are_clear():
    with pytest.raises(TypeError, match="key"):
        UNet(1, 1, key=0)
    with pytest.raises(ValueError, match="widths"):
        UNet(1, 1, key=jax.random.key(0), widths=())
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        DnCNN(1, 1, key=jax.random.key(0), kernel_size=4)
    with pytest.raises(ValueError, match="padding_mode"):
        DnCNN(1, 1, key=jax.random.key(0), padding_mode="wrap")
    with pytest.raises(TypeError, match="in_channels"):
        UNet(1.0, 1, key=jax.random.key(0))
    net = UNet(2, 1, key=jax.random.key(0), widths=(4, 8))
    with pytest.raises(ValueError, match="divisible by 2"):
        net(jnp.ones((2, 7, 8)))
    with pytest.raises(ValueError, match="2 input channels"):
        net(jnp.ones((1, 8, 8)))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        net(jnp.ones((8, 8)))
