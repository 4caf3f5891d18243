r"""Physics-informed neural networks (Lane–Emden, Friedmann) with measured uncertainty.

The Lane–Emden equation of a polytrope of index :math:`n`,

.. math::

    \frac{1}{\xi^2}\frac{d}{d\xi}\Big(\xi^2 \frac{d\theta}{d\xi}\Big) + \theta^n = 0,
    \qquad \theta(0) = 1,\; \theta'(0) = 0,

has closed forms for :math:`n = 0` (:math:`1 - \xi^2/6`), :math:`n = 1`
(:math:`\sin\xi/\xi`) and :math:`n = 5` (:math:`(1 + \xi^2/3)^{-1/2}`); other indices are
tabulated by :func:`solve_lane_emden`.

The Friedmann equation of a flat ΛCDM universe, :math:`\dot a/a = H_0\sqrt{\Omega_m a^{-3}
+ \Omega_\Lambda}`, is solved for :math:`y = a^{3/2}` (time in units of :math:`1/H_0`):
:math:`\dot y = \tfrac32\sqrt{\Omega_m + \Omega_\Lambda y^2}`, :math:`y(0) = 0`, which is
regular at the Big Bang where :math:`a \propto t^{2/3}` is not; the closed form is
:math:`a = (\Omega_m/\Omega_\Lambda)^{1/3}\sinh^{2/3}(\tfrac32\sqrt{\Omega_\Lambda}\,t)`.

Boundary conditions by construction. Lane–Emden: :math:`\theta(\xi) = 1 + \xi^2
N_\phi(\xi)` satisfies both centre conditions for any weights, and the operator becomes
regular: the residual :math:`r = 6N + 6\xi N' + \xi^2 N'' + \theta^n` has no :math:`1/\xi`.
Friedmann: :math:`y(t) = t\,N_\phi(t)` gives :math:`a(0) = 0` for any weights.

Training. The loss is the mean squared residual over collocation points (the physics
loss; no solution values are used), minimised with the shared loop
:func:`astrobayes._training.fit`. The members of an ensemble train together as one
vmapped model (``equinox.filter_vmap``): the loss is the sum of the members' losses, so
each member receives its own gradient and Adam (elementwise) updates each exactly as if it
trained alone (tested); early stopping and the learning-rate schedule are shared, and a
``clip_max_norm`` in the training settings would clip the members' joint norm (the default
PINN settings do not clip). Collocation
adaptation is residual-based adaptive refinement (RAR, Lu et al. 2021, arXiv:1907.04502):
after each round the ``num_added`` candidates with the largest :math:`|r|` among
``num_candidates`` random points join each member's set, and training continues from the
current weights.

Uncertainty. A deep ensemble (Lakshminarayanan et al. 2017, arXiv:1612.01474): members
differ in initial weights, collocation points and minibatch order; the prediction is the
ensemble mean and the spread its standard deviation. The raw spread is *not* calibrated
(docs/physics.md). Three interval rules are provided and measured there:

- Gaussian, mean ± z·std (:func:`ensemble_coverage` without ``scales``);
- Student-t prediction interval, mean ± t_{M-1}·sqrt(1 + 1/M)·std
  (:func:`student_t_scales`), which treats the truth as one more draw of the members;
- split-conformal normalised intervals (Papadopoulos et al. 2002; Lei et al. 2018,
  arXiv:1604.04173): the multiplier of std is the finite-sample quantile of
  :math:`|{\rm truth} - {\rm mean}|/{\rm std}` on *calibration problems* whose solution is
  known (:func:`conformal_scales`) and is then applied to held-out problems;
  :func:`screened_conformal_scales` first drops calibration problems whose own
  residual-based error estimate says the PINN failed (a truth-free rule), since a failed
  fit has a different error-to-spread ratio and distorts the scales.

A residual-based a-posteriori error estimate is also given
(:func:`lane_emden_error_estimate`, :func:`friedmann_error_estimate`): the PINN's own
residual drives the linearised error equation, integrated by fixed-step RK4 (for
:math:`n = 1` the Lane–Emden error equation is linear, so the estimate is exact up to
the quadrature).

References:
    Raissi, Perdikaris & Karniadakis 2019 (arXiv:1711.10561); Lagaris, Likas & Fotiadis
    1998 (arXiv:physics/9705023) for boundary conditions by construction; Lu et al. 2021
    (arXiv:1907.04502) for RAR; Karniadakis et al. 2021, Nat. Rev. Phys. 3, 422; Yang, Meng
    & Karniadakis 2021 (arXiv:2003.06097) for Bayesian PINNs; Lei et al. 2018
    (arXiv:1604.04173) and Angelopoulos & Bates 2021 (arXiv:2107.07511) for conformal
    prediction; Chandrasekhar 1939, "An Introduction to the Study of Stellar Structure"
    for the Lane–Emden solutions.
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
from astrobayes._status import Severity, Status, check
from astrobayes._training import TrainingConfig, TrainingInfo, TrainingStatus, fit
from astrobayes._types import ProgressFn
from astrobayes.validation.intervals import conformal_quantile, interval_coverage

__all__ = [
    "FriedmannConfig",
    "FriedmannPINN",
    "LaneEmdenConfig",
    "LaneEmdenEnsemble",
    "LaneEmdenPINN",
    "PINNEnsemble",
    "PINNStatus",
    "ScreenedCalibration",
    "conformal_scales",
    "ensemble_coverage",
    "ensemble_predict",
    "friedmann_age",
    "friedmann_error_estimate",
    "friedmann_exact",
    "friedmann_residual",
    "lane_emden_error_estimate",
    "lane_emden_exact",
    "lane_emden_residual",
    "screened_conformal_scales",
    "solve_friedmann",
    "solve_lane_emden",
    "student_t_scales",
    "train_friedmann_ensemble",
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


_COUNTS = (
    "width",
    "depth",
    "num_members",
    "num_collocation",
    "num_added",
    "num_candidates",
    "num_validation",
)


def _check_counts(config) -> None:
    for name in _COUNTS:
        check_positive_int(getattr(config, name), name)
    check_positive_int(config.num_rounds, "num_rounds", minimum=0)
    if not isinstance(config.training, TrainingConfig):
        raise TypeError(f"training must be a TrainingConfig; got {type(config.training).__name__}")


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
        _check_counts(self)

    @property
    def domain(self) -> float:
        r""":math:`\xi_{max}`."""
        return float(self.extent) if self.extent is not None else _DEFAULT_EXTENT[float(self.n)]


class PINNEnsemble(NamedTuple):
    """A trained deep ensemble of PINNs (Lane–Emden or Friedmann).

    Attributes:
        members: The trained PINN of each member (:class:`LaneEmdenPINN` or
            :class:`FriedmannPINN`).
        collocation: Final collocation points of each member.
        infos: :class:`~astrobayes._training.TrainingInfo` of each fit (one per RAR round;
            the members train together, vmapped, so one fit covers all of them).
        final_residual: Validation mean squared residual of each member.
        wall_time_s: Total training seconds (compilation included).
        status: :class:`PINNStatus`.

    """

    members: tuple
    collocation: tuple[np.ndarray, ...]
    infos: tuple[TrainingInfo, ...]
    final_residual: np.ndarray
    wall_time_s: float
    status: PINNStatus


#: The Lane–Emden ensemble (the name of the first release; same type as PINNEnsemble).
LaneEmdenEnsemble = PINNEnsemble


def _unstack(stacked, num: int) -> tuple:
    params, static = eqx.partition(stacked, eqx.is_array)
    return tuple(
        eqx.combine(jax.tree_util.tree_map(lambda a, i=i: a[i], params), static) for i in range(num)
    )


def _train_ensemble(key, config, make_member, residual_fn, progress_fn) -> PINNEnsemble:
    """Vmapped ensemble training with RAR; member ``i`` draws from ``fold_in(key, i)``."""
    num, domain = config.num_members, config.domain
    streams = [jax.random.split(jax.random.fold_in(key, i), 3) for i in range(num)]
    init_keys = jnp.stack([s[0] for s in streams])
    stacked = eqx.filter_vmap(make_member)(init_keys)
    points = jnp.stack(
        [jax.random.uniform(s[1], (config.num_collocation,), maxval=domain) for s in streams],
        axis=1,
    )  # (points, members): the shared loop batches the leading axis
    key = jax.random.fold_in(key, num)

    def member_residuals(member, xi):
        return jax.vmap(lambda v: residual_fn(member, v))(xi)

    vmapped = eqx.filter_vmap(member_residuals, in_axes=(eqx.if_array(0), 1), out_axes=1)

    def loss(model, batch, _key):
        (xi,) = batch
        return jnp.sum(jnp.mean(vmapped(model, xi) ** 2, axis=0))

    grid = jnp.linspace(0.0, domain, config.num_validation)
    validation = (jnp.tile(grid[:, None], (1, num)),)
    scorer = eqx.filter_jit(vmapped)
    infos, wall = [], 0.0
    for round_index in range(config.num_rounds + 1):
        fit_key, candidate_key, key = jax.random.split(key, 3)
        stacked, info = fit(
            fit_key,
            stacked,
            loss,
            (points,),
            validation,
            config=config.training,
            progress_fn=progress_fn,
        )
        infos.append(info)
        wall += info.wall_time_s
        if info.status is TrainingStatus.NON_FINITE or round_index == config.num_rounds:
            break
        candidates = jax.random.uniform(candidate_key, (config.num_candidates, num), maxval=domain)
        scores = jnp.abs(scorer(stacked, candidates))
        worst_rows = jnp.argsort(-scores, axis=0)[: config.num_added]
        points = jnp.concatenate([points, jnp.take_along_axis(candidates, worst_rows, 0)])
    residual = np.asarray(jnp.mean(scorer(stacked, validation[0]) ** 2, axis=0))
    last = infos[-1].status
    if last is TrainingStatus.NON_FINITE or not np.all(np.isfinite(residual)):
        status = PINNStatus.NON_FINITE
    elif last is TrainingStatus.MAX_EPOCHS:
        status = PINNStatus.MAX_EPOCHS
    else:
        status = PINNStatus.OK
    points = np.asarray(points)
    return PINNEnsemble(
        members=_unstack(stacked, num),
        collocation=tuple(points[:, i] for i in range(num)),
        infos=tuple(infos),
        final_residual=residual,
        wall_time_s=float(wall),
        status=status,
    )


def train_lane_emden_ensemble(
    key: PRNGKeyArray,
    config: LaneEmdenConfig,
    *,
    progress_fn: ProgressFn | None = None,
    throw: bool = False,
) -> PINNEnsemble:
    """Train a deep ensemble of Lane–Emden PINNs with residual-based adaptive collocation.

    Args:
        key: JAX PRNG key; member ``i`` draws its weights and points from ``fold_in(key, i)``.
        config: :class:`LaneEmdenConfig`.
        progress_fn: ``progress_fn("training", epoch, max_epochs)`` from each fit.
        throw: Raise :class:`~astrobayes.UnreliableResultError` on a failure status.

    Returns:
        :class:`PINNEnsemble` (alias :data:`LaneEmdenEnsemble`).

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

    def make_member(k):
        return LaneEmdenPINN(
            k, n=config.n, extent=config.domain, width=config.width, depth=config.depth
        )

    result = _train_ensemble(key, config, make_member, lane_emden_residual, progress_fn)
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
    *,
    scales: dict | None = None,
) -> dict[float, float]:
    """Share of points whose truth lies in the interval ``mean ± scale·std`` of each level.

    Args:
        mean: Predicted means.
        std: Predicted standard deviations.
        truth: Exact values.
        levels: Nominal central probabilities.
        scales: ``{level: multiplier of std}`` (from :func:`student_t_scales` or
            :func:`conformal_scales`); default the Gaussian quantile of each level.

    Returns:
        ``{level: empirical coverage}``.

    Raises:
        ValueError: If ``scales`` lacks one of ``levels``.

    Example:
        >>> ensemble_coverage([0.0, 0.0], [1.0, 1.0], [0.5, 3.0], levels=(0.68,))
        {0.68: 0.5}
        >>> ensemble_coverage([0.0, 0.0], [1.0, 1.0], [0.5, 3.0], (0.68,), scales={0.68: 3.5})
        {0.68: 1.0}

    """
    from scipy.stats import norm

    if scales is not None:
        missing = [level for level in levels if level not in scales]
        if missing:
            raise ValueError(f"scales must hold every level; missing {missing} in {scales!r}")
    mean, std, truth = (np.asarray(a, dtype=float) for a in (mean, std, truth))
    out = {}
    for level in levels:
        bound = norm.ppf(0.5 + level / 2) if scales is None else scales[level]
        out[level] = interval_coverage(truth, mean - bound * std, mean + bound * std).fraction
    return out


def student_t_scales(num_members: int, levels: tuple[float, ...] = (0.68, 0.95)) -> dict:
    r"""Multipliers of the ensemble std for a Student-t prediction interval.

    With :math:`M` members, mean :math:`m` and standard deviation :math:`s` (ddof 1), a new
    draw exchangeable with the members lies in :math:`m \pm t_{M-1}\sqrt{1 + 1/M}\,s` with
    the nominal probability (Gaussian members). Treating the exact solution as such a draw
    is an assumption; docs/physics.md measures it.

    Args:
        num_members: Ensemble size :math:`M \ge 2`.
        levels: Nominal central probabilities.

    Returns:
        ``{level: multiplier}`` for :func:`ensemble_coverage` ``scales``.

    Example:
        >>> round(student_t_scales(5, (0.95,))[0.95], 3)
        3.041

    """
    from scipy.stats import t as student_t

    check_positive_int(num_members, "num_members", minimum=2)
    factor = math.sqrt(1.0 + 1.0 / num_members)
    return {
        level: float(student_t.ppf(0.5 + level / 2, num_members - 1) * factor) for level in levels
    }


def conformal_scales(
    mean: Float[ArrayLike, " num"],
    std: Float[ArrayLike, " num"],
    truth: Float[ArrayLike, " num"],
    levels: tuple[float, ...] = (0.68, 0.95),
) -> dict:
    r"""Split-conformal multipliers of the ensemble std, from calibration problems.

    The score is :math:`|{\rm truth} - {\rm mean}|/{\rm std}` at every calibration point;
    the multiplier at level :math:`\alpha` is its :math:`\lceil(N+1)\alpha\rceil`-th
    smallest value (Lei et al. 2018, arXiv:1604.04173). Coverage on a new problem is
    guaranteed only if its scores are exchangeable with the calibration ones; the points of
    one PINN solution are strongly correlated, so this must be measured on held-out problems
    (docs/physics.md), not assumed.

    Args:
        mean: Ensemble means at the calibration points (any problems, concatenated).
        std: Ensemble standard deviations there (positive).
        truth: Known solutions there.
        levels: Nominal central probabilities.

    Returns:
        ``{level: multiplier}`` for :func:`ensemble_coverage` ``scales``.

    Raises:
        ValueError: If the arrays differ in shape, or there are too few points for a level.

    Example:
        >>> scales = conformal_scales([0.0] * 9, [1.0] * 9, range(1, 10), levels=(0.5,))
        >>> scales[0.5]
        5.0

    """
    mean, std, truth = (np.ravel(np.asarray(a, dtype=float)) for a in (mean, std, truth))
    if not (mean.shape == std.shape == truth.shape):
        raise ValueError(
            f"mean, std and truth must have one shape; got {mean.shape}, {std.shape}, {truth.shape}"
        )
    scores = np.abs(truth - mean) / np.maximum(std, np.finfo(float).tiny)
    return {level: conformal_quantile(scores, level) for level in levels}


class ScreenedCalibration(NamedTuple):
    """Output of :func:`screened_conformal_scales`.

    Attributes:
        scales: ``{level: multiplier of std}`` from the kept problems.
        kept: Per calibration problem, whether it passed the screen.
        estimated_relative_error: Per problem, max|estimate| / max|mean| (truth-free).

    """

    scales: dict
    kept: tuple[bool, ...]
    estimated_relative_error: tuple[float, ...]


def screened_conformal_scales(
    problems: list[tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike]],
    levels: tuple[float, ...] = (0.68, 0.95),
    *,
    max_estimated_error: float = 1e-2,
) -> ScreenedCalibration:
    r"""Split-conformal scales from calibration problems that did not fail, by their own test.

    Each calibration problem gives ``(mean, std, truth, estimate)`` on its points, where
    ``estimate`` is the residual-based a-posteriori estimate of the ensemble mean's error
    (the member average of :func:`lane_emden_error_estimate` or
    :func:`friedmann_error_estimate`). A problem is kept when
    :math:`\max|\hat e| / \max|{\rm mean}| \le` ``max_estimated_error``; this screen uses
    no truth, so the same test can be applied to a new problem before its interval is used.
    The kept problems' points are pooled into :func:`conformal_scales`. Why: a failed fit
    (e.g. Lane–Emden n = 3 with the default settings, relative error 0.12) has a wide
    spread that is *relatively* close to its error, so it pulls the 68% multiplier down;
    docs/physics.md measures the effect on held-out problems.

    Args:
        problems: Per calibration problem ``(mean, std, truth, estimate)``, 1-D and of one
            length within a problem.
        levels: Nominal central probabilities.
        max_estimated_error: Largest estimated relative error of a kept problem.

    Returns:
        :class:`ScreenedCalibration`.

    Raises:
        ValueError: On a non-positive threshold, mismatched shapes, or no problem kept.

    Example:
        >>> import numpy as np
        >>> good = (np.ones(9), np.full(9, 1e-4), 1 + 1e-4 * np.arange(1, 10), -1e-4 * np.ones(9))
        >>> failed = (np.ones(9), np.full(9, 0.1), np.ones(9), np.full(9, 0.2))
        >>> result = screened_conformal_scales([good, failed], levels=(0.5,))
        >>> result.kept, round(result.scales[0.5], 6)
        ((True, False), 5.0)

    """
    if not (np.isfinite(max_estimated_error) and max_estimated_error > 0):
        raise ValueError(f"max_estimated_error must be positive; got {max_estimated_error}")
    kept, relative, pooled = [], [], []
    for i, problem in enumerate(problems):
        if len(problem) != 4:
            raise ValueError(
                f"problems[{i}] must be (mean, std, truth, estimate); got {len(problem)} arrays"
            )
        mean, std, truth, estimate = (np.ravel(np.asarray(a, dtype=float)) for a in problem)
        if not (mean.shape == std.shape == truth.shape == estimate.shape):
            raise ValueError(
                f"problems[{i}]: mean, std, truth and estimate must have one shape; got "
                f"{mean.shape}, {std.shape}, {truth.shape}, {estimate.shape}"
            )
        value = float(np.max(np.abs(estimate)) / max(np.max(np.abs(mean)), np.finfo(float).tiny))
        relative.append(value)
        kept.append(bool(value <= max_estimated_error))
        if kept[-1]:
            pooled.append((mean, std, truth))
    if not pooled:
        raise ValueError(
            f"no calibration problem passed the screen (estimated relative errors {relative}, "
            f"max_estimated_error {max_estimated_error})"
        )
    scales = conformal_scales(
        *(np.concatenate([p[j] for p in pooled]) for j in range(3)), levels=levels
    )
    return ScreenedCalibration(scales, tuple(kept), tuple(relative))


class FriedmannPINN(eqx.Module):
    r""":math:`y(t) = a^{3/2} = t\,N_\phi(t/t_{max})`; calling it returns :math:`a(t)`.

    Time is in units of :math:`1/H_0`, the universe flat (:math:`\Omega_\Lambda = 1 -
    \Omega_m`).

    Attributes:
        network: Scalar-to-scalar ``eqx.nn.MLP`` (tanh).
        omega_m: Matter density :math:`\Omega_m` (static).
        extent: :math:`t_{max}`, the input scale (static).

    Example:
        >>> import jax
        >>> pinn = FriedmannPINN(jax.random.key(0), omega_m=0.3, extent=1.0)
        >>> float(pinn(0.0))  # a(0) = 0 for any weights
        0.0

    """

    network: eqx.nn.MLP
    omega_m: float = eqx.field(static=True)
    extent: float = eqx.field(static=True)

    def __init__(
        self,
        key: PRNGKeyArray,
        *,
        omega_m: float,
        extent: float,
        width: int = 32,
        depth: int = 3,
    ):
        self.network = eqx.nn.MLP("scalar", "scalar", width, depth, jax.nn.tanh, key=key)
        self.omega_m = float(omega_m)
        self.extent = float(extent)

    def growth_variable(self, t: Float[ArrayLike, ""]) -> Float[Array, ""]:
        r""":math:`y(t) = a^{3/2}` for one time."""
        t = jnp.asarray(t)
        return t * self.network(t / self.extent)

    def __call__(self, t: Float[ArrayLike, ""]) -> Float[Array, ""]:
        r""":math:`a(t) = |y|^{2/3}` for one time (vmap for many)."""
        return jnp.cbrt(self.growth_variable(t) ** 2)


def _friedmann_rate(y, omega_m):
    return 1.5 * jnp.sqrt(omega_m + (1.0 - omega_m) * y**2)


def friedmann_residual(pinn: FriedmannPINN, t: Float[ArrayLike, ""]) -> Float[Array, ""]:
    r"""Residual :math:`\dot y - \tfrac32\sqrt{\Omega_m + \Omega_\Lambda y^2}` at one time.

    Example:
        >>> import jax
        >>> pinn = FriedmannPINN(jax.random.key(0), omega_m=0.3, extent=1.0)
        >>> r = friedmann_residual(pinn, 0.5)

    """
    t = jnp.asarray(t)
    y, slope = jax.value_and_grad(pinn.growth_variable)(t)
    return slope - _friedmann_rate(y, pinn.omega_m)


def friedmann_exact(omega_m: float, t: Float[ArrayLike, "*shape"]) -> Float[Array, "*shape"]:
    r"""Closed-form scale factor of flat ΛCDM, :math:`t` in units of :math:`1/H_0`.

    :math:`a(t) = (\Omega_m/\Omega_\Lambda)^{1/3}\sinh^{2/3}(\tfrac32\sqrt{\Omega_\Lambda}
    \,t)`.

    Example:
        >>> round(float(friedmann_exact(0.3, friedmann_age(0.3))), 5)  # a = 1 today
        1.0

    """
    lam = 1.0 - omega_m
    return (omega_m / lam) ** (1.0 / 3.0) * jnp.sinh(1.5 * math.sqrt(lam) * jnp.asarray(t)) ** (
        2.0 / 3.0
    )


def friedmann_age(omega_m: float) -> float:
    r"""Age of a flat ΛCDM universe in units of :math:`1/H_0` (where :math:`a = 1`).

    Example:
        >>> round(friedmann_age(0.3), 4)
        0.9641

    """
    if not (isinstance(omega_m, int | float) and 0.0 < omega_m < 1.0):
        raise ValueError(f"omega_m must be a number in (0, 1); got {omega_m!r}")
    lam = 1.0 - omega_m
    return 2.0 / (3.0 * math.sqrt(lam)) * math.asinh(math.sqrt(lam / omega_m))


def _friedmann_field(t, y, omega_m):
    return _friedmann_rate(y, omega_m)


def solve_friedmann(
    omega_m: float,
    t: Float[ArrayLike, " num"],
    *,
    rtol: float = 1e-10,
    atol: float = 1e-12,
) -> Float[Array, " num"]:
    r"""Conventional solution of the Friedmann equation: Dopri8, returned as :math:`a(t)`.

    Integrates :math:`\dot y = \tfrac32\sqrt{\Omega_m + \Omega_\Lambda y^2}` from
    :math:`y(0) = 0` and returns :math:`a = y^{2/3}`.

    Args:
        omega_m: :math:`\Omega_m` of a flat universe.
        t: Increasing times (units of :math:`1/H_0`), each :math:`\ge 0`.
        rtol: Relative tolerance.
        atol: Absolute tolerance.

    Returns:
        :math:`a(t)`.

    Example:
        >>> import jax.numpy as jnp
        >>> a = solve_friedmann(0.3, jnp.array([0.5, 0.9]), rtol=1e-7, atol=1e-9)
        >>> bool(jnp.allclose(a, friedmann_exact(0.3, jnp.array([0.5, 0.9])), rtol=1e-5))
        True

    """
    t = jnp.asarray(t)
    dtype = jnp.result_type(t.dtype, jnp.float32)
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(_friedmann_field),
        diffrax.Dopri8(),
        t0=jnp.asarray(0.0, dtype),
        t1=jnp.max(t).astype(dtype),
        dt0=jnp.asarray(1e-3, dtype),
        y0=jnp.asarray(0.0, dtype),
        args=jnp.asarray(omega_m, dtype),
        saveat=diffrax.SaveAt(ts=t.astype(dtype)),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=100_000,
    )
    return jnp.cbrt(solution.ys**2)


@dataclass(frozen=True)
class FriedmannConfig:
    r"""Settings of a Friedmann-equation PINN ensemble (flat ΛCDM, :math:`y = a^{3/2}`).

    Attributes:
        omega_m: :math:`\Omega_m` in (0, 1); :math:`\Omega_\Lambda = 1 - \Omega_m`.
        extent: :math:`t_{max}` in units of :math:`1/H_0`; default the age
            (:func:`friedmann_age`, where :math:`a = 1`).
        width, depth, num_members, num_collocation, num_rounds, num_added,
        num_candidates, num_validation, training: As in :class:`LaneEmdenConfig`.

    """

    omega_m: float = 0.3
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
        friedmann_age(self.omega_m)  # validates omega_m
        if self.extent is not None and not (
            isinstance(self.extent, int | float) and self.extent > 0
        ):
            raise ValueError(f"extent must be a positive number; got {self.extent!r}")
        _check_counts(self)

    @property
    def domain(self) -> float:
        r""":math:`t_{max}`."""
        return float(self.extent) if self.extent is not None else friedmann_age(self.omega_m)


def train_friedmann_ensemble(
    key: PRNGKeyArray,
    config: FriedmannConfig,
    *,
    progress_fn: ProgressFn | None = None,
    throw: bool = False,
) -> PINNEnsemble:
    """Train a deep ensemble of Friedmann PINNs (same loop and RAR as Lane–Emden).

    Args:
        key: JAX PRNG key; member ``i`` draws from ``fold_in(key, i)``.
        config: :class:`FriedmannConfig`.
        progress_fn: ``progress_fn("training", epoch, max_epochs)`` from each fit.
        throw: Raise :class:`~astrobayes.UnreliableResultError` on a failure status.

    Returns:
        :class:`PINNEnsemble`; members return :math:`a(t)`.

    Raises:
        TypeError: If ``config`` is not a :class:`FriedmannConfig`.

    Example:
        >>> import jax
        >>> from astrobayes._training import TrainingConfig
        >>> config = FriedmannConfig(num_members=2, num_rounds=0, num_collocation=32,
        ...     width=8, depth=1, training=TrainingConfig(batch_size=32, max_epochs=3))
        >>> out = train_friedmann_ensemble(jax.random.key(0), config)
        >>> len(out.members)
        2

    """
    check_key(key)
    if not isinstance(config, FriedmannConfig):
        raise TypeError(f"config must be a FriedmannConfig; got {type(config).__name__}")

    def make_member(k):
        return FriedmannPINN(
            k,
            omega_m=config.omega_m,
            extent=config.domain,
            width=config.width,
            depth=config.depth,
        )

    result = _train_ensemble(key, config, make_member, friedmann_residual, progress_fn)
    return check(result, throw)


def _rk4(field_fn, grid, y0):
    """Fixed-step classical RK4 of ``dy/dx = field_fn(x, y)`` on ``grid``; values there."""

    def step(y, interval):
        x, h = interval
        k1 = field_fn(x, y)
        k2 = field_fn(x + h / 2, y + h / 2 * k1)
        k3 = field_fn(x + h / 2, y + h / 2 * k2)
        k4 = field_fn(x + h, y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return y, y

    _, ys = jax.lax.scan(step, y0, (grid[:-1], jnp.diff(grid)))
    return jnp.concatenate([y0[None], ys])


def lane_emden_error_estimate(
    pinn: LaneEmdenPINN, xi: Float[ArrayLike, " num"], *, substeps: int = 4
) -> Float[Array, " num"]:
    r"""A-posteriori estimate of :math:`\hat\theta - \theta` from the PINN's own residual.

    With :math:`e = \hat\theta - \theta` and :math:`u = \xi e`, subtracting the equation
    from the residual and linearising :math:`\hat\theta^n - \theta^n \approx
    n\hat\theta^{n-1} e` gives :math:`u'' + n\hat\theta^{n-1} u = \xi r(\xi)`,
    :math:`u(0) = u'(0) = 0` (the boundary conditions are exact by construction). It is
    integrated by fixed-step RK4 on ``xi`` refined ``substeps`` times. Exact for
    :math:`n \in \{0, 1\}` up to the quadrature; first order in :math:`e` otherwise. It
    needs the operator's linearisation and an integration, so it is a defect correction,
    not a free error bar.

    Args:
        pinn: A trained :class:`LaneEmdenPINN`.
        xi: Increasing radii starting at 0.
        substeps: RK4 steps per interval of ``xi``.

    Returns:
        The estimated error at ``xi``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> pinn = LaneEmdenPINN(jax.random.key(0), n=1.0, extent=3.0, width=8, depth=1)
        >>> xi = jnp.linspace(0.0, 3.0, 31)
        >>> estimate = lane_emden_error_estimate(pinn, xi)
        >>> exact_error = jax.vmap(pinn)(xi) - lane_emden_exact(1, xi)
        >>> bool(jnp.max(jnp.abs(estimate - exact_error)) < 1e-4 * jnp.max(jnp.abs(exact_error)))
        True

    """
    xi = jnp.asarray(xi)
    fine = _refine(xi, substeps)
    n = pinn.n

    def field_fn(x, state):
        u, slope = state
        coupling = 0.0 if n == 0.0 else n * pinn(x) ** (n - 1.0)
        return jnp.stack([slope, x * lane_emden_residual(pinn, x) - coupling * u])

    u = _rk4(field_fn, fine, jnp.zeros(2, fine.dtype))[::substeps, 0]
    return jnp.where(xi > 0, u / jnp.where(xi > 0, xi, 1.0), 0.0)


def friedmann_error_estimate(
    pinn: FriedmannPINN, t: Float[ArrayLike, " num"], *, substeps: int = 4
) -> Float[Array, " num"]:
    r"""A-posteriori estimate of :math:`\hat a - a` from the PINN's own residual.

    With :math:`e = \hat y - y`: :math:`\dot e = r + f(\hat y) - f(y) \approx r +
    f'(\hat y)\,e`, :math:`e(0) = 0`, integrated by fixed-step RK4; then
    :math:`\hat a - a \approx \tfrac23 \hat a\, e/\hat y`.

    Args:
        pinn: A trained :class:`FriedmannPINN`.
        t: Increasing times starting at 0.
        substeps: RK4 steps per interval of ``t``.

    Returns:
        The estimated error of :math:`a` at ``t`` (0 at :math:`t = 0`).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> pinn = FriedmannPINN(jax.random.key(0), omega_m=0.3, extent=1.0, width=8, depth=1)
        >>> friedmann_error_estimate(pinn, jnp.linspace(0.0, 1.0, 5)).shape
        (5,)

    """
    t = jnp.asarray(t)
    fine = _refine(t, substeps)
    lam = 1.0 - pinn.omega_m

    def field_fn(x, e):
        y = pinn.growth_variable(x)
        slope = 1.5 * lam * y / jnp.sqrt(pinn.omega_m + lam * y**2)
        return friedmann_residual(pinn, x) + slope * e

    e = _rk4(field_fn, fine, jnp.zeros((), fine.dtype))[::substeps]
    y = jax.vmap(pinn.growth_variable)(t)
    a = jax.vmap(pinn)(t)
    safe = jnp.where(y != 0, y, 1.0)
    return jnp.where(y != 0, 2.0 / 3.0 * a * e / safe, 0.0)


def _refine(grid, substeps: int):
    check_positive_int(substeps, "substeps")
    fractions = jnp.arange(substeps) / substeps
    inner = (grid[:-1, None] + jnp.diff(grid)[:, None] * fractions[None, :]).ravel()
    return jnp.concatenate([inner, grid[-1:]])
