import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes._status import UnreliableResultError
from astrobayes._training import TrainingStatus
from astrobayes.sbi import (
    NPE,
    CNN1dEmbedding,
    CNN2dEmbedding,
    FlowConfig,
    MCMCConfig,
    MLPEmbedding,
    PosteriorStatus,
    Prior,
    SBIConfig,
    SBITrainingConfig,
    calibration_draws,
    run_sbi,
    sample_posterior,
    simulate_for_prior,
    train_nle,
    train_npe,
    train_nre,
    truncate_prior,
)
from astrobayes.sbi.embeddings import _conv_layout, _convolve, _halved, _max_pool

TINY = FlowConfig(
    flow_layers=1, nn_width=8, nn_depth=1, knots=0, classifier_width=8, classifier_depth=1
)
QUICK = SBITrainingConfig(max_epochs=8, batch_size=50, patience=50)


def simulate(key, theta):
    return theta + 0.2 * jax.random.normal(key, theta.shape)


@pytest.fixture(scope="module")
def data():
    prior = Prior.uniform([-1.0, -1.0], [1.0, 1.0])
    sims = simulate_for_prior(jax.random.key(0), prior, simulate, 300)
    return prior, sims.theta, sims.x


@pytest.fixture(scope="module")
def trained(data):
    """Tiny estimators trained once for the module (Modules are immutable)."""
    prior, theta, x = data
    k = jax.random.key(1)
    npe = train_npe(k, prior, theta, x, flow_config=TINY, training_config=QUICK)
    nle = train_nle(k, prior, theta, x, flow_config=TINY, training_config=QUICK)
    nre = train_nre(k, prior, theta, x, flow_config=TINY, training_config=QUICK)
    return {"npe": npe, "nle": nle, "nre": nre}


def test_npe_trains_and_respects_prior_support(key, data, trained):
    prior, theta, x = data
    npe, info = trained["npe"]
    assert isinstance(npe, NPE)
    assert info.train_losses[-1] < info.train_losses[0]
    samples = npe.sample(key, x[0], 500)
    assert samples.shape == (500, 2)
    assert bool(jnp.all(prior.in_support(samples)))
    outside = npe.log_posterior(jnp.array([[1.5, 0.0], [0.0, -1.2]]), jnp.asarray(x[0]))
    assert bool(jnp.all(outside == -jnp.inf))
    posterior = sample_posterior(key, npe, x[0], 100)
    assert posterior.samples.shape == (100, 2)
    assert posterior.method == "direct"


def test_npe_density_integrates_to_one_in_box(data, trained):
    """Normalised inside the box prior (for any weights, so the tiny NPE suffices)."""
    _, _, x = data
    npe, _ = trained["npe"]
    edge = jnp.linspace(-1 + 1e-4, 1 - 1e-4, 401)
    grid = jnp.stack(jnp.meshgrid(edge, edge, indexing="ij"), axis=-1)
    density = jnp.exp(npe.log_posterior(grid, jnp.asarray(x[0])))
    mass = jnp.trapezoid(jnp.trapezoid(density, edge, axis=1), edge)
    np.testing.assert_allclose(float(mass), 1.0, atol=2e-2)


@pytest.mark.slow
def test_same_key_same_training(key, data):
    prior, theta, x = data
    a, _ = train_npe(key, prior, theta, x, flow_config=TINY, training_config=QUICK)
    b, _ = train_npe(key, prior, theta, x, flow_config=TINY, training_config=QUICK)
    np.testing.assert_array_equal(a.sample(key, x[0], 5), b.sample(key, x[0], 5))


def test_nle_and_nre_train_and_sample(key, data, trained):
    prior, theta, x = data
    nle, info = trained["nle"]
    assert info.train_losses[-1] < info.train_losses[0]
    assert nle.log_likelihood(theta[:4], jnp.asarray(x[0])).shape == (4,)
    nre, info = trained["nre"]
    assert info.train_losses[-1] < info.train_losses[0]
    posterior = sample_posterior(key, nre, x[0], 50, method="importance")
    assert posterior.samples.shape == (50, 2)
    assert "effective_sample_size" in posterior.diagnostics
    draws = calibration_draws(key, nre, theta[:5], x[:5], 20, num_proposals=200)
    assert draws.samples.shape == (5, 20, 2)
    assert draws.log_prob_samples.shape == (5, 20)


def test_nle_continues_training_from_initial(key, data, trained):
    prior, theta, x = data
    nle, info = trained["nle"]
    more, more_info = train_nle(key, prior, theta, x, training_config=QUICK, initial=nle)
    # Same flow and standardisation, continued: starts near where the first run ended.
    np.testing.assert_array_equal(more.x_shift, nle.x_shift)
    assert more_info.train_losses[0] < info.train_losses[0]
    with pytest.raises(TypeError, match="initial must be an NLE"):
        train_nle(key, prior, theta, x, training_config=QUICK, initial=trained["npe"][0])
    with pytest.raises(ValueError, match="initial was trained on data of size 2"):
        train_nle(key, prior, theta, np.concatenate([x, x], axis=1), initial=nle)


@pytest.mark.slow
def test_nuts_posterior_shapes(key, data, trained):
    prior, theta, x = data
    nre, _ = trained["nre"]
    config = MCMCConfig(num_chains=2, num_warmup=10, num_initial=100)
    posterior = sample_posterior(key, nre, x[0], 20, method="nuts", mcmc_config=config)
    assert posterior.samples.shape == (20, 2)
    assert bool(jnp.all(prior.in_support(posterior.samples)))
    assert set(posterior.diagnostics) >= {"acceptance_rate", "num_divergent", "split_rhat_max"}


def test_truncated_prior_samples_inside_region(key, data, trained):
    prior, theta, x = data
    npe, _ = trained["npe"]
    samples = npe.sample(key, x[0], 200)
    truncated = truncate_prior(
        key, prior, npe, x[0], samples, epsilon=0.01, num_acceptance_draws=500
    )
    assert 0.0 < truncated.acceptance_rate <= 1.0
    draws = truncated.sample(key, 50)
    assert draws.shape == (50, 2)
    assert bool(jnp.all(truncated.contains(draws)))


def _abstract(cls, *args, **kwargs):
    """Build an embedding abstractly (no weights drawn: shape checks cost no compilation)."""
    return eqx.filter_eval_shape(lambda key: cls(key, *args, **kwargs), jax.random.key(0))


def test_embeddings_shapes():
    def shape(net, x):
        return eqx.filter_eval_shape(lambda n, x: n(x), net, x).shape

    x12, x32, x33 = (jax.ShapeDtypeStruct((n,), jnp.float32) for n in (12, 32, 33))
    assert shape(_abstract(MLPEmbedding, 12, 3), x12) == (3,)
    assert shape(_abstract(CNN1dEmbedding, 32, 4), x32) == (4,)
    two = jax.ShapeDtypeStruct((2, 32), jnp.float32)
    assert shape(_abstract(CNN1dEmbedding, 32, 4, in_channels=2), two) == (4,)
    square = jax.ShapeDtypeStruct((16, 16), jnp.float32)
    assert shape(_abstract(CNN2dEmbedding, (16, 16), 2), square) == (2,)
    with pytest.raises(ValueError, match="shape must be at least"):
        _abstract(CNN2dEmbedding, (4, 4), 2)
    # Strided convolutions (ceil halving, odd sizes included) instead of max-pooling.
    assert shape(_abstract(CNN1dEmbedding, 33, 4, downsample="stride"), x33) == (4,)
    strided = _abstract(CNN2dEmbedding, (17, 16), 2, in_channels=3, downsample="stride")
    assert shape(strided, jax.ShapeDtypeStruct((3, 17, 16), jnp.float32)) == (2,)
    assert [c.stride for c in strided.convs] == [(2, 2)] * 3
    # Global average pooling: the head sees one value per channel, whatever the map size.
    pooled = _abstract(CNN2dEmbedding, (32, 24), 2, channels=(4, 6), global_pool=True)
    assert pooled.head.in_size == 6
    assert shape(pooled, jax.ShapeDtypeStruct((32, 24), jnp.float32)) == (2,)
    assert _abstract(CNN1dEmbedding, 40, 2, channels=(4, 6), global_pool=True).head.in_size == 6
    with pytest.raises(ValueError, match="downsample must be one of"):
        _abstract(CNN2dEmbedding, (16, 16), 2, downsample="mean")
    with pytest.raises(ValueError, match="downsample must be one of"):
        _abstract(CNN1dEmbedding, 16, 2, downsample="avg")


@pytest.mark.parametrize(("downsample", "kernel_size"), [("max", 2), ("stride", 3)])
def test_cnn_blocks_match_equinox_layers(key, downsample, kernel_size):
    """The im2col convolution and reshape max-pool give equinox's numbers (odd sizes)."""
    k1, k2, kx = jax.random.split(key, 3)
    stride, padding = _conv_layout(downsample, kernel_size)
    for conv, pool, x in (
        (
            eqx.nn.Conv2d(2, 3, kernel_size, stride=stride, padding=padding, key=k1),
            eqx.nn.MaxPool2d(2, 2),
            jax.random.normal(kx, (2, 9, 8)),
        ),
        (
            eqx.nn.Conv1d(2, 3, kernel_size, stride=stride, padding=padding, key=k2),
            eqx.nn.MaxPool1d(2, 2),
            jax.random.normal(kx, (2, 11)),
        ),
    ):
        ours = _convolve(conv, x, downsample)
        np.testing.assert_allclose(ours, conv(x), atol=1e-5)
        expected = _halved(x.shape[1], "stride", kernel_size)
        assert ours.shape[1] == (expected if downsample == "stride" else x.shape[1])
        np.testing.assert_array_equal(_max_pool(ours), pool(ours))


@pytest.mark.slow
def test_npe_with_cnn_embedding_trains(key):
    prior = Prior.uniform([0.5], [2.0])

    def field(k, theta):
        return theta[0] * jax.random.normal(k, (16, 16))

    sims = simulate_for_prior(key, prior, field, 200)
    embedding = CNN2dEmbedding(key, (16, 16), 2, channels=(4, 4))
    npe, info = train_npe(
        key, prior, sims.theta, sims.x, embedding=embedding, flow_config=TINY, training_config=QUICK
    )
    assert info.train_losses[-1] < info.train_losses[0]
    assert npe.sample(key, sims.x[0], 3).shape == (3, 1)


def test_estimator_validation(key, data, trained):
    prior, theta, x = data
    with pytest.raises(TypeError, match="prior must be"):
        train_npe(key, "uniform", theta, x)
    with pytest.raises(ValueError, match="leading axis of length"):
        train_npe(key, prior, theta, x[:10])
    with pytest.raises(ValueError, match="inside the prior support"):
        train_npe(key, prior, theta * 3, x)
    with pytest.raises(ValueError, match="prior.dim"):
        train_nle(key, prior, theta[:, :1], x)
    with pytest.raises(ValueError, match="interval must be"):
        FlowConfig(interval=-1.0)
    with pytest.raises(ValueError, match="validation_fraction"):
        SBITrainingConfig(validation_fraction=1.5)
    npe, _ = trained["npe"]
    with pytest.raises(ValueError, match="x_obs must have the training data's shape"):
        sample_posterior(key, npe, np.zeros(5), 10)
    nre, _ = trained["nre"]
    with pytest.raises(ValueError, match="method='direct' needs an NPE"):
        sample_posterior(key, nre, x[0], 10, method="direct")
    with pytest.raises(ValueError, match="method must be"):
        sample_posterior(key, npe, x[0], 10, method="slice")


def test_training_status_reaches_the_info(trained):
    """max_epochs=8 with patience 50 cannot stop early: a MAX_EPOCHS warning, not silence."""
    for name in ("npe", "nle", "nre"):
        _, info = trained[name]
        assert info.status is TrainingStatus.MAX_EPOCHS
        assert info.status.is_warning
        assert info.num_epochs == 8


def _broken(npe):
    return eqx.tree_at(lambda m: m.u_shift, npe, jnp.full_like(npe.u_shift, jnp.nan))


def test_non_finite_posterior_is_a_failure_and_throws(key, data, trained):
    _, theta, x = data
    broken = _broken(trained["npe"][0])
    posterior = sample_posterior(key, broken, x[0], 10)
    assert posterior.status is PosteriorStatus.NON_FINITE
    with pytest.raises(UnreliableResultError, match="not finite") as error:
        sample_posterior(key, broken, x[0], 10, throw=True)
    assert error.value.result.samples.shape == (10, 2)
    draws = calibration_draws(key, broken, theta[:3], x[:3], 5)
    assert draws.status is PosteriorStatus.NON_FINITE
    with pytest.raises(UnreliableResultError, match="NON_FINITE") as error:
        calibration_draws(key, broken, theta[:3], x[:3], 5, throw=True)
    assert error.value.result.samples.shape == (3, 5, 2)


def _run_config(**training):
    return SBIConfig(
        simulator="unused:simulate",
        prior={"a": {"uniform": [-1.0, 1.0]}, "b": {"uniform": [-1.0, 1.0]}},
        x_obs=(0.1, -0.2),
        num_simulations=60,
        num_posterior_samples=20,
        num_validation=0,
        flow=TINY,
        training=SBITrainingConfig(batch_size=20, **training),
    )


def test_run_sbi_surfaces_training_warning(key):
    result = run_sbi(key, _run_config(max_epochs=2), np.array([0.1, -0.2]), simulator=simulate)
    assert result.rounds[0].training_status is TrainingStatus.MAX_EPOCHS
    assert result.training[0].num_epochs == 2
    assert result.status is TrainingStatus.MAX_EPOCHS


def test_run_sbi_throws_on_diverged_training(key):
    """A step size of 1e30 without clipping makes the loss non-finite: a failure."""
    config = _run_config(max_epochs=3, learning_rate=1e30, clip_max_norm=None)
    result = run_sbi(key, config, np.array([0.1, -0.2]), simulator=simulate)
    assert result.status is TrainingStatus.NON_FINITE
    with pytest.raises(UnreliableResultError, match="non-finite") as error:
        run_sbi(key, config, np.array([0.1, -0.2]), simulator=simulate, throw=True)
    assert error.value.result.rounds[0].training_status is TrainingStatus.NON_FINITE
