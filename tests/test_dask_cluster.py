"""cypool.dask on a dask.distributed LocalCluster of 2 worker processes: the tasks pickle,
run in other processes and give the in-memory results."""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import cypool  # noqa: E402
import cypool.dask as cd  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, memory_limit="1GiB") as cluster:
        with distributed.Client(cluster) as c:
            yield c


def test_local_cluster_results_equal_in_memory(client):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 61, 47)).astype(np.float32)
    dx = da.from_array(x, chunks=(1, 3, 20, 16))
    h = rng.standard_normal((6, 9, 8))
    mask = rng.random((6, 9)) < 0.6

    lazy = {
        "max": cd.max_pool(dx, (3, 3), 2, 1, return_indices=True),
        "avg": cd.avg_pool2d(dx, 3, 2, 1, ceil_mode=True, count_include_pad=False),
        "lp": cd.lp_pool(dx, 2, (2, 3)),
        "global_avg": cd.global_avg_pool(dx),
        "global_max": cd.global_max_pool(dx, axes=(1, 2), return_indices=True),
        "sequence": cd.sequence_pool(da.from_array(h, chunks=(2, 9, 8)), mask, "weighted_mean"),
    }
    futures = client.compute(lazy)
    distributed.wait(futures, timeout=600)  # a hang guard, not a speed bound
    got = client.gather(futures)

    want = {
        "max": cypool.max_pool(x, (3, 3), 2, 1, return_indices=True),
        "avg": cypool.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
        "lp": cypool.lp_pool(x, 2, (2, 3)),
        "global_avg": cypool.global_avg_pool(x),
        "global_max": cypool.global_max_pool(x, axes=(1, 2), return_indices=True),
        "sequence": cypool.sequence_pool(h, mask, "weighted_mean"),
    }
    for name in ("max", "global_max"):
        for g, w in zip(got[name], want[name]):
            np.testing.assert_array_equal(g, w)
    for name in ("avg", "lp", "sequence"):
        np.testing.assert_array_equal(got[name], want[name])
    np.testing.assert_allclose(got["global_avg"], want["global_avg"], rtol=1e-6)
