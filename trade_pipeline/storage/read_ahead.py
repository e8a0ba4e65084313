"""Run an iterator in a thread of its own, a few items ahead of its consumer.

Decompression releases the GIL, and so do the compiled parser and book kernels: reading a
capture in a second thread overlaps gunzip with parsing on a second core. The consumer gets
the items in order; an exception in the producer is raised in the consumer; closing the
consumer early stops the producer.
"""

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator

_DONE = object()


class ReadAhead:
    """`for item in ReadAhead(make_iterable, depth)`; afterwards `cpu_s` is the producer
    thread's CPU time and `wait_s` how long the consumer waited for items."""

    def __init__(self, make: Callable[[], Iterable], depth: int = 8) -> None:
        self._make = make
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self.cpu_s = 0.0
        self.wait_s = 0.0

    def _produce(self) -> None:
        start = time.thread_time()
        try:
            for item in self._make():
                if not self._put((item, None)):
                    return
            self._put((_DONE, None))
        except BaseException as exc:  # handed to the consumer, raised there
            self._put((_DONE, exc))
        finally:
            self.cpu_s = time.thread_time() - start

    def _put(self, entry) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator:
        thread = threading.Thread(target=self._produce, name="read-ahead", daemon=True)
        thread.start()
        try:
            while True:
                t0 = time.perf_counter()
                item, exc = self._queue.get()
                self.wait_s += time.perf_counter() - t0
                if item is _DONE:
                    if exc is not None:
                        raise exc
                    return
                yield item
        finally:
            self._stop.set()
            thread.join()
