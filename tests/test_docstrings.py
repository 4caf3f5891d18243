"""Every docstring example in the package runs (doctest), so examples cannot drift.

Modules whose examples train networks or run long samplers are listed in ``_SLOW`` with
the reason, and run only with ``make test-all``.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import warnings

import pytest

import astrobayes

#: module -> why its examples are in the slow suite
_SLOW: dict[str, str] = {
    "astrobayes.comparison": "samples three models with NUTS and fits a flow to each",
    "astrobayes.sbi.embeddings": "builds and applies several CNN embeddings",
    "astrobayes.sbi.training": "trains an NPE flow",
    "astrobayes.sbi.likelihood_check": "trains an NLE flow",
    "astrobayes.sbi.posterior": "compiles preconditioned SMC's moves (~17 s at load 8)",
    "astrobayes.sampling.kernel": "compiles the multi-chain NUTS program three times",
    "astrobayes.sampling.flow_mcmc": "builds and trains a spline flow (compiles MALA and flow)",
    "astrobayes.variational.fit": "trains a variational family through the training loop",
    "astrobayes.emulators.gp": "fits a GP's hyperparameters through the training loop",
    "astrobayes.validation.c2st": "trains a classifier two-sample test",
    "astrobayes.interpret.mutual_info": "compiles the GMM-MI cross-validation and bootstrap",
    "astrobayes.interpret.symbolic": "compiles the batched expression fitter (~30 s CPU)",
    "astrobayes.interpret.vae": "trains a beta-VAE and compiles GMM-MI for the MI matrix",
    "astrobayes.sphere.textures": "compiles an L-BFGS texture synthesis (~15 s CPU)",
    "astrobayes.sphere.inference": "trains NPE on simulated sky maps (~50 s wall here)",
    "astrobayes.physics.chemistry": "compiles the Kvaerno5 solve of the stiff network (~30 s)",
    "astrobayes.physics.pinn": "trains a PINN ensemble and compiles a Dopri8 solve",
    "astrobayes.physics.surrogates": "trains a DeepONet ensemble, compiles a diffrax latent ODE",
    "astrobayes.physics.rates": "compiles the Tsit5 solve and its log density (~9 s)",
    "astrobayes.physics.augmentation": "compiles the transient simulator and the augmentation (~18 s)",
    "astrobayes.physics.growth": "compiles three diffrax growth solves",
    "astrobayes.imaging.pnp": "compiles the PnP-ULA chain program twice (~10 s each here)",
    "astrobayes.imaging.denoisers": "compiles five small denoisers and a training epoch (~15 s)",
    "astrobayes.imaging.skies": "compiles five sky generators (~10 s CPU; tested in test_skies)",
    "astrobayes.imaging.uv_coverage": "compiles padded NUFFTs and Toeplitz kernels (~6 s CPU)",
    # measured in the fast suite (2026-12-05, -n 2): over 3.5 s each; each module's own
    # test file checks the same functions
    "astrobayes.imaging.prior_evidence": "compiles CRR-prior evidence programs (~16 s)",
    "astrobayes.io.surrogates": "saves and reloads an ensemble, loads the shipped one (~7 s)",
    "astrobayes.imaging.diffusion": "compiles a score network and annealed Langevin (~7 s)",
    "astrobayes.variational.families": "compiles draws and densities of the families (~6 s)",
    "astrobayes.sphere.disco": "compiles DISCO convolutions on the sphere (~6 s)",
    "astrobayes.sphere.wavelets": "compiles directional wavelet transforms (~6 s)",
    "astrobayes.bayesnn.calibration": "compiles calibration metrics and a recalibration fit (~6 s)",
    "astrobayes.interpret.saliency": "compiles saliency gradients of a network (~5 s)",
    "astrobayes.imaging.wavelets": "runs wavelet transforms and their inverses (~4 s)",
    "astrobayes.bayesnn.methods": "trains a two-member deep ensemble (~4 s)",
    "astrobayes.cosmology.background": "evaluates distances eagerly, op by op (~4 s)",
    # measured in the fast suite (2026-12-06, -n 2, a slow hour): over 3 s each; each
    # module's own tests check the same functions (plots.interpret stays: no other test)
    "astrobayes.evidence.targets": "fits a flow and a Gaussian mixture target (~7 s)",
    "astrobayes.variational.massmap": "simulates shear and compiles the mass-map density (~5 s)",
    "astrobayes.mixtures": "compiles EM fits of Gaussian mixtures (~5 s)",
    "astrobayes.sampling.nuts": "compiles a NUTS run (~5 s)",
    "astrobayes.imaging.nested": "compiles proximal nested sampling (~4 s)",
    "astrobayes._flows": "builds and evaluates flows in a program (~4 s)",
    "astrobayes.emulators.training": "trains a small emulator (~4 s)",
    "astrobayes.plots.bao": "evaluates BAO predictions and draws the figure (~4 s)",
    "astrobayes.cosmology.likelihoods": "compiles BAO and supernova likelihoods (~4 s)",
    "astrobayes.imaging.toeplitz": "compiles Toeplitz kernels of a NUFFT (~3 s)",
    "astrobayes.emulators.network": "builds and applies emulator networks (~3 s)",
}


def _modules() -> list[str]:
    names = [astrobayes.__name__]
    for info in pkgutil.walk_packages(astrobayes.__path__, prefix="astrobayes."):
        names.append(info.name)
    return sorted(names)


def _params():
    for name in _modules():
        marks = [pytest.mark.slow] if name in _SLOW else []
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(_params()))
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write here
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    failures = []
    for test in finder.find(module, name, globs=dict(vars(module))):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            runner.run(test, out=failures.append)
    assert not failures, "".join(failures)


def test_negative_control_a_wrong_example_fails():
    parser = doctest.DocTestParser()
    test = parser.get_doctest(">>> 1 + 1\n3\n", {}, "bad", "bad.py", 0)
    out = []
    result = doctest.DocTestRunner(verbose=False).run(test, out=out.append)
    assert result.failed == 1
    assert "Expected:\n    3" in "".join(out)
