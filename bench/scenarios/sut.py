"""The system under test that LoadGen drives: queries in, dynamic batches out to one worker
thread per stream, every sample answered exactly once.

LoadGen calls ``issue_query`` from its own thread and expects it to return at once (in the
Server scenario it keeps issuing on a Poisson schedule). Samples wait in one queue; each
worker takes up to ``max_batch`` of them, in the Server scenario waiting up to
``batch_timeout_s`` after the first for the batch to fill (dynamic batching), runs the batch
on its stream and completes its samples with ``QuerySamplesComplete``. A worker that fails
(out of memory, an error in the model) still completes what it took, so LoadGen finishes
instead of waiting forever, and the error is raised after the test.
"""

from __future__ import annotations

import array
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class BatchRunner(Protocol):
    def run(self, indices: list[int], first_token: Callable[[], None] | None) -> int:
        """Run the samples at ``indices`` of the sample library as one batch (synchronised
        before it returns); call ``first_token`` when the first output token of the batch
        exists (LLMs). Returns the output tokens per sample (1 where there are no tokens)."""
        ...


@dataclass
class Stats:
    """What the SUT saw in one LoadGen test."""

    queries: int = 0
    issued: dict[int, float] = field(default_factory=dict)  # sample id -> arrival time
    completions: dict[int, int] = field(default_factory=dict)  # sample id -> times answered
    latencies_s: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    compute_s: list[float] = field(default_factory=list)  # per batch: the runner's time alone
    tokens: int = 0

    def record(self) -> dict[str, Any]:
        answered = list(self.completions.values())
        return {"queries_issued": self.queries, "samples_issued": len(self.issued),
                "samples_answered": sum(answered),
                "samples_answered_once": sum(1 for c in answered if c == 1),
                "batches": len(self.batch_sizes),
                "mean_batch": (sum(self.batch_sizes) / len(self.batch_sizes)
                               if self.batch_sizes else None),
                "max_batch_formed": max(self.batch_sizes, default=None),
                "compute_s_total": sum(self.compute_s)}

    def service_samples_per_s(self) -> float | None:
        """Samples per second of one stream while it computes (queueing excluded)."""
        busy = sum(self.compute_s)
        return sum(self.batch_sizes) / busy if busy > 0 else None

    def problem(self) -> str | None:
        """Why the SUT did not answer every issued sample exactly once (None: it did)."""
        missing = [i for i in self.issued if i not in self.completions]
        twice = [i for i, c in self.completions.items() if c > 1]
        unknown = [i for i in self.completions if i not in self.issued]
        if missing or twice or unknown:
            return (f"{len(missing)} sample(s) never answered, {len(twice)} answered more "
                    f"than once, {len(unknown)} answered without being issued")
        return None


class Sut:
    def __init__(self, lg: Any, runners: list[BatchRunner], max_batch: int,
                 batch_timeout_s: float | None, token_latencies: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lg = lg
        self.runners = runners
        self.max_batch = max_batch
        self.timeout_s = batch_timeout_s
        self.token_latencies = token_latencies
        self.clock = clock
        self.cv = threading.Condition()
        self.pending: deque[tuple[int, int, float]] = deque()
        self.stats = Stats()
        self.error: BaseException | None = None
        self.stopping = False
        self.threads: list[threading.Thread] = []
        # LoadGen copies a response's bytes only when it logs accuracy; token responses
        # still point at a real buffer.
        self._buffer = array.array("i", [0] * 4)

    # -- LoadGen's callbacks -------------------------------------------------------------
    def issue_query(self, samples: list[Any]) -> None:
        now = self.clock()
        with self.cv:
            self.stats.queries += 1
            for s in samples:
                self.stats.issued[s.id] = now
                self.pending.append((s.id, s.index, now))
            self.cv.notify_all()

    def flush_queries(self) -> None:
        """Nothing is held back: every batch runs as soon as it is formed."""

    # -- workers -------------------------------------------------------------------------
    def start(self) -> None:
        self.stopping = False
        self.threads = [threading.Thread(target=self._work, args=(r,), daemon=True,
                                         name=f"sut-stream-{i}")
                        for i, r in enumerate(self.runners)]
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        with self.cv:
            self.stopping = True
            self.cv.notify_all()
        for t in self.threads:
            t.join()
        self.threads = []

    def new_test(self) -> Stats:
        """Fresh statistics for the next LoadGen test (the Server search runs several)."""
        with self.cv:
            self.stats = Stats()
            return self.stats

    def _take(self) -> list[tuple[int, int, float]] | None:
        with self.cv:
            while not self.pending:
                if self.stopping:
                    return None
                self.cv.wait()
            batch = [self.pending.popleft()]
            deadline = self.clock() + (self.timeout_s or 0.0)
            while len(batch) < self.max_batch:
                if self.pending:
                    batch.append(self.pending.popleft())
                    continue
                left = deadline - self.clock()
                if not self.timeout_s or left <= 0 or self.stopping:
                    break
                self.cv.wait(left)
            return batch

    def _work(self, runner: BatchRunner) -> None:
        lg = self.lg
        addr = self._buffer.buffer_info()[0]
        while True:
            batch = self._take()
            if batch is None:
                return
            tokens = 1
            started = self.clock()
            if self.error is None:
                ids = [b[0] for b in batch]

                def first_token(ids: list[int] = ids) -> None:
                    if self.token_latencies:
                        lg.FirstTokenComplete([lg.QuerySampleResponse(i, addr, 4, 1)
                                               for i in ids])
                try:
                    tokens = runner.run([b[1] for b in batch], first_token)
                except BaseException as exc:  # completed below all the same: no hang
                    self.error = exc
            done = self.clock()
            if self.token_latencies:
                responses = [lg.QuerySampleResponse(b[0], addr, 4, max(tokens, 1))
                             for b in batch]
            else:
                responses = [lg.QuerySampleResponse(b[0], 0, 0) for b in batch]
            with self.cv:
                stats = self.stats
                for sample_id, _index, arrival in batch:
                    stats.completions[sample_id] = stats.completions.get(sample_id, 0) + 1
                    stats.latencies_s.append(done - arrival)
                stats.batch_sizes.append(len(batch))
                stats.compute_s.append(done - started)
                stats.tokens += tokens * len(batch)
            lg.QuerySamplesComplete(responses)
