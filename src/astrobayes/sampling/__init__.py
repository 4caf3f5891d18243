"""Gradient MCMC: a pure multi-chain NUTS kernel and its checkpointed host driver.

- :func:`run_nuts` (host driver: blocks, checkpoints, progress, :class:`SamplingResult`
  with a :class:`SamplingStatus`);
- :func:`sample_nuts` (one compiled call, density parameters as an argument), built on
  :func:`nuts_init` and :func:`build_nuts_steps`;
- :func:`run_flow_mcmc` (flow-enhanced MCMC for multimodal targets: MALA plus global
  proposals from a normalizing flow trained on the fly, :class:`FlowMCMCResult`);
- :func:`run_smc` (preconditioned, adaptively tempered SMC from prior draws, pocoMC-style:
  posterior particles and ``ln z`` with its error, :class:`SMCResult`).
"""

from astrobayes.sampling.flow_mcmc import (
    FlowMCMCConfig,
    FlowMCMCResult,
    FlowMCMCStatus,
    FlowProposal,
    run_flow_mcmc,
)
from astrobayes.sampling.kernel import (
    NUTSAdaptation,
    NUTSDraws,
    NUTSState,
    NUTSStepInfo,
    PathfinderStart,
    build_nuts_steps,
    end_warmup,
    nuts_init,
    pathfinder_start,
    sample_nuts,
    warmup_schedule,
)
from astrobayes.sampling.nuts import Checkpoint, NUTSConfig, batched_logdensity, run_nuts
from astrobayes.sampling.result import SamplingResult, SamplingStatus, sampling_diagnostics
from astrobayes.sampling.smc import SMCConfig, SMCResult, SMCStatus, run_smc

__all__ = [
    "Checkpoint",
    "FlowMCMCConfig",
    "FlowMCMCResult",
    "FlowMCMCStatus",
    "FlowProposal",
    "NUTSAdaptation",
    "NUTSConfig",
    "NUTSDraws",
    "NUTSState",
    "NUTSStepInfo",
    "PathfinderStart",
    "SMCConfig",
    "SMCResult",
    "SMCStatus",
    "SamplingResult",
    "SamplingStatus",
    "batched_logdensity",
    "build_nuts_steps",
    "end_warmup",
    "nuts_init",
    "pathfinder_start",
    "run_flow_mcmc",
    "run_nuts",
    "run_smc",
    "sample_nuts",
    "sampling_diagnostics",
    "warmup_schedule",
]
