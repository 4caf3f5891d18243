"""The unrolled imaging network: invariants, bad input, files, pipeline and CLI (tiny nets)."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes._status import UnreliableResultError
from astrobayes.imaging.nufft import nufft_operator_from_pixel_phases
from astrobayes.imaging.operators import fourier_mask_operator
from astrobayes.imaging.pipeline import ImagingConfig, run_imaging
from astrobayes.imaging.problem import ImagingPriorConfig, demo_sky
from astrobayes.imaging.toeplitz import mask_normal_operator
from astrobayes.imaging.unrolled import (
    UnrolledImagingStatus,
    UnrolledNetwork,
    UnrolledSettings,
    data_consistency,
    normal_operator_of,
    reconstruct,
    run_unrolled_imaging,
)
from astrobayes.io.unrolled_files import read_unrolled, write_unrolled

TINY = UnrolledSettings(num_stages=1, widths=(2, 4))


def _net(settings=TINY, seed=0):
    return UnrolledNetwork(settings, key=jax.random.key(seed))


def _mask_problem(size=16, seed=0):
    rng = np.random.default_rng(seed)
    mask = rng.random((size, size)) < 0.4
    mask[0, 0] = True
    op = fourier_mask_operator(mask)
    truth = jnp.asarray(demo_sky(size), jnp.float32)
    return op, truth, op.adjoint(op(truth))


def test_non_negative_and_equivariant_to_data_and_weight_scaling():
    """x >= 0; reconstruct(N, a d) = a reconstruct(N, d); (b N, b d) gives the same image."""
    op, _, dirty = _mask_problem()
    net = _net()
    base = np.asarray(reconstruct(net, op.normal, dirty))
    assert base.shape == (16, 16)
    assert np.all(base >= 0)
    assert np.any(base > 0)
    scaled = np.asarray(reconstruct(net, op.normal, 7.0 * dirty))
    np.testing.assert_allclose(scaled, 7.0 * base, rtol=1e-4, atol=1e-6 * base.max())

    def weighted(x):
        return 3.0 * op.normal(x)

    same = np.asarray(reconstruct(net, weighted, 3.0 * dirty))
    np.testing.assert_allclose(same, base, rtol=1e-4, atol=1e-5 * base.max())


def test_toeplitz_normal_gives_the_same_image_as_the_explicit_normal():
    op, _, dirty = _mask_problem()
    net = _net()
    explicit = np.asarray(reconstruct(net, op.normal, dirty))
    toeplitz = np.asarray(reconstruct(net, mask_normal_operator(op), dirty))
    np.testing.assert_allclose(toeplitz, explicit, rtol=1e-4, atol=1e-5 * explicit.max())


def test_shared_weights_have_one_unet_and_differ_from_per_stage():
    shared = _net(UnrolledSettings(num_stages=3, widths=(4, 8), shared=True))
    per_stage = _net(UnrolledSettings(num_stages=3, widths=(4, 8)))
    assert len(shared.stages) == 1
    assert len(per_stage.stages) == 3
    assert shared.log_eps.shape == per_stage.log_eps.shape == (4,)
    assert len(_net(TINY).stages) == 1


def test_bad_inputs_are_named():
    op, _, dirty = _mask_problem()
    net = _net(UnrolledSettings(num_stages=1, widths=(2, 2, 2)))
    with pytest.raises(ValueError, match="does not fit the network"):
        reconstruct(net, op.normal, dirty[:14, :14])
    with pytest.raises(ValueError, match="2-d image"):
        reconstruct(net, op.normal, dirty[None])
    with pytest.raises(ValueError, match="non-finite pixels"):
        reconstruct(net, op.normal, dirty.at[3, 3].set(jnp.nan))
    with pytest.raises(TypeError, match="network must be an UnrolledNetwork"):
        reconstruct(object(), op.normal, dirty)
    with pytest.raises(TypeError, match="normal must be callable"):
        reconstruct(net, 3.0, dirty)
    with pytest.raises(ValueError, match="positive peak"):
        reconstruct(net, lambda x: -op.normal(x), dirty)
    with pytest.raises(ValueError, match="at least two resolutions"):
        UnrolledSettings(widths=(8,))
    with pytest.raises(ValueError, match="initial_eps"):
        UnrolledSettings(initial_eps=2.0)


def test_weights_round_trip_and_other_architecture_is_refused(tmp_path):
    net = _net(seed=3)
    path, json_path = write_unrolled(tmp_path / "net.eqx", net, note="tiny")
    loaded = read_unrolled(path)
    for a, b in zip(jax.tree.leaves(net), jax.tree.leaves(loaded.network), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert loaded.metadata["note"] == "tiny"
    assert json.loads(json_path.read_text())["settings"]["widths"] == [2, 4]
    # a header that claims another architecture than the payload holds
    raw = path.read_bytes()
    header, payload = raw.split(b"\n", 1)
    other = json.loads(header)
    other["settings"]["widths"] = [2, 8]
    (tmp_path / "other.eqx").write_bytes(json.dumps(other).encode() + b"\n" + payload)
    with pytest.raises(ValueError, match="another architecture"):
        read_unrolled(tmp_path / "other.eqx")
    other["settings"]["num_stages"] = 2
    other["settings"]["widths"] = [2, 4]
    (tmp_path / "more_stages.eqx").write_bytes(json.dumps(other).encode() + b"\n" + payload)
    with pytest.raises(ValueError, match="another architecture"):
        read_unrolled(tmp_path / "more_stages.eqx")
    (tmp_path / "junk.eqx").write_bytes(b"not json\n")
    with pytest.raises(ValueError, match="not an unrolled-network"):
        read_unrolled(tmp_path / "junk.eqx")
    with pytest.raises(FileNotFoundError, match="not found"):
        read_unrolled(tmp_path / "missing.eqx")
    with pytest.raises(ValueError, match=r"\.eqx"):
        write_unrolled(tmp_path / "net.npz", net)


def test_run_unrolled_imaging_on_nufft_data():
    rng = np.random.default_rng(1)
    points = rng.uniform(-np.pi, np.pi, size=(600, 2)) * rng.uniform(0, 1, size=(600, 1))
    op = nufft_operator_from_pixel_phases(points, image_shape=(16, 16))
    truth = jnp.asarray(demo_sky(16), jnp.float32)
    clean = op(truth)
    sigma = 0.01 * float(jnp.sqrt(jnp.mean(jnp.abs(clean) ** 2)))
    y = clean + sigma * (rng.normal(size=600) + 1j * rng.normal(size=600))
    net = _net()
    result = run_unrolled_imaging(net, op, y, sigma, truth=truth)
    assert result.image.shape == (16, 16)
    assert np.isfinite(result.snr_db)
    assert result.discrepancy_ratio > 0
    assert result.status in tuple(UnrolledImagingStatus)
    assert {"normal_operator_s", "reconstruct_s", "total_s"} <= set(result.timings)
    # the Toeplitz normal operator is the NUFFT's own
    image = jnp.zeros((16, 16)).at[5, 7].set(1.0)
    np.testing.assert_allclose(
        normal_operator_of(op)(image), op.normal(image), rtol=1e-3, atol=1e-3 * 600
    )
    with pytest.raises(ValueError, match="non-finite entries"):
        run_unrolled_imaging(net, op, y.at[0].set(jnp.nan), sigma)
    with pytest.raises(ValueError, match="shape"):
        run_unrolled_imaging(net, op, y[:10], sigma)
    with pytest.raises(ValueError, match="sigma"):
        run_unrolled_imaging(net, op, y, -1.0)
    big = _net(UnrolledSettings(num_stages=1, widths=(2, 2, 2, 2)))
    with pytest.raises(ValueError, match="does not fit the network"):
        run_unrolled_imaging(big, op, y, sigma)


def test_non_finite_reconstruction_is_a_failure():
    op, truth, _ = _mask_problem()
    net = _net()
    broken = jax.tree.map(lambda a: a * jnp.nan if a.ndim == 4 else a, net)
    y = op(truth)
    result = run_unrolled_imaging(broken, op, y, 0.01)
    assert result.status is UnrolledImagingStatus.NOT_FINITE
    assert result.snr_db is None
    with pytest.raises(UnreliableResultError) as caught:
        run_unrolled_imaging(broken, op, y, 0.01, throw=True)
    assert caught.value.result.status is UnrolledImagingStatus.NOT_FINITE


def test_config_routes_unrolled_and_refuses_map_settings():
    with pytest.raises(ValueError, match="no regularisation strength"):
        ImagingConfig(prior="unrolled", strength=3.0)
    with pytest.raises(ValueError, match="kind = 'unrolled'"):
        ImagingPriorConfig(kind="crr", weights="x.eqx")
    op, truth, _ = _mask_problem()
    with pytest.raises(ValueError, match="run_unrolled_imaging"):
        run_imaging(ImagingConfig(prior="unrolled"), op, op(truth), 0.01)


UNROLLED_CONFIG = """
[data]
truth = "demo"
mask = "demo"
isnr_db = 30.0

[prior]
kind = "unrolled"
weights = "tiny.eqx"
"""


def test_cli_images_with_the_unrolled_network(tmp_path, capsys):
    from astrobayes.cli.main import main

    write_unrolled(tmp_path / "tiny.eqx", _net())
    config = tmp_path / "run.toml"
    config.write_text(UNROLLED_CONFIG)
    out = tmp_path / "out"
    assert main(["image", str(config), "--out", str(out), "--no-plots"]) in (0, 1)
    results = json.loads((out / "results.json").read_text())
    assert results["prior"] == "unrolled"
    assert np.isfinite(results["snr_db"])
    assert results["status"] in ("ok", "residual_far_from_noise")
    assert "reconstruct_s" in results["timings"]
    assert (out / "map.fits").is_file()
    assert (out / "dirty.fits").is_file()
    # a network whose U-Nets pool too often for the 64x64 demo
    write_unrolled(tmp_path / "tiny.eqx", _net(UnrolledSettings(num_stages=1, widths=(2,) * 6)))
    assert main(["image", str(config), "--out", str(out), "--no-plots"]) != 0
    assert "does not fit the network" in capsys.readouterr().err


def test_shipped_weights_load_with_their_recorded_architecture():
    """The package's default network: small, its JSON and header agree, trained (history)."""
    from astrobayes.io.unrolled_files import default_unrolled_path

    path = default_unrolled_path()
    assert path.stat().st_size < 2_000_000
    weights = read_unrolled()
    assert weights.path == path
    settings = weights.network.settings
    recorded = weights.metadata["settings"]
    assert recorded["widths"] == list(settings.widths)
    assert recorded["num_stages"] == settings.num_stages
    assert recorded["shared"] == settings.shared
    assert len(weights.network.stages) == (1 if settings.shared else settings.num_stages)
    assert weights.metadata["script"] == "scripts/train_unrolled.py"
    assert weights.metadata["history"], "the shipped weights record their training"
    assert np.isfinite(weights.metadata["final_validation_loss"])
    for leaf in jax.tree.leaves(weights.network):
        assert np.all(np.isfinite(np.asarray(leaf)))


def test_shipped_weights_load_and_reconstruct_under_x64(global_x64):
    """With ``jax_enable_x64`` on, the float32 shipped weights load (the skeleton takes the
    file's dtype) and a float64 dirty image reconstructs through them, equal to the float32
    image's reconstruction to float32 rounding. Found 2026-12-06: the load raised
    ("Deserialised leaf ... has changed dtype") and the U-Net's convolutions refused
    float64 inputs."""
    network = read_unrolled().network
    assert {
        np.asarray(leaf).dtype
        for leaf in jax.tree.leaves(eqx.filter(network.stages, eqx.is_inexact_array))
    } == {np.dtype(np.float32)}
    op, _, dirty = _mask_problem(size=32)
    dirty32 = jnp.asarray(dirty, jnp.float32)
    image32 = np.asarray(reconstruct(network, lambda x: op.normal(x.astype(jnp.float32)), dirty32))
    image64 = np.asarray(reconstruct(network, op.normal, jnp.asarray(dirty32, jnp.float64)))
    assert image64.dtype == np.float64
    assert np.all(np.isfinite(image64))
    np.testing.assert_allclose(image64, image32, rtol=1e-3, atol=1e-4 * image32.max())


SHIPPED_CONFIG = """
[data]
truth = "demo"
mask = "demo"
isnr_db = 30.0

[prior]
kind = "unrolled"
"""


def test_cli_defaults_to_the_shipped_weights(tmp_path):
    """No ``weights`` in ``[prior]``: the shipped network; finite image, beats its start.

    Negative control: an untrained network of the same architecture (its Tikhonov start)
    on the same demo problem must be worse by more than 1 dB.
    """
    from astrobayes.cli.main import main
    from astrobayes.io.unrolled_files import default_unrolled_path

    config = tmp_path / "run.toml"
    config.write_text(SHIPPED_CONFIG)
    out = tmp_path / "out"
    assert main(["image", str(config), "--out", str(out), "--no-plots"]) in (0, 1)
    results = json.loads((out / "results.json").read_text())
    assert results["weights"] == str(default_unrolled_path())
    assert np.isfinite(results["snr_db"])
    untrained = _net(read_unrolled().network.settings)
    write_unrolled(tmp_path / "untrained.eqx", untrained)
    config.write_text(SHIPPED_CONFIG + 'weights = "untrained.eqx"\n')
    assert main(["image", str(config), "--out", str(out), "--no-plots"]) in (0, 1)
    control = json.loads((out / "results.json").read_text())["snr_db"]
    assert results["snr_db"] > control + 1.0, (results["snr_db"], control)


def test_data_consistency_solves_the_regularised_normal_equations():
    """CG against a dense solve; enough steps converge, too few (control) do not."""
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(16, 16))
    matrix = matrix @ matrix.T / 16  # symmetric positive semi-definite, like Phi^H W Phi

    def normal(v):
        return (matrix @ v.reshape(-1)).reshape(4, 4)

    dirty, anchor = (jnp.asarray(rng.normal(size=(4, 4))) for _ in range(2))
    exact = np.linalg.solve(
        matrix + 0.5 * np.eye(16), np.asarray(dirty + 0.5 * anchor).reshape(-1)
    ).reshape(4, 4)
    solved = np.asarray(data_consistency(normal, dirty, anchor, 0.5, 16))
    np.testing.assert_allclose(solved, exact, atol=1e-5)
    assert np.abs(np.asarray(data_consistency(normal, dirty, anchor, 0.5, 1)) - exact).max() > 1e-2
    np.testing.assert_array_equal(data_consistency(normal, dirty, anchor, 0.5, 0), anchor)
    with pytest.raises(ValueError, match="iterations must be >= 0; got -1"):
        data_consistency(normal, dirty, anchor, 0.5, -1)
    with pytest.raises(TypeError, match="iterations must be an integer"):
        data_consistency(normal, dirty, anchor, 0.5, 2.0)
    with pytest.raises(ValueError, match=r"one shape; got \(4, 4\) and \(4, 3\)"):
        data_consistency(normal, dirty, anchor[:, :3], 0.5, 2)


def test_data_consistency_stages_fit_the_data_round_trip_and_stay_equivariant(tmp_path):
    """A DC step pulls the output onto the data (small mu) or leaves it (large mu).

    The sky has a positive floor so that positivity does not bind. Weights of that
    architecture round-trip through the files.
    """
    op, truth, _ = _mask_problem()
    truth = truth + 1.0
    dirty = op.adjoint(op(truth))
    plain = _net(UnrolledSettings(num_stages=1, widths=(2, 4)), seed=1)

    def with_mu(mu):
        settings = UnrolledSettings(num_stages=1, widths=(2, 4), dc_iterations=6, initial_mu=mu)
        net = _net(settings, seed=1)
        return eqx.tree_at(lambda n: (n.stages, n.log_eps), net, (plain.stages, plain.log_eps))

    def misfit(net):
        x = reconstruct(net, op.normal, dirty)
        return float(jnp.sum(jnp.abs(op(x) - op(truth)) ** 2))

    assert misfit(with_mu(0.01)) < 1e-3 * misfit(plain)  # measured: 2.4e-6 vs 0.19
    assert misfit(with_mu(1e6)) == pytest.approx(misfit(plain), rel=1e-3)
    with_dc = with_mu(0.1)
    base = np.asarray(reconstruct(with_dc, op.normal, dirty))
    scaled = np.asarray(reconstruct(with_dc, op.normal, 5.0 * dirty))
    np.testing.assert_allclose(scaled, 5.0 * base, rtol=1e-4, atol=1e-5 * base.max())
    path, _ = write_unrolled(tmp_path / "dc.eqx", with_dc)
    loaded = read_unrolled(path).network
    assert loaded.settings.dc_iterations == 6
    np.testing.assert_array_equal(np.asarray(loaded.log_mu), np.asarray(with_dc.log_mu))
    with pytest.raises(ValueError, match="dc_iterations"):
        UnrolledSettings(dc_iterations=-1)
    with pytest.raises(ValueError, match="initial_mu"):
        UnrolledSettings(initial_mu=0.0)
