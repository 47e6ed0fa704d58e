"""A dask array passed to an in-memory function of cypool gives the lazy result of its twin
in cypool.dask, never computed whole behind the user's back; where there is no twin, or with
out=, a TypeError names cypool.dask."""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import cypool  # noqa: E402
import cypool.dask as cd  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
H = RNG.standard_normal((4, 6, 5)).astype(np.float32)
MASK = RNG.random((4, 6)) < 0.7


class NeverComputed:
    """A dask scheduler that fails the test if any graph is computed."""

    def __call__(self, *args, **kwargs):
        raise AssertionError("a dask array was computed")


@pytest.fixture
def never_compute():
    with dask.config.set(scheduler=NeverComputed()):
        yield


LAZY = {
    "max_pool": (lambda x: cypool.max_pool(x, (2, 2)), lambda x: cd.max_pool(x, (2, 2))),
    "max_pool[indices]": (lambda x: cypool.max_pool(x, (3, 3), 2, 1, return_indices=True),
                          lambda x: cd.max_pool(x, (3, 3), 2, 1, return_indices=True)),
    "avg_pool": (lambda x: cypool.avg_pool(x, (3, 3), 1, 1), lambda x: cd.avg_pool(x, (3, 3), 1, 1)),
    "lp_pool": (lambda x: cypool.lp_pool(x, 2, (2, 2)), lambda x: cd.lp_pool(x, 2, (2, 2))),
    "max_pool2d": (lambda x: cypool.max_pool2d(x, 2), lambda x: cd.max_pool2d(x, 2)),
    "avg_pool1d": (lambda x: cypool.avg_pool1d(x, 3), lambda x: cd.avg_pool1d(x, 3)),
    "global_avg_pool": (cypool.global_avg_pool, cd.global_avg_pool),
    "global_max_pool": (lambda x: cypool.global_max_pool(x, return_indices=True),
                        lambda x: cd.global_max_pool(x, return_indices=True)),
}


@pytest.mark.parametrize("name", list(LAZY))
def test_a_dask_array_gives_the_lazy_result_of_the_twin(name, never_compute):
    ours, twin = LAZY[name]
    x = da.from_array(X, chunks=(1, 3, 8, 4))
    got, want = ours(x), twin(x)
    got_t, want_t = (got, want) if isinstance(got, tuple) else ((got,), (want,))
    for g, w in zip(got_t, want_t):
        assert isinstance(g, da.Array), f"{name} returned {type(g).__name__}, not a dask array"
        assert g.shape == w.shape and g.dtype == w.dtype and g.chunks == w.chunks
    with dask.config.set(scheduler="synchronous"):
        for g, w in zip(got_t, want_t):
            np.testing.assert_array_equal(g.compute(), w.compute())


def test_sequence_pool_with_a_dask_mask_is_lazy(never_compute):
    h = da.from_array(H, chunks=(2, 6, 5))
    got = cypool.sequence_pool(h, da.from_array(MASK, chunks=(2, 6)), "mean")
    assert isinstance(got, da.Array)
    with dask.config.set(scheduler="synchronous"):
        np.testing.assert_allclose(got.compute(), cypool.sequence_pool(H, MASK, "mean"),
                                   rtol=1e-6)


NO_TWIN = {
    "adaptive_avg_pool": lambda x: cypool.adaptive_avg_pool(x, (2, 2)),
    "max_pool_backward": lambda x: cypool.max_pool_backward(np.ones((2, 3, 4, 4), np.float32),
                                                            x, (2, 2)),
    "avg_pool_backward[grad_output]": lambda x: cypool.avg_pool_backward(
        x[:, :, :4, :4], X.shape, (2, 2)),
    "global_max_pool_backward[indices]": lambda x: cypool.global_max_pool_backward(
        np.ones((2, 3), np.float32), X, indices=x[:, :, 0, 0].astype(np.int64)),
}


@pytest.mark.parametrize("name", list(NO_TWIN))
def test_a_dask_array_without_a_twin_is_a_typeerror_naming_cypool_dask(name, never_compute):
    x = da.from_array(X, chunks=(1, 3, 8, 8))
    with pytest.raises(TypeError, match=r"cypool\.dask"):
        NO_TWIN[name](x)


def test_a_dask_array_with_out_is_a_typeerror_naming_cypool_dask(never_compute):
    x = da.from_array(X, chunks=(1, 3, 8, 8))
    out = np.zeros((2, 3, 4, 4), np.float32)
    with pytest.raises(TypeError, match=r"cypool\.dask\.max_pool.*out"):
        cypool.max_pool(x, (2, 2), out=out)
    assert not out.any()
