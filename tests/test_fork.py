"""Fork safety: after os.fork() (multiprocessing's fork start method, PyTorch DataLoader
workers) calls in the child return the parent's results and never hang, even though the parent
ran multi-threaded kernels before the fork. libgomp's worker threads do not survive a fork, and
its next parallel region in the child would wait for them forever; cypool runs the child's calls
on one thread (bit-identical to any thread count).

Each case runs in its own interpreter and session with a timeout, so a hang is a failed test and
leaves no process behind."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

TIMEOUT = 300

# Calls above the 256 kB parallel threshold, so that the parent really starts a thread team.
OPS = """
import numpy as np, cypool
rng = np.random.default_rng(0)
x = rng.standard_normal((8, 32, 64, 64), dtype=np.float32)
h = rng.standard_normal((16, 64, 96), dtype=np.float32)
mask = rng.random((16, 64)) < 0.7

def ops(num_threads):
    return [cypool.max_pool2d(x, 3, 2, 1, num_threads=num_threads),
            cypool.avg_pool(x, (3, 3), 1, 1, num_threads=num_threads),
            cypool.max_pool_backward(np.ones((8, 32, 32, 32), np.float32), x, (3, 3), 2, 1,
                                     num_threads=num_threads),
            cypool.global_max_pool(x, num_threads=num_threads),
            cypool.sequence_pool(h, mask, "mean", num_threads=num_threads)]

def same(a, b):
    return all(p.tobytes() == q.tobytes() for p, q in zip(a, b))

parent = ops(2)
"""


def run_isolated(code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter, in a session of its own; on timeout the whole session is
    killed (a hung forked child included) and the test fails."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"hung: no answer within {TIMEOUT} s (a forked child waiting for threads)")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_calls_after_os_fork_in_the_child():
    proc = run_isolated(OPS + """
import os
from cypool import _runtime
pid = os.fork()
if pid == 0:
    ok = _runtime.forked_child() and same(ops(None), parent) and same(ops(2), parent)
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status), "parent forked", _runtime.forked_child())
assert same(ops(2), parent)
""")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["child", "0", "parent", "forked", "False"]


def test_a_fork_pool_maps_calls():
    proc = run_isolated(OPS + """
import multiprocessing

def work(k):
    return ops(None if k % 2 else 2)

with multiprocessing.get_context("fork").Pool(2) as pool:
    results = pool.map(work, range(4))
print(sum(same(r, parent) for r in results))
""")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["4"]
