"""Executors (serial, process, Dask LocalCluster) and resumable simulation campaigns."""

from __future__ import annotations

import os
import signal
import threading

import jax
import numpy as np
import pytest

from astrobayes.io.campaign import CampaignStore
from astrobayes.sbi.executors import (
    CampaignStatus,
    DaskExecutor,
    ProcessExecutor,
    SerialExecutor,
    make_executor,
    run_campaign,
    seeds_for,
)
from campaign_simulators import noisy, slow_noisy

THETA = np.stack([np.linspace(-1.0, 1.0, 23), np.linspace(0.0, 2.0, 23)], axis=1)


def _reference():
    return run_campaign(jax.random.key(7), noisy, THETA, chunk_size=4)


def _assert_same(result, reference):
    np.testing.assert_array_equal(result.x, reference.x)
    np.testing.assert_array_equal(result.theta, reference.theta)
    np.testing.assert_array_equal(result.seeds, reference.seeds)


def test_seeds_depend_on_campaign_and_index_only():
    key = jax.random.key(3)
    full = seeds_for(key, np.arange(10))
    np.testing.assert_array_equal(full[4:], seeds_for(key, np.arange(4, 10)))
    assert len(set(full.tolist())) == 10
    assert not np.array_equal(full, seeds_for(jax.random.key(4), np.arange(10)))
    # outputs do not depend on the chunking
    other = run_campaign(jax.random.key(7), noisy, THETA, chunk_size=5)
    _assert_same(other, _reference())


def test_failures_are_rows_marked_invalid():
    theta = THETA.copy()
    theta[3, 0] = 11.0
    result = run_campaign(jax.random.key(0), noisy, theta, chunk_size=4)
    assert result.status is CampaignStatus.SOME_FAILED
    assert result.is_valid.sum() == len(theta) - 1
    assert not result.is_valid[3]
    assert "RuntimeError: outside the simulator's range" in result.errors[3]
    assert np.isnan(result.x[3]).all()


def test_interrupted_campaign_resumes_with_nothing_lost_or_duplicated(tmp_path):
    reference = _reference()
    store = CampaignStore(tmp_path / "campaign")
    calls = []

    def stop_after_two_chunks(stage, done, total):
        calls.append(done)
        if len(calls) == 3:  # initial call, then two chunks
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_campaign(
            jax.random.key(7),
            noisy,
            THETA,
            chunk_size=4,
            store=store,
            progress_fn=stop_after_two_chunks,
        )
    assert store.completed() == {0, 1}  # one chunk at a time, in order, on a serial executor
    resumed = run_campaign(jax.random.key(7), noisy, THETA, chunk_size=4, store=store)
    assert resumed.num_resumed == 2
    assert resumed.num_chunks == 6
    assert store.completed() == set(range(6))
    _assert_same(resumed, reference)
    # a finished campaign run again simulates nothing and gives the same rows
    again = run_campaign(jax.random.key(7), noisy, THETA, chunk_size=4, store=store)
    assert again.num_resumed == 6
    _assert_same(again, reference)
    # another key (or parameters) must not resume this store
    with pytest.raises(
        ValueError, match=r"holds another campaign \(differs in \['fingerprint'\]\)"
    ):
        run_campaign(jax.random.key(8), noisy, THETA, chunk_size=4, store=store)


def test_process_pool_gives_the_serial_outputs():
    with ProcessExecutor(2) as executor:
        result = run_campaign(jax.random.key(7), noisy, THETA, chunk_size=4, executor=executor)
    _assert_same(result, _reference())


def test_dask_local_cluster_survives_a_killed_worker_with_the_serial_outputs():
    pytest.importorskip("dask.distributed")
    theta = np.repeat(THETA, 2, axis=0)  # 46 simulations of 50 ms in chunks of 2
    reference = run_campaign(jax.random.key(7), noisy, theta, chunk_size=2)
    with make_executor("dask", num_workers=2) as executor:
        assert executor.num_workers == 2
        addresses = executor.client.scheduler_info()["workers"]
        assert all(a.startswith("tcp://127.0.0.1:") for a in addresses)
        pids = executor.client.run(os.getpid)
        victim = next(iter(pids.values()))
        killed = threading.Event()

        def kill_one_worker(stage, done, total):
            if done >= 6 and not killed.is_set():
                killed.set()
                os.kill(victim, signal.SIGKILL)

        result = run_campaign(
            jax.random.key(7),
            slow_noisy,
            theta,
            chunk_size=2,
            executor=executor,
            progress_fn=kill_one_worker,
        )
    assert killed.is_set()
    assert result.status is CampaignStatus.SUCCESS
    np.testing.assert_array_equal(result.x, reference.x)


def test_executor_settings_are_checked():
    with pytest.raises(ValueError, match="executor must be one of"):
        make_executor("threads")
    with pytest.raises(ValueError, match="scheduler is for executor = 'dask'"):
        make_executor("process", scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="scheduler must be an address"):
        make_executor("dask", scheduler="localhost")
    # the same check and words however the executor is made (refused before connecting)
    cluster_words = "the cluster's own workers are used"
    with pytest.raises(ValueError, match=cluster_words):
        make_executor("dask", scheduler="tcp://127.0.0.1:8786", num_workers=2)
    with pytest.raises(ValueError, match=cluster_words):
        DaskExecutor("tcp://127.0.0.1:8786", num_workers=2)
    with pytest.raises(ValueError, match="scheduler must be an address"):
        DaskExecutor("localhost")
    with pytest.raises(ValueError, match="num_workers must"):
        DaskExecutor(num_workers=0)
    with pytest.raises(ValueError, match="num_workers must"):
        ProcessExecutor(0)
    with pytest.raises(TypeError, match="executor must be an astrobayes Executor"):
        run_campaign(jax.random.key(0), noisy, THETA, executor=object())
    assert SerialExecutor().submit(divmod, 7, 2).result() == (3, 1)


def test_sbi_toml_executor_keys(tmp_path):
    from astrobayes.cli.sbi import _executor, _read_config

    base = (
        'simulator = "sim:simulate"\nmethod = "npe"\nx_obs = [0.0]\n'
        "[prior]\na = { uniform = [-1.0, 1.0] }\n"
    )
    path = tmp_path / "config.toml"
    path.write_text('executor = "serial"\n' + base)
    with pytest.raises(ValueError, match='set simulator_kind = "python"'):
        _read_config(path)
    path.write_text('executor = "serial"\nnum_workers = 3\nsimulator_kind = "python"\n' + base)
    config, settings = _read_config(path)
    assert settings == {"executor": "serial", "num_workers": 3}
    with _executor(config, settings) as executor:
        assert isinstance(executor, SerialExecutor)
