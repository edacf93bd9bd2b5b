"""The one generation routine every LLM workload uses, and the metrics of its timings.

The published evaluation required identical generation parameters for every model and device:
greedy decoding, one beam, and a fixed output length (``min_new_tokens == max_new_tokens``, so
the end-of-sequence token is masked out and never ends a sequence early). ``GenerationSettings``
refuses anything else, as optimum-benchmark does, because a measurement whose output length
depends on the model's random weights compares nothing.

Time to first token is *measured*: a streamer receives every new token from ``generate`` as
it is produced; it synchronises the device and takes a timestamp. TTFT is the first token's
timestamp minus the start of the call; the time per output token is the gap between
consecutive tokens.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.documents import Metric, Metrics, Params
from bench.errors import UserError
from bench.stats import LATENCY_PERCENTILES, percentile

Clock = Callable[[], float]


@dataclass(frozen=True)
class GenerationSettings:
    """Generation parameters of the protocol; any other value is refused (UserError)."""

    max_new_tokens: int
    min_new_tokens: int
    do_sample: bool = False
    num_beams: int = 1
    ignore_eos: bool = True

    def __post_init__(self) -> None:
        fix = ("The LLM protocol is greedy decoding with one beam and a fixed output length "
               "(docs/llm.md): remove the setting.")
        if self.max_new_tokens < 1:
            raise UserError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}.",
                            "Give output token counts of 1 or more in io_tokens.")
        if self.min_new_tokens != self.max_new_tokens:
            raise UserError(
                f"min_new_tokens ({self.min_new_tokens}) differs from max_new_tokens "
                f"({self.max_new_tokens}): the output length would depend on when the model "
                "emits its end-of-sequence token, so tokens/s would not be comparable.", fix)
        if self.do_sample:
            raise UserError("do_sample=true makes the generated tokens and their cost random.",
                            fix)
        if self.num_beams != 1:
            raise UserError(f"num_beams={self.num_beams}: beam search multiplies the work per "
                            "output token and is not the protocol's decoding.", fix)
        if not self.ignore_eos:
            raise UserError("ignore_eos=false lets a sequence stop at its end-of-sequence "
                            "token, so the output length is not fixed.", fix)

    def generation_config(self, eos_token_id: Any, pad_token_id: Any) -> Any:
        """A fresh ``GenerationConfig``: nothing is taken from the weights' own defaults."""
        from transformers import GenerationConfig

        return GenerationConfig(
            do_sample=False, num_beams=1, max_new_tokens=self.max_new_tokens,
            min_new_tokens=self.min_new_tokens, eos_token_id=eos_token_id,
            pad_token_id=pad_token_id, use_cache=True, temperature=None, top_p=None,
            top_k=None)

    def as_dict(self) -> dict[str, Any]:
        return {"max_new_tokens": self.max_new_tokens, "min_new_tokens": self.min_new_tokens,
                "do_sample": self.do_sample, "num_beams": self.num_beams,
                "ignore_eos": self.ignore_eos, "use_cache": True}


@dataclass
class GenerationTiming:
    """Timestamps of one ``generate`` call (monotonic seconds) and what it generated."""

    start_s: float
    token_s: list[float] = field(default_factory=list)  # after each new token
    end_s: float = 0.0
    # Positions the call added to every sequence, from its output's shape (None: not
    # measured): the result's evidence that each generation was as long as requested.
    new_tokens: int | None = None

    @property
    def ttft_s(self) -> float:
        return self.token_s[0] - self.start_s

    @property
    def intervals_s(self) -> list[float]:
        return [b - a for a, b in zip(self.token_s, self.token_s[1:], strict=False)]

    @property
    def latency_s(self) -> float:
        return self.end_s - self.start_s


class TokenClock:
    """A transformers streamer that timestamps every new token after a device sync.

    ``generate`` calls ``put`` once with the prompt, then once per new token (for the whole
    batch); ``end`` when it finishes.
    """

    def __init__(self, synchronize: Callable[[], None], clock: Clock = time.monotonic) -> None:
        self.synchronize = synchronize
        self.clock = clock
        self.prompt_seen = False
        self.token_s: list[float] = []

    def put(self, value: Any) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.synchronize()
        self.token_s.append(self.clock())

    def end(self) -> None:
        pass


def generate_timed(model: Any, input_ids: Any, attention_mask: Any, generation_config: Any,
                   synchronize: Callable[[], None],
                   clock: Clock = time.monotonic) -> tuple[Any, GenerationTiming]:
    """One ``generate`` call with per-token timestamps; checks the output length is fixed."""
    import torch

    streamer = TokenClock(synchronize, clock)
    synchronize()
    start = clock()
    with torch.inference_mode():
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask,
                             generation_config=generation_config, streamer=streamer)
    synchronize()
    timing = GenerationTiming(start_s=start, token_s=streamer.token_s, end_s=clock(),
                              new_tokens=int(out.shape[1] - input_ids.shape[1]))
    expected = input_ids.shape[1] + generation_config.max_new_tokens
    if out.shape[1] != expected or len(timing.token_s) != generation_config.max_new_tokens:
        raise RuntimeError(
            f"generate returned {out.shape[1]} positions and {len(timing.token_s)} tokens, "
            f"expected {expected} and {generation_config.max_new_tokens}: the output length "
            "was not fixed")
    return out, timing


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def generation_metrics(timings: Sequence[GenerationTiming], batch: int, input_tokens: int,
                       output_tokens: int, duration_s: float) -> Metrics:
    """Per-point metrics from the timed generations of one grid point.

    TTFT: mean and nearest-rank percentiles over the generations. Time per output token: over
    every gap between consecutive tokens of every generation. Output tokens/s: all generated
    tokens (batch x output tokens per generation) over the timed window; prompt tokens/s: the
    prompt tokens of one generation over the mean TTFT (the prefill rate). Output tokens
    generated: the fewest and most new tokens per sequence among the generations, next to
    the ``requested`` count, so an auditor can check every timed generation was full length.
    """
    if not timings:
        raise ValueError("no timed generations")
    ttfts = [t.ttft_s for t in timings]
    gaps = [g for t in timings for g in t.intervals_s]
    ttft_mean = _mean(ttfts)
    out: Metrics = {
        "ttft_s": {"value": ttft_mean, "unit": "s", "n": len(ttfts)},
    }
    for p in LATENCY_PERCENTILES:
        out[f"ttft_p{p}_s"] = {"value": percentile(ttfts, p), "unit": "s"}
    no_gap = "one output token per generation: no time between tokens"
    out["tpot_mean_s"] = ({"value": _mean(gaps), "unit": "s", "n": len(gaps)} if gaps
                          else {"value": None, "unit": "s", "reason": no_gap})
    for p in LATENCY_PERCENTILES:
        out[f"tpot_p{p}_s"] = ({"value": percentile(gaps, p), "unit": "s"} if gaps
                               else {"value": None, "unit": "s", "reason": no_gap})
    tokens = batch * output_tokens * len(timings)
    out["output_tokens_per_s"] = {"value": tokens / duration_s, "unit": "tokens/s"}
    out["throughput_items_per_s"] = {"value": tokens / duration_s, "unit": "tokens/s"}
    out["prompt_tokens_per_s"] = {"value": batch * input_tokens / ttft_mean,
                                  "unit": "tokens/s"}
    out["generation_latency_mean_s"] = {"value": _mean([t.latency_s for t in timings]),
                                        "unit": "s"}
    out["output_tokens_generated"] = output_length_metric(timings, output_tokens)
    return out


def output_length_metric(timings: Sequence[GenerationTiming],
                         requested: int) -> Metric:
    """``output_tokens_generated``: the minimum over the generations of the new tokens per
    sequence (the figure a short generation would lower), the maximum, and the request."""
    counts = [t.new_tokens for t in timings if t.new_tokens is not None]
    if len(counts) < len(timings):
        return {"value": None, "unit": "tokens", "requested": requested,
                "reason": f"{len(timings) - len(counts)} of {len(timings)} generation(s) did "
                          "not record their output length"}
    return {"value": min(counts), "unit": "tokens", "requested": requested,
            "max": max(counts)}


# TTFT tiers of the chip evaluation template (docs/llm.md), in seconds: (low, high].
TTFT_TIERS: tuple[tuple[str, float, float], ...] = (
    ("tier_max_tokens_per_s_0_500ms", 0.0, 0.5),
    ("tier_max_tokens_per_s_500_1000ms", 0.5, 1.0),
    ("tier_max_tokens_per_s_1000_3000ms", 1.0, 3.0),
    ("tier_max_tokens_per_s_3000ms_inf", 3.0, math.inf),
)


def tier_of(ttft_s: float) -> str:
    """The metric name of the tier holding ``ttft_s`` (intervals are (low, high])."""
    for name, low, high in TTFT_TIERS:
        if low < ttft_s <= high:
            return name
    raise ValueError(f"TTFT must be positive, got {ttft_s}")


def tier_metrics(points: Sequence[tuple[float, float, Params]]
                 ) -> Metrics:
    """Maximum output tokens/s among the points whose TTFT falls in each tier.

    ``points`` are (ttft_s, output_tokens_per_s, point params) of the points that ran.
    A tier with no point is null with the reason, never zero.
    """
    best: dict[str, tuple[float, Params]] = {}
    for ttft, tps, params in points:
        name = tier_of(ttft)
        if name not in best or tps > best[name][0]:
            best[name] = (tps, params)
    out = {}
    for name, low, high in TTFT_TIERS:
        bounds = f"({low * 1000:g}, {high * 1000:g}] ms"
        if name in best:
            out[name] = {"value": best[name][0], "unit": "tokens/s", "point": best[name][1]}
        else:
            out[name] = {"value": None, "unit": "tokens/s",
                         "reason": f"no grid point ran with a TTFT in {bounds}"}
    return out
