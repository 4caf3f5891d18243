"""The interpretable variational encoder (IVE): a β-VAE that predicts profiles at query radii.

Following Lucie-Smith et al. (2022, 2024), the encoder compresses a profile (any vector)
into a diagonal Gaussian ``q(z | x) = N(μ(x), diag σ²(x))``; the decoder takes one latent
sample *and a query radius* ``log r`` and returns the prediction at that radius, so the
profile is a function of radius. The loss per profile is

    L = Σ_r (y_r − ŷ(z, log r))² / (2 s²) + β KL(q(z | x) ‖ N(0, I))

(a Gaussian likelihood of width ``s = noise_scale`` plus β times the KL), divided by the
number of radii; β = 1 is the evidence lower bound for noise ``s``, β > 1 trades accuracy
for independent, sparse latents (Higgins et al. 2017). The decoder's first layer acts on
``(z, log r)``; it is computed as ``W_z z + w_r log r`` so that ``W_z z`` is evaluated
once per profile (the same function as the concatenated input, cheaper).

Latents are *active* when their mean KL over held-out data exceeds a threshold
(:func:`active_latents`); each active latent is then read through its mutual
information with known factors (:func:`latent_factor_mi`, with the GMM-MI estimator of
:mod:`astrobayes.interpret.mutual_info` and its bootstrap errors).

Training goes through :func:`astrobayes._training.fit`.

References:
    Lucie-Smith, Peiris, Pontzen, Nord, Thiyagalingam & Piras (2022), PRD 105, 103533,
    arXiv:2203.08827.
    Lucie-Smith, Peiris & Pontzen (2024), PRL 132, 031001, arXiv:2305.03077.
    Higgins et al. (2017), ICLR, "β-VAE: learning basic visual concepts with a
    constrained variational framework".
    Kingma & Welling (2014), arXiv:1312.6114 (the reparametrisation trick).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri
from jaxtyping import Array, Float, PRNGKeyArray

from astrobayes._checks import as_float_array, check_finite, check_key, check_positive_int
from astrobayes._status import Severity, Status, check
from astrobayes._training import TrainingConfig, TrainingInfo, fit, split_validation
from astrobayes._types import ProgressFn
from astrobayes.interpret.mutual_info import MIConfig, mutual_information

__all__ = [
    "LatentMIResult",
    "LatentMIStatus",
    "ProfileVAE",
    "VAEConfig",
    "active_latents",
    "encode_profiles",
    "gaussian_kl",
    "latent_factor_mi",
    "latent_traversal",
    "reconstruction_rms",
    "train_profile_vae",
    "vae_loss",
]

_LOG_VAR_RANGE = (-14.0, 6.0)


@dataclass(frozen=True)
class VAEConfig:
    """Architecture and loss of :class:`ProfileVAE`.

    Attributes:
        num_latents: Latent dimension (more than needed: the KL switches extra ones off).
        width: Hidden width of the encoder and decoder MLPs.
        depth: Hidden layers of the encoder and of the decoder.
        beta: Weight of the KL term.
        noise_scale: Width ``s`` of the Gaussian likelihood (units of the profile).
        decorrelation: Weight λ of the DIP-VAE-I penalty on the batch covariance of the
            posterior means between latents (0: plain β-VAE); see :func:`vae_loss`.
    """

    num_latents: int = 5
    width: int = 64
    depth: int = 2
    beta: float = 1.0
    noise_scale: float = 0.02
    decorrelation: float = 0.0

    def __post_init__(self) -> None:
        check_positive_int(self.num_latents, "num_latents")
        check_positive_int(self.width, "width")
        check_positive_int(self.depth, "depth")
        for name in ("beta", "noise_scale"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
        value = self.decorrelation
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ValueError(f"decorrelation must be a finite number >= 0; got {value!r}")


class ProfileVAE(eqx.Module):
    """Encoder ``x -> (μ, log σ²)`` and radius-conditioned decoder ``(z, log r) -> y``.

    Inputs are standardised with the stored ``input_shift``/``input_scale`` and the
    decoder's output is ``output_shift + output_scale * network`` (all fixed at
    construction from the training profiles, never trained: read through
    ``stop_gradient``).

    Args:
        key: PRNG key for the weights.
        num_radii: Length of an input profile.
        config: A :class:`VAEConfig`.
        input_shift: Per-radius mean of the training profiles (default 0).
        input_scale: Per-radius standard deviation of the training profiles (default 1).
        output_shift: Mean of all training profile values (default 0).
        output_scale: Standard deviation of all training profile values (default 1).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> vae = ProfileVAE(jax.random.key(0), 8, VAEConfig(num_latents=2, width=8))
        >>> mean, log_var = vae.encode(jnp.zeros(8))
        >>> vae.decode(mean, jnp.linspace(-1, 0, 8)).shape
        (8,)
    """

    encoder: eqx.nn.MLP
    latent_layer: eqx.nn.Linear
    radius_weight: Float[Array, " width"]
    decoder: eqx.nn.MLP
    input_shift: Float[Array, " num_radii"]
    input_scale: Float[Array, " num_radii"]
    output_shift: Float[Array, ""]
    output_scale: Float[Array, ""]
    num_latents: int = eqx.field(static=True)

    def __init__(
        self,
        key: PRNGKeyArray,
        num_radii: int,
        config: VAEConfig,
        input_shift: Array | None = None,
        input_scale: Array | None = None,
        output_shift: Array | float = 0.0,
        output_scale: Array | float = 1.0,
    ):
        check_key(key)
        check_positive_int(num_radii, "num_radii")
        if not isinstance(config, VAEConfig):
            raise TypeError(f"config must be a VAEConfig; got {type(config).__name__}")
        k_enc, k_lat, k_rad, k_dec = jax.random.split(key, 4)
        self.num_latents = config.num_latents
        self.encoder = eqx.nn.MLP(
            num_radii, 2 * config.num_latents, config.width, config.depth,
            activation=jax.nn.gelu, key=k_enc,
        )  # fmt: skip
        self.latent_layer = eqx.nn.Linear(config.num_latents, config.width, key=k_lat)
        self.radius_weight = jax.random.normal(k_rad, (config.width,))
        self.decoder = eqx.nn.MLP(
            config.width, "scalar", config.width, max(config.depth - 1, 0),
            activation=jax.nn.gelu, key=k_dec,
        )  # fmt: skip
        self.input_shift = jnp.zeros(num_radii) if input_shift is None else jnp.asarray(input_shift)
        self.input_scale = jnp.ones(num_radii) if input_scale is None else jnp.asarray(input_scale)
        self.output_shift = jnp.asarray(output_shift, self.input_shift.dtype)
        self.output_scale = jnp.asarray(output_scale, self.input_shift.dtype)

    def encode(self, profile: Float[Array, " num_radii"]) -> tuple[Array, Array]:
        """Posterior mean and log-variance of ``z`` for one profile."""
        shift = jax.lax.stop_gradient(self.input_shift)
        scale = jax.lax.stop_gradient(self.input_scale)
        out = self.encoder((profile - shift) / scale)
        mean, log_var = jnp.split(out, 2)
        return mean, jnp.clip(log_var, *_LOG_VAR_RANGE)

    def decode(
        self, latent: Float[Array, " num_latents"], log_radius: Float[Array, " num_query"]
    ) -> Float[Array, " num_query"]:
        """Prediction at every query ``log_radius`` for one latent vector."""
        hidden = self.latent_layer(latent)
        shift = jax.lax.stop_gradient(self.output_shift)
        scale = jax.lax.stop_gradient(self.output_scale)

        def one(log_r):
            return self.decoder(jax.nn.gelu(hidden + self.radius_weight * log_r))

        return shift + scale * jax.vmap(one)(log_radius)


def gaussian_kl(
    mean: Float[Array, "... num_latents"], log_var: Float[Array, "... num_latents"]
) -> Float[Array, "... num_latents"]:
    """``KL(N(mean, e^log_var) ‖ N(0, 1))`` per latent coordinate (nats).

    Examples:
        >>> import jax.numpy as jnp
        >>> float(gaussian_kl(jnp.zeros(1), jnp.zeros(1))[0])
        0.0
    """
    return 0.5 * (mean**2 + jnp.exp(log_var) - 1.0 - log_var)


def vae_loss(
    model: ProfileVAE,
    batch: tuple[Array],
    key: PRNGKeyArray,
    *,
    log_radius: Float[Array, " num_radii"],
    beta: float,
    noise_scale: float,
    decorrelation: float = 0.0,
) -> Float[Array, ""]:
    """β-VAE loss per radius, averaged over the batch (see the module docstring).

    With ``decorrelation`` λ > 0 the batch adds ``λ Σ_{i<j} Cov_batch[μ_i, μ_j]²`` (per
    profile, before the division by the number of radii): the off-diagonal term of
    DIP-VAE-I (Kumar et al. 2018, arXiv:1711.00848), which pushes the aggregate of the
    posterior means towards uncorrelated latents, as the factorised prior asks.
    """
    (profiles,) = batch
    keys = jax.random.split(key, profiles.shape[0])

    def one(profile, k):
        mean, log_var = model.encode(profile)
        latent = mean + jnp.exp(0.5 * log_var) * jax.random.normal(k, mean.shape)
        prediction = model.decode(latent, log_radius)
        reconstruction = jnp.sum((profile - prediction) ** 2) / (2.0 * noise_scale**2)
        return reconstruction + beta * jnp.sum(gaussian_kl(mean, log_var)), mean

    per_profile, means = jax.vmap(one)(profiles, keys)
    loss = jnp.mean(per_profile)
    centred = means - jnp.mean(means, axis=0)
    covariance = centred.T @ centred / means.shape[0]
    off_diagonal = covariance - jnp.diag(jnp.diagonal(covariance))
    loss = loss + 0.5 * decorrelation * jnp.sum(off_diagonal**2)
    return loss / profiles.shape[1]


def _profiles(log_density, log_radius) -> tuple[np.ndarray, np.ndarray]:
    profiles = as_float_array(log_density, "log_density", ndim=2)
    check_finite(profiles, "log_density")
    radii = as_float_array(log_radius, "log_radius", ndim=1)
    check_finite(radii, "log_radius")
    if radii.shape[0] != profiles.shape[1]:
        raise ValueError(
            f"log_radius must have one entry per profile column ({profiles.shape[1]}); "
            f"got {radii.shape[0]}"
        )
    return profiles, radii


def train_profile_vae(
    key: PRNGKeyArray,
    log_density: Float[Array, "num_profiles num_radii"],
    log_radius: Float[Array, " num_radii"],
    *,
    config: VAEConfig | None = None,
    training: TrainingConfig | None = None,
    progress_fn: ProgressFn | None = None,
) -> tuple[ProfileVAE, TrainingInfo]:
    """Train a :class:`ProfileVAE` through :func:`astrobayes._training.fit`.

    A random ``training.validation_fraction`` of the profiles is held out for early
    stopping; the input standardisation is taken from the training part.

    Args:
        key: PRNG key (weights, split, minibatches, latent samples).
        log_density: Profiles, shape ``(num_profiles, num_radii)``.
        log_radius: Query radii of the columns, ``(num_radii,)``.
        config: A :class:`VAEConfig` (default ``VAEConfig()``).
        training: A :class:`~astrobayes._training.TrainingConfig`.
        progress_fn: Passed to ``fit``.

    Returns:
        ``(model, info)``; ``info.status`` says whether training converged.

    Raises:
        ValueError: If the profiles are not finite 2-D, or ``log_radius`` does not match.

    Examples:
        >>> import jax
        >>> from astrobayes._training import TrainingConfig
        >>> from astrobayes.interpret.halos import halo_profiles
        >>> halos = halo_profiles(jax.random.key(0), 64)
        >>> model, info = train_profile_vae(
        ...     jax.random.key(1), halos.log_density, halos.log_radius,
        ...     config=VAEConfig(num_latents=2, width=8),
        ...     training=TrainingConfig(max_epochs=2, batch_size=32))
        >>> info.num_epochs
        2
    """
    check_key(key)
    config = VAEConfig() if config is None else config
    if not isinstance(config, VAEConfig):
        raise TypeError(f"config must be a VAEConfig; got {type(config).__name__}")
    training = TrainingConfig() if training is None else training
    profiles, radii = _profiles(log_density, log_radius)
    key_split, key_init, key_fit = jax.random.split(key, 3)
    dtype = jnp.result_type(float)
    train, validation = split_validation(
        key_split, (jnp.asarray(profiles, dtype),), training.validation_fraction
    )
    shift = jnp.mean(train[0], axis=0)
    scale = jnp.maximum(jnp.std(train[0], axis=0), 1e-6)
    model = ProfileVAE(
        key_init, profiles.shape[1], config, shift, scale,
        jnp.mean(train[0]), jnp.maximum(jnp.std(train[0]), 1e-6),
    )  # fmt: skip
    loss_fn = partial(
        vae_loss,
        log_radius=jnp.asarray(radii, dtype),
        beta=float(config.beta),
        noise_scale=float(config.noise_scale),
        decorrelation=float(config.decorrelation),
    )
    trainable = eqx.is_inexact_array
    filter_spec = jax.tree_util.tree_map(trainable, model)
    filter_spec = eqx.tree_at(
        lambda m: (m.input_shift, m.input_scale, m.output_shift, m.output_scale),
        filter_spec,
        replace=(False, False, False, False),
    )
    return fit(
        key_fit, model, loss_fn, train, validation, config=training,
        filter_spec=filter_spec, progress_fn=progress_fn,
    )  # fmt: skip


@eqx.filter_jit
def _encode_all(model: ProfileVAE, profiles: Array) -> tuple[Array, Array]:
    return jax.vmap(model.encode)(profiles)


def encode_profiles(
    model: ProfileVAE, log_density: Float[Array, "num_profiles num_radii"]
) -> tuple[Float[Array, "num_profiles num_latents"], Float[Array, "num_profiles num_latents"]]:
    """Posterior means and log-variances of every profile.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> vae = ProfileVAE(jax.random.key(0), 4, VAEConfig(num_latents=3, width=8))
        >>> mean, log_var = encode_profiles(vae, jnp.zeros((5, 4)))
        >>> mean.shape
        (5, 3)
    """
    profiles = as_float_array(log_density, "log_density", ndim=2)
    return _encode_all(model, jnp.asarray(profiles, jnp.result_type(float)))


def active_latents(
    mean: Float[Array, "num_profiles num_latents"],
    log_var: Float[Array, "num_profiles num_latents"],
    threshold: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """Latents whose mean KL to the prior exceeds ``threshold`` nats.

    An inactive latent has ``q(z | x) ≈ N(0, 1)`` for every profile (KL ≈ 0): the decoder
    ignores it.

    Args:
        mean: Posterior means, ``(num_profiles, num_latents)``.
        log_var: Posterior log-variances, same shape.
        threshold: KL threshold (nats per profile).

    Returns:
        ``(indices, kl)``: active latent indices ordered by decreasing KL, and the mean
        KL of every latent.

    Examples:
        >>> import jax.numpy as jnp
        >>> mean = jnp.array([[2.0, 0.0], [-2.0, 0.0]])
        >>> idx, kl = active_latents(mean, jnp.zeros((2, 2)))
        >>> idx.tolist(), kl.round(2).tolist()
        ([0], [2.0, 0.0])
    """
    kl = np.asarray(jnp.mean(gaussian_kl(jnp.asarray(mean), jnp.asarray(log_var)), axis=0))
    order = np.argsort(-kl)
    return order[kl[order] > threshold], kl


@eqx.filter_jit
def _reconstruct(model: ProfileVAE, profiles: Array, log_radius: Array) -> Array:
    mean, _ = jax.vmap(model.encode)(profiles)
    return jax.vmap(model.decode, in_axes=(0, None))(mean, log_radius)


def reconstruction_rms(
    model: ProfileVAE,
    log_density: Float[Array, "num_profiles num_radii"],
    log_radius: Float[Array, " num_radii"],
) -> tuple[float, np.ndarray]:
    """Root-mean-square error of the profiles decoded from their posterior means.

    Returns:
        ``(rms, rms_per_radius)`` in the units of the profile (dex for ``log10 ρ``).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> vae = ProfileVAE(jax.random.key(0), 4, VAEConfig(num_latents=2, width=8))
        >>> rms, per_radius = reconstruction_rms(vae, jnp.zeros((3, 4)), jnp.zeros(4))
        >>> per_radius.shape
        (4,)
    """
    profiles, radii = _profiles(log_density, log_radius)
    dtype = jnp.result_type(float)
    prediction = _reconstruct(model, jnp.asarray(profiles, dtype), jnp.asarray(radii, dtype))
    residual = np.asarray(prediction, np.float64) - profiles
    return float(np.sqrt(np.mean(residual**2))), np.sqrt(np.mean(residual**2, axis=0))


def latent_traversal(
    model: ProfileVAE,
    base: Float[Array, " num_latents"],
    latent_index: int,
    values: Float[Array, " num_values"],
    log_radius: Float[Array, " num_radii"],
) -> Float[Array, "num_values num_radii"]:
    """Decoded profiles as latent ``latent_index`` sweeps ``values``, the others at ``base``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> vae = ProfileVAE(jax.random.key(0), 4, VAEConfig(num_latents=2, width=8))
        >>> latent_traversal(vae, jnp.zeros(2), 1, jnp.linspace(-2, 2, 3), jnp.zeros(4)).shape
        (3, 4)
    """
    if not (0 <= int(latent_index) < model.num_latents):
        raise ValueError(f"latent_index must be in [0, {model.num_latents}); got {latent_index!r}")
    values = jnp.asarray(values)
    latents = jnp.tile(jnp.asarray(base), (values.shape[0], 1)).at[:, latent_index].set(values)
    return jax.vmap(model.decode, in_axes=(0, None))(latents, jnp.asarray(log_radius))


class LatentMIStatus(Status):
    """Outcome of :func:`latent_factor_mi`."""

    OK = (Severity.OK, "each factor has its own latent; off-diagonal MI below the tolerance")
    ENTANGLED = (
        Severity.WARNING,
        "warning: an off-diagonal MI is not below tolerance x the smallest diagonal MI",
    )
    SHARED = (
        Severity.WARNING,
        "warning: two factors share the latent of largest MI (no one-to-one matching)",
    )
    MI_WARNING = (
        Severity.WARNING,
        "warning: an MI estimate carried a warning (see mi_statuses)",
    )
    NON_FINITE = (Severity.FAILURE, "failure: an MI estimate is not finite")


class LatentMIResult(NamedTuple):
    """The latent × factor mutual-information matrix and its reading.

    Attributes:
        estimate: MI (nats), shape ``(num_latents, num_factors)`` (rows: the latents
            passed in, in order).
        error: Bootstrap standard deviations, same shape.
        matching: For every factor, the row of largest MI.
        diagonal: MI of the matched pairs, ``(num_factors,)``.
        off_diagonal_ratio: Largest MI of a matched latent with another factor, divided
            by the smallest diagonal MI.
        off_diagonal_ratio_error: Its error (first-order propagation of the bootstrap
            errors).
        mi_statuses: The status of every MI estimate (names), ``(num_latents, num_factors)``.
        status: A :class:`LatentMIStatus`.
    """

    estimate: np.ndarray
    error: np.ndarray
    matching: tuple[int, ...]
    diagonal: np.ndarray
    off_diagonal_ratio: float
    off_diagonal_ratio_error: float
    mi_statuses: np.ndarray
    status: LatentMIStatus


def _rank_gaussianise(column: np.ndarray) -> np.ndarray:
    """``Φ⁻¹((rank + ½) / n)``: a monotone map, so MI is unchanged (ties keep order)."""
    ranks = np.argsort(np.argsort(column, kind="stable"), kind="stable")
    return np.asarray(ndtri((ranks + 0.5) / column.shape[0]), np.float64)


def latent_factor_mi(
    key: PRNGKeyArray,
    latents: Float[Array, "num_samples num_latents"],
    factors: Float[Array, "num_samples num_factors"],
    *,
    config: MIConfig | None = None,
    tolerance: float = 0.1,
    rank_gaussianise: bool = True,
    throw: bool = False,
) -> LatentMIResult:
    """MI of every latent with every factor, matched latent-to-factor by largest MI.

    Each entry is :func:`~astrobayes.interpret.mutual_information` of one latent column
    with one factor column (GMM-MI with bootstrap errors). With ``rank_gaussianise``
    every column is first mapped through its empirical CDF and the normal quantile — a
    monotone map, which leaves the MI unchanged and spares the mixture fit sharp edges
    (uniform factors).

    Args:
        key: PRNG key (one subkey per entry).
        latents: Latent values (e.g. posterior means of the active latents),
            ``(num_samples, num_latents)``.
        factors: Generating factors, ``(num_samples, num_factors)``; ``num_factors`` must
            not exceed ``num_latents``.
        config: :class:`~astrobayes.interpret.MIConfig` for every entry.
        tolerance: The matrix is disentangled when every off-diagonal MI of a matched
            latent is below ``tolerance`` times the smallest diagonal MI.
        rank_gaussianise: Apply the copula (rank → normal) transform first.
        throw: Raise on a failure status.

    Returns:
        A :class:`LatentMIResult`.

    Raises:
        ValueError: If the arrays are not finite 2-D with the same number of rows, or
            there are fewer latents than factors.

    Examples:
        >>> import jax
        >>> from astrobayes.interpret import MIConfig
        >>> f = jax.random.normal(jax.random.key(0), (200, 1))
        >>> z = -f + 0.1 * jax.random.normal(jax.random.key(1), (200, 1))
        >>> small = MIConfig(max_components=1, num_bootstrap=5, num_mc_samples=500)
        >>> r = latent_factor_mi(jax.random.key(2), z, f, config=small)
        >>> r.matching, bool(r.estimate[0, 0] > 1.5)
        ((0,), True)
    """
    check_key(key)
    z = as_float_array(latents, "latents", ndim=2)
    f = as_float_array(factors, "factors", ndim=2)
    check_finite(z, "latents")
    check_finite(f, "factors")
    if z.shape[0] != f.shape[0]:
        raise ValueError(
            f"latents and factors must have the same number of rows; got {z.shape[0]} "
            f"and {f.shape[0]}"
        )
    if z.shape[1] < f.shape[1]:
        raise ValueError(
            f"need at least as many latents as factors; got {z.shape[1]} latents and "
            f"{f.shape[1]} factors"
        )
    if not (isinstance(tolerance, int | float) and 0 < tolerance < 1):
        raise ValueError(f"tolerance must be in (0, 1); got {tolerance!r}")
    if rank_gaussianise:
        z = np.stack([_rank_gaussianise(c) for c in z.T], axis=1)
        f = np.stack([_rank_gaussianise(c) for c in f.T], axis=1)
    num_latents, num_factors = z.shape[1], f.shape[1]
    estimate = np.empty((num_latents, num_factors))
    error = np.empty_like(estimate)
    statuses = np.empty((num_latents, num_factors), dtype=object)
    keys = jax.random.split(key, num_latents * num_factors)
    for i in range(num_latents):
        for j in range(num_factors):
            result = mutual_information(keys[i * num_factors + j], z[:, i], f[:, j], config=config)
            estimate[i, j], error[i, j] = result.estimate, result.error
            statuses[i, j] = result.status.name
    matching = tuple(int(i) for i in np.argmax(estimate, axis=0))
    diagonal = estimate[list(matching), np.arange(num_factors)]
    diagonal_error = error[list(matching), np.arange(num_factors)]
    off = [
        (estimate[row, g], error[row, g])
        for factor, row in enumerate(matching)
        for g in range(num_factors)
        if g != factor
    ]
    smallest = int(np.argmin(diagonal))
    if off:
        worst_off, worst_error = max(off, key=lambda pair: pair[0])
        ratio = float(worst_off / diagonal[smallest])
        ratio_error = float(
            np.hypot(worst_error, ratio * diagonal_error[smallest]) / abs(diagonal[smallest])
        )
    else:
        ratio, ratio_error = 0.0, 0.0
    if not np.all(np.isfinite(estimate)):
        status = LatentMIStatus.NON_FINITE
    elif len(set(matching)) < num_factors:
        status = LatentMIStatus.SHARED
    elif ratio >= tolerance:
        status = LatentMIStatus.ENTANGLED
    elif any(s != "OK" for s in statuses.ravel()):
        status = LatentMIStatus.MI_WARNING
    else:
        status = LatentMIStatus.OK
    result = LatentMIResult(
        estimate=estimate,
        error=error,
        matching=matching,
        diagonal=diagonal,
        off_diagonal_ratio=ratio,
        off_diagonal_ratio_error=ratio_error,
        mi_statuses=statuses,
        status=status,
    )
    return check(result, throw)
