r"""Physics-informed neural network for the Lane–Emden equation, with a deep ensemble.

The Lane–Emden equation of a polytrope of index :math:`n`,

.. math::

    \frac{1}{\xi^2}\frac{d}{d\xi}\Big(\xi^2 \frac{d\theta}{d\xi}\Big) + \theta^n = 0,
    \qquad \theta(0) = 1,\; \theta'(0) = 0,

has closed forms for :math:`n = 0` (:math:`1 - \xi^2/6`), :math:`n = 1`
(:math:`\sin\xi/\xi`) and :math:`n = 5` (:math:`(1 + \xi^2/3)^{-1/2}`).

Boundary conditions by construction. The network :math:`N_\phi` enters through
:math:`\theta(\xi) = 1 + \xi^2 N_\phi(\xi)`, which satisfies both conditions at the centre
for any weights. With it the operator is regular at :math:`\xi = 0`:
:math:`\theta'' + 2\theta'/\xi = 6N + 6\xi N' + \xi^2 N''`, so the residual
:math:`r = 6N + 6\xi N' + \xi^2 N'' + \theta^n` has no :math:`1/\xi`.

Training. The loss is the mean squared residual over collocation points (the physics
loss; no solution values are used), minimised with the shared loop
:func:`astrobayes._training.fit` (minibatches of collocation points; the validation loss is
the residual on a fixed grid, which drives early stopping). Collocation adaptation is
residual-based adaptive refinement (RAR, Lu et al. 2021, arXiv:1907.04502): after each
round the ``num_added`` candidates with the largest :math:`|r|` among ``num_candidates``
random points join the set, and training continues from the current weights.

Uncertainty. A deep ensemble (Lakshminarayanan et al. 2017, arXiv:1612.01474): members
differ in initial weights, collocation points and minibatch order; the prediction is the
ensemble mean and the spread its standard deviation. Whether that spread covers the
exact solution at the nominal level is an empirical question:
:func:`ensemble_coverage` measures it (docs/physics.md reports it).

References:
    Raissi, Perdikaris & Karniadakis 2019 (arXiv:1711.10561); Lagaris, Likas & Fotiadis
    1998 (arXiv:physics/9705023) for boundary conditions by construction; Lu et al. 2021
    (arXiv:1907.04502) for RAR; Karniadakis et al. 2021, Nat. Rev. Phys. 3, 422; Chandrasekhar
    1939, "An Introduction to the Study of Stellar Structure" for the Lane–Emden solutions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from astrobayes._checks import check_key, check_positive_int
from astrobayes._status import Severity, Status, check, worst
from astrobayes._training import TrainingConfig, TrainingInfo, TrainingStatus, fit
from astrobayes._types import ProgressFn

__all__ = [
    "LaneEmdenConfig",
    "LaneEmdenEnsemble",
    "LaneEmdenPINN",
    "PINNStatus",
    "ensemble_coverage",
    "ensemble_predict",
    "lane_emden_exact",
    "lane_emden_residual",
    "solve_lane_emden",
    "train_lane_emden_ensemble",
]

#: First zero of theta for the analytic indices (n = 5 has none; 10 is used as the edge).
_DEFAULT_EXTENT = {0.0: math.sqrt(6.0), 1.0: math.pi, 5.0: 10.0}


class PINNStatus(Status):
    """Outcome of :func:`train_lane_emden_ensemble`."""

    OK = (Severity.OK, "every ensemble member converged")
    MAX_EPOCHS = (
        Severity.WARNING,
        "warning: at least one member stopped at max_epochs while its residual was still "
        "falling; raise training.max_epochs",
    )
    NON_FINITE = (
        Severity.FAILURE,
        "failure: the residual loss of at least one member became non-finite",
    )


def lane_emden_exact(n: float, xi: Float[ArrayLike, "*shape"]) -> Float[Array, "*shape"]:
    r"""Closed-form Lane–Emden solution for :math:`n \in \{0, 1, 5\}`.

    Args:
        n: Polytropic index, 0, 1 or 5.
        xi: Dimensionless radius :math:`\xi \ge 0`, any shape.

    Returns:
        :math:`\theta_n(\xi)`, same shape.

    Raises:
        ValueError: If ``n`` is not 0, 1 or 5.

    Example:
        >>> abs(float(lane_emden_exact(1, 3.141592653589793))) < 1e-6  # first zero at pi
        True

    """
    xi = jnp.asarray(xi)
    if float(n) == 0.0:
        return 1.0 - xi**2 / 6.0
    if float(n) == 1.0:
        return jnp.sinc(xi / jnp.pi)
    if float(n) == 5.0:
        return 1.0 / jnp.sqrt(1.0 + xi**2 / 3.0)
    raise ValueError(f"n must be 0, 1 or 5 for a closed form; got {n!r}")


def _lane_emden_field(xi, y, n):
    theta, slope = y[0], y[1]
    power = jnp.where(n == 0.0, 1.0, jnp.maximum(theta, 0.0) ** n)
    return jnp.stack([slope, -power - 2.0 * slope / xi])


def solve_lane_emden(
    n: float,
    xi: Float[ArrayLike, " num"],
    *,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    start: float = 1e-4,
) -> Float[Array, " num"]:
    r"""Conventional solution: an adaptive Dormand–Prince (``diffrax.Dopri8``) integration.

    The singular centre is stepped over with the series
    :math:`\theta = 1 - \xi^2/6 + n\xi^4/120` at ``start``.

    Args:
        n: Polytropic index :math:`\ge 0`.
        xi: Increasing radii, each :math:`\ge` ``start``.
        rtol: Relative tolerance.
        atol: Absolute tolerance.
        start: Radius where the series hands over to the solver.

    Returns:
        :math:`\theta(\xi)` at ``xi``.

    Example:
        >>> import jax.numpy as jnp
        >>> theta = solve_lane_emden(1.0, jnp.array([1.0, 2.0]), rtol=1e-6, atol=1e-8)
        >>> bool(jnp.allclose(theta, lane_emden_exact(1, jnp.array([1.0, 2.0])), atol=1e-5))
        True

    """
    xi = jnp.asarray(xi)
    dtype = jnp.result_type(xi.dtype, jnp.float32)
    s = jnp.asarray(start, dtype)
    y0 = jnp.stack([1.0 - s**2 / 6.0 + n * s**4 / 120.0, -s / 3.0 + n * s**3 / 30.0])
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(_lane_emden_field),
        diffrax.Dopri8(),
        t0=s,
        t1=jnp.max(xi).astype(dtype),
        dt0=jnp.asarray(1e-3, dtype),
        y0=y0.astype(dtype),
        args=jnp.asarray(n, dtype),
        saveat=diffrax.SaveAt(ts=xi.astype(dtype)),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=100_000,
    )
    return solution.ys[:, 0]


class LaneEmdenPINN(eqx.Module):
    r""":math:`\theta(\xi) = 1 + \xi^2 N_\phi(\xi/\xi_{max})` with an MLP :math:`N_\phi`.

    Attributes:
        network: Scalar-to-scalar ``eqx.nn.MLP`` (tanh).
        n: Polytropic index (static).
        extent: :math:`\xi_{max}`, the input scale (static).

    Example:
        >>> import jax
        >>> pinn = LaneEmdenPINN(jax.random.key(0), n=1.0, extent=3.14)
        >>> float(pinn(0.0))  # the centre condition holds for any weights
        1.0

    """

    network: eqx.nn.MLP
    n: float = eqx.field(static=True)
    extent: float = eqx.field(static=True)

    def __init__(
        self, key: PRNGKeyArray, *, n: float, extent: float, width: int = 32, depth: int = 3
    ):
        self.network = eqx.nn.MLP("scalar", "scalar", width, depth, jax.nn.tanh, key=key)
        self.n = float(n)
        self.extent = float(extent)

    def correction(self, xi: Float[ArrayLike, ""]) -> Float[Array, ""]:
        r""":math:`N_\phi(\xi)` for one radius."""
        return self.network(jnp.asarray(xi) / self.extent)

    def __call__(self, xi: Float[ArrayLike, ""]) -> Float[Array, ""]:
        r""":math:`\theta(\xi)` for one radius (vmap for many)."""
        xi = jnp.asarray(xi)
        return 1.0 + xi**2 * self.correction(xi)


def lane_emden_residual(pinn: LaneEmdenPINN, xi: Float[ArrayLike, ""]) -> Float[Array, ""]:
    r"""Residual :math:`6N + 6\xi N' + \xi^2 N'' + \theta^n` at one radius (0 when exact).

    Example:
        >>> import jax
        >>> pinn = LaneEmdenPINN(jax.random.key(0), n=0.0, extent=2.0)
        >>> r = lane_emden_residual(pinn, 0.5)

    """
    xi = jnp.asarray(xi)
    first = jax.grad(pinn.correction)
    value = pinn.correction(xi)
    theta = 1.0 + xi**2 * value
    if pinn.n == 0.0:
        power = 1.0
    elif float(pinn.n).is_integer():
        # theta ** n itself: clamping at 0 (as non-integer n needs) lets a network that
        # goes negative satisfy theta'' + 2 theta'/xi = 0 there, a spurious zero-residual
        # branch the ensemble fell into for n = 5 (errors ~ 30, docs/physics.md).
        power = theta ** int(pinn.n)
    else:
        power = jnp.maximum(theta, 0.0) ** pinn.n
    return 6.0 * value + 6.0 * xi * first(xi) + xi**2 * jax.grad(first)(xi) + power


def _physics_loss(pinn: LaneEmdenPINN, batch: tuple, key) -> Array:
    (xi,) = batch
    return jnp.mean(jax.vmap(lambda x: lane_emden_residual(pinn, x))(xi) ** 2)


def _default_training() -> TrainingConfig:
    return TrainingConfig(
        learning_rate=3e-3,
        batch_size=64,
        max_epochs=400,
        patience=60,
        schedule="cosine",
        cosine_final_fraction=0.01,
        clip_max_norm=None,
    )


@dataclass(frozen=True)
class LaneEmdenConfig:
    r"""Settings of a Lane–Emden PINN ensemble.

    Attributes:
        n: Polytropic index (0, 1 and 5 have closed forms to check against).
        extent: Outer radius :math:`\xi_{max}`; default the first zero for 0 and 1, 10 for 5.
        width: Hidden width of the MLP.
        depth: Hidden layers.
        num_members: Ensemble size.
        num_collocation: Initial collocation points (uniform random on the domain).
        num_rounds: RAR rounds after the first fit (0: no adaptation).
        num_added: Points added per round.
        num_candidates: Random candidates scored per round.
        num_validation: Grid points of the validation residual.
        training: :class:`~astrobayes._training.TrainingConfig` of each fit (rounds
            continue from the previous weights).

    """

    n: float = 1.0
    extent: float | None = None
    width: int = 32
    depth: int = 3
    num_members: int = 5
    num_collocation: int = 256
    num_rounds: int = 3
    num_added: int = 64
    num_candidates: int = 4096
    num_validation: int = 257
    training: TrainingConfig = field(default_factory=_default_training)

    def __post_init__(self) -> None:
        if not (isinstance(self.n, int | float) and self.n >= 0 and math.isfinite(self.n)):
            raise ValueError(f"n must be a finite number >= 0; got {self.n!r}")
        if self.extent is None and float(self.n) not in _DEFAULT_EXTENT:
            raise ValueError(f"extent must be given for n not in (0, 1, 5); got n={self.n!r}")
        if self.extent is not None and not (
            isinstance(self.extent, int | float) and self.extent > 0
        ):
            raise ValueError(f"extent must be a positive number; got {self.extent!r}")
        for name in (
            "width",
            "depth",
            "num_members",
            "num_collocation",
            "num_added",
            "num_candidates",
            "num_validation",
        ):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.num_rounds, "num_rounds", minimum=0)
        if not isinstance(self.training, TrainingConfig):
            raise TypeError(
                f"training must be a TrainingConfig; got {type(self.training).__name__}"
            )

    @property
    def domain(self) -> float:
        r""":math:`\xi_{max}`."""
        return float(self.extent) if self.extent is not None else _DEFAULT_EXTENT[float(self.n)]


class LaneEmdenEnsemble(NamedTuple):
    """A trained deep ensemble of Lane–Emden PINNs.

    Attributes:
        members: The :class:`LaneEmdenPINN` of each member.
        collocation: Final collocation points of each member.
        infos: :class:`~astrobayes._training.TrainingInfo` of each member's last round.
        final_residual: Validation mean squared residual of each member.
        wall_time_s: Total training seconds (compilation included).
        status: :class:`PINNStatus`.

    """

    members: tuple[LaneEmdenPINN, ...]
    collocation: tuple[np.ndarray, ...]
    infos: tuple[TrainingInfo, ...]
    final_residual: np.ndarray
    wall_time_s: float
    status: PINNStatus


def _train_member(key, config: LaneEmdenConfig, validation, progress_fn):
    init_key, points_key, key = jax.random.split(key, 3)
    domain = config.domain
    pinn = LaneEmdenPINN(
        init_key, n=config.n, extent=domain, width=config.width, depth=config.depth
    )
    points = jax.random.uniform(points_key, (config.num_collocation,), maxval=domain)
    residual_fn = eqx.filter_jit(lambda p, x: jax.vmap(lambda v: lane_emden_residual(p, v))(x))
    info = None
    wall = 0.0
    for round_index in range(config.num_rounds + 1):
        fit_key, candidate_key, key = jax.random.split(key, 3)
        pinn, info = fit(
            fit_key,
            pinn,
            _physics_loss,
            (points,),
            validation,
            config=config.training,
            progress_fn=progress_fn,
        )
        wall += info.wall_time_s
        if info.status is TrainingStatus.NON_FINITE or round_index == config.num_rounds:
            break
        candidates = jax.random.uniform(candidate_key, (config.num_candidates,), maxval=domain)
        worst_points = jnp.argsort(-jnp.abs(residual_fn(pinn, candidates)))[: config.num_added]
        points = jnp.concatenate([points, candidates[worst_points]])
    return pinn, np.asarray(points), info, wall


def train_lane_emden_ensemble(
    key: PRNGKeyArray,
    config: LaneEmdenConfig,
    *,
    progress_fn: ProgressFn | None = None,
    throw: bool = False,
) -> LaneEmdenEnsemble:
    """Train a deep ensemble of Lane–Emden PINNs with residual-based adaptive collocation.

    Args:
        key: JAX PRNG key; member ``i`` uses ``fold_in(key, i)``.
        config: :class:`LaneEmdenConfig`.
        progress_fn: ``progress_fn("training", epoch, max_epochs)`` from each fit.
        throw: Raise :class:`~astrobayes.UnreliableResultError` on a failure status.

    Returns:
        :class:`LaneEmdenEnsemble`.

    Raises:
        TypeError: If ``config`` is not a :class:`LaneEmdenConfig`.

    Example:
        >>> import jax
        >>> from astrobayes._training import TrainingConfig
        >>> config = LaneEmdenConfig(n=0.0, num_members=2, num_rounds=0, num_collocation=32,
        ...     width=8, depth=1, training=TrainingConfig(batch_size=32, max_epochs=3))
        >>> out = train_lane_emden_ensemble(jax.random.key(0), config)
        >>> len(out.members), out.status.name
        (2, 'MAX_EPOCHS')

    """
    check_key(key)
    if not isinstance(config, LaneEmdenConfig):
        raise TypeError(f"config must be a LaneEmdenConfig; got {type(config).__name__}")
    validation = (jnp.linspace(0.0, config.domain, config.num_validation),)
    members, points, infos, walls = [], [], [], []
    for index in range(config.num_members):
        pinn, colloc, info, wall = _train_member(
            jax.random.fold_in(key, index), config, validation, progress_fn
        )
        members.append(pinn)
        points.append(colloc)
        infos.append(info)
        walls.append(wall)
    residual = np.array([float(_physics_loss(member, validation, None)) for member in members])
    statuses = []
    for info in infos:
        if info.status is TrainingStatus.NON_FINITE:
            statuses.append(PINNStatus.NON_FINITE)
        elif info.status is TrainingStatus.MAX_EPOCHS:
            statuses.append(PINNStatus.MAX_EPOCHS)
        else:
            statuses.append(PINNStatus.OK)
    result = LaneEmdenEnsemble(
        members=tuple(members),
        collocation=tuple(points),
        infos=tuple(infos),
        final_residual=residual,
        wall_time_s=float(sum(walls)),
        status=worst(statuses),
    )
    return check(result, throw)


def ensemble_predict(
    ensemble: LaneEmdenEnsemble | tuple[LaneEmdenPINN, ...], xi: Float[ArrayLike, " num"]
) -> tuple[Float[Array, " num"], Float[Array, " num"]]:
    r"""Ensemble mean and standard deviation (ddof 1) of :math:`\theta` at ``xi``.

    Args:
        ensemble: A :class:`LaneEmdenEnsemble` or a tuple of members (at least two).
        xi: Radii, shape ``(num,)``.

    Returns:
        ``(mean, std)``, each ``(num,)``.

    Raises:
        ValueError: With fewer than two members.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> members = tuple(LaneEmdenPINN(jax.random.key(i), n=1.0, extent=3.0) for i in range(2))
        >>> mean, std = ensemble_predict(members, jnp.linspace(0, 3, 5))
        >>> mean.shape
        (5,)

    """
    members = ensemble.members if isinstance(ensemble, LaneEmdenEnsemble) else tuple(ensemble)
    if len(members) < 2:
        raise ValueError(f"ensemble must hold at least 2 members; got {len(members)}")
    xi = jnp.asarray(xi)
    values = jnp.stack([jax.vmap(member)(xi) for member in members])
    return values.mean(axis=0), values.std(axis=0, ddof=1)


def ensemble_coverage(
    mean: Float[ArrayLike, " num"],
    std: Float[ArrayLike, " num"],
    truth: Float[ArrayLike, " num"],
    levels: tuple[float, ...] = (0.68, 0.95),
) -> dict[float, float]:
    """Share of points whose truth lies in the Gaussian interval of each nominal level.

    Args:
        mean: Predicted means.
        std: Predicted standard deviations.
        truth: Exact values.
        levels: Nominal central probabilities.

    Returns:
        ``{level: empirical coverage}``.

    Example:
        >>> ensemble_coverage([0.0, 0.0], [1.0, 1.0], [0.5, 3.0], levels=(0.68,))
        {0.68: 0.5}

    """
    from scipy.stats import norm

    mean, std, truth = (np.asarray(a, dtype=float) for a in (mean, std, truth))
    z = np.abs(truth - mean) / np.maximum(std, np.finfo(float).tiny)
    return {level: float(np.mean(z <= norm.ppf(0.5 + level / 2))) for level in levels}
