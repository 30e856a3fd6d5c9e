"""Dynamic batching: same-size images share a model run, sizes never mix, results equal `predict` alone."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import numpy as np
import pytest
from serve_support import rgb, tiny_model

from edgeseg.runtime import Segmenter
from edgeseg.serve.batching import Batcher, BatcherClosed, QueueFull


class Recording(Segmenter):
    """A Segmenter that records the image shapes of every model run."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.runs: list[list[tuple[int, ...]]] = []
        self.threads: list[int] = []

    def predict_batch(self, images, batch_size=None):
        self.runs.append([im.shape for im in images])
        self.threads.append(threading.get_ident())
        return super().predict_batch(images, batch_size)


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "tiny.onnx"
    tiny_model(path)
    return path


def test_concurrent_mixed_sizes_batch_by_size_and_match_predict_alone(model):
    seg = Recording(model, provider="cpu")
    sizes = [(31, 40), (31, 40), (17, 23), (31, 40), (17, 23), (64, 9), (31, 40)]
    images = [rgb(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
    batches: list[int] = []
    # A generous wait so that all seven arrive before the first group runs, even on a loaded machine.
    batcher = Batcher([seg], 8, max_wait_ms=1000, max_queue=16, on_batch=lambda n, s: batches.append(n))
    futures = [None] * len(images)

    def client(i: int) -> None:
        futures[i] = batcher.submit(images[i])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = [f.result(timeout=30) for f in futures]
    batcher.close()
    reference = Segmenter(model, provider="cpu")
    for img, res in zip(images, results, strict=True):
        assert res.labels.shape == img.shape[:2]
        assert np.array_equal(res.labels, reference.predict(img))
    for run in seg.runs:
        assert len(set(run)) == 1, f"one model run mixed sizes: {run}"
    assert sorted(batches) == [1, 2, 4]  # every same-size group became one run
    assert max(r.batch_size for r in results) == 4


def test_max_batch_splits_a_group_and_max_wait_bounds_the_delay(model):
    seg = Recording(model, provider="cpu")
    batcher = Batcher([seg], max_batch=3, max_wait_ms=50, max_queue=16)
    futures = [batcher.submit(rgb(12, 12, seed=i)) for i in range(7)]
    sizes = sorted(f.result(timeout=30).batch_size for f in futures)
    start = time.monotonic()
    alone = batcher.submit(rgb(5, 5)).result(timeout=30)
    waited = time.monotonic() - start
    batcher.close()
    assert max(sizes) == 3 and sum(len(run) for run in seg.runs) == 8
    assert alone.batch_size == 1 and waited < 5  # ran after max_wait_ms with nobody to join it


def test_queue_limit_refuses_without_queueing_and_cancelled_images_never_run(model):
    seg = Recording(model, provider="cpu")
    batcher = Batcher([seg], max_batch=8, max_wait_ms=60_000, max_queue=2)
    first = batcher.submit(rgb(8, 8, seed=1))
    second = batcher.submit(rgb(8, 8, seed=2))
    with pytest.raises(QueueFull, match="limit 2"):
        batcher.submit(rgb(8, 8, seed=3))
    assert batcher.depth == 2
    assert first.cancel()  # the client left while its image waited
    batcher.close()  # closing runs what is queued at once
    assert batcher.depth == 0
    assert second.result(timeout=30).batch_size == 1
    with pytest.raises(CancelledError):
        first.result()
    assert seg.runs == [[(8, 8, 3)]]
    with pytest.raises(BatcherClosed):
        batcher.submit(rgb(8, 8))


def test_several_workers_each_with_their_own_session(model):
    segs = [Recording(model, provider="cpu") for _ in range(2)]
    batcher = Batcher(segs, max_batch=1, max_wait_ms=0, max_queue=64)
    images = [rgb(20, 20 + i % 3, seed=i) for i in range(24)]
    futures = [batcher.submit(im) for im in images]
    results = [f.result(timeout=60) for f in futures]
    batcher.close()
    reference = Segmenter(model, provider="cpu")
    assert all(np.array_equal(r.labels, reference.predict(im)) for r, im in zip(results, images, strict=True))
    assert sum(len(s.runs) for s in segs) == 24


def test_a_model_failure_reaches_every_waiting_request(model):
    class Failing(Segmenter):
        def predict_batch(self, images, batch_size=None):
            raise RuntimeError("boom")

    batcher = Batcher([Failing(model, provider="cpu")], max_batch=4, max_wait_ms=100, max_queue=8)
    futures = [batcher.submit(rgb(9, 9, seed=i)) for i in range(2)]
    for f in futures:
        with pytest.raises(RuntimeError, match="boom"):
            f.result(timeout=30)
    batcher.close()


def test_tracked_arrivals_hold_a_batch_only_while_someone_is_arriving(model):
    seg = Recording(model, provider="cpu")
    batcher = Batcher([seg], 8, max_wait_ms=60_000, max_queue=8, track_arrivals=True)
    lone = batcher.submit(rgb(10, 10))
    assert lone.done() and lone.result().batch_size == 1  # nobody else on the way: ran at once
    assert seg.threads == [threading.get_ident()]  # in the calling thread, no hand-off to a worker
    with batcher.arriving():
        first = batcher.submit(rgb(10, 10, seed=1))
        time.sleep(0.3)
        assert not first.done()  # waits: the request arriving may share its run
        second = batcher.submit(rgb(10, 10, seed=2))
    assert first.result(timeout=30).batch_size == 2 and second.result(timeout=30).batch_size == 2
    assert seg.threads[-1] != threading.get_ident()  # a worker ran the batch
    batcher.close()
