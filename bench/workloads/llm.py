"""LLM text generation (docs/llm.md): qwen2-0.5b, llama3-8b, glm4-9b.

Models are built from their published configurations (``bench.llm.architectures``) with
random weights, or loaded from ``weights`` (a local directory; never a download). Every model
runs the same generation routine with the same parameters (``bench.llm.generation``) over the
grid concurrency (batch) x (input, output) tokens. Per point: TTFT, time per output token,
output and prompt tokens/s, peak memory, the memory estimate, and (from the runner) the
point's own power and energy. Per result: model load time and the best output throughput
within each TTFT tier. The result-level throughput and latency are those of the reference
point (``reference_point``), see ``bench.llm.grid``.

With the run rule ``input_variants`` K > 1 each point's generations cycle through K prompt
batches: the point's prompt ids and K - 1 permutations of them (bench.data.variants). The
output length is fixed, so a generation costs the same whatever its tokens.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any, ClassVar

from bench.documents import Info, Metrics, Params, RepeatResult
from bench.errors import Unsupported, UserError
from bench.flops import WorkProbe
from bench.function.model import CHECK_BATCH, ModelProbe, greedy_decode
from bench.llm import prompts
from bench.llm.architectures import (
    ARCHITECTURES,
    SCALES,
    Architecture,
    DecoderShape,
    dtype_kwargs,
)
from bench.llm.generation import (
    GenerationSettings,
    generate_timed,
    generation_metrics,
    tier_metrics,
)
from bench.llm.grid import PointResult, pick_reference, progress_note, run_point, skipped_point
from bench.llm.memory import (
    choose_precision,
    estimate_generation_memory,
    fits,
)
from bench.model_facts import decode_bytes_per_item
from bench.workload import Workload, count_parameters, register

# docs/llm.md: concurrency 1..64 x (input, output) tokens of the chip evaluation template.
FULL_BATCH_SIZES = [1, 8, 16, 32, 64]
FULL_IO_TOKENS = [[256, 128], [256, 512], [256, 1024], [512, 128], [512, 512], [512, 1024],
                  [1024, 1024]]
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
CHECK_PROMPT_TOKENS = 32  # prompt tokens the model-function check feeds (at most)

_COMMON = {"prompts": "synthetic", "dataset": None, "tokenizer": None, "weights": None,
           "memory_budget_bytes": None, "do_sample": False, "num_beams": 1, "ignore_eos": True}
LLM_CONFIGS = {
    "small": {"architecture": "reduced", "batch_sizes": [1, 4],
              "io_tokens": [[16, 8], [32, 16]],
              "reference_point": {"batch": 1, "input_tokens": 16, "output_tokens": 8},
              **_COMMON},
    "full": {"architecture": "published", "batch_sizes": FULL_BATCH_SIZES,
             "io_tokens": FULL_IO_TOKENS,
             "reference_point": {"batch": 1, "input_tokens": 256, "output_tokens": 128},
             **_COMMON},
}


def grid_points(params: Params) -> list[dict[str, int]]:
    """The grid in the template's order: each (input, output) pair over the batch sizes."""
    return [{"batch": b, "input_tokens": i, "output_tokens": o}
            for i, o in params["io_tokens"] for b in params["batch_sizes"]]


def _positive_ints(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value))


def validate_llm_params(params: Params) -> None:
    """Refuse parameters that make the measurement meaningless, before anything runs."""
    if params["architecture"] not in SCALES:
        raise UserError(f"architecture is {params['architecture']!r}.",
                        f"Use one of: {', '.join(SCALES)}.")
    if not _positive_ints(params["batch_sizes"]):
        raise UserError(f"batch_sizes must be a list of positive integers, got "
                        f"{params['batch_sizes']!r}.", "Write e.g. batch_sizes: [1, 8, 16].")
    io = params["io_tokens"]
    if not (isinstance(io, list) and io and all(_positive_ints(p) and len(p) == 2 for p in io)):
        raise UserError(f"io_tokens must be a list of [input, output] token counts, got {io!r}.",
                        "Write e.g. io_tokens: [[256, 128], [512, 512]].")
    for _, out in io:
        GenerationSettings(max_new_tokens=out, min_new_tokens=out,
                           do_sample=params["do_sample"], num_beams=params["num_beams"],
                           ignore_eos=params["ignore_eos"])
    ref = params["reference_point"]
    if ref not in grid_points(params):
        raise UserError(f"reference_point {ref!r} is not a point of the grid.",
                        "Choose one of the grid's {batch, input_tokens, output_tokens} points.")
    if params["prompts"] not in prompts.PROMPTS:
        raise UserError(f"prompts is {params['prompts']!r}.",
                        f"Use one of: {', '.join(prompts.PROMPTS)}.")
    if params["prompts"] == "cmrc2018":
        if not params["dataset"]:
            raise UserError("prompts: cmrc2018 needs `dataset`, the local CMRC2018 JSON file.",
                            "Set e.g. --set ENTRY.dataset=/data/cmrc2018_dev.json.")
        if not (params["tokenizer"] or params["weights"]):
            raise UserError("prompts: cmrc2018 needs a tokenizer to turn text into tokens.",
                            "Set `tokenizer` (tokenizer.json or a model directory) or "
                            "`weights` (its tokenizer is used).")
    budget = params["memory_budget_bytes"]
    if budget is not None and (not isinstance(budget, int) or budget <= 0):
        raise UserError(f"memory_budget_bytes must be a positive integer or null, got "
                        f"{budget!r}.", "Give bytes, e.g. 25769803776 for 24 GiB.")
    if params["weights"] is not None and not Path(params["weights"]).is_dir():
        raise UserError(f"weights {params['weights']!r} is not a directory.",
                        "Point `weights` at a local directory with config.json and the "
                        "weights (safetensors); nothing is ever downloaded.")


class LlmWorkload(Workload):
    """Shared by the three LLM workloads: only the architecture differs."""

    group = "llm"
    modes = ("infer",)
    item_unit = "tokens"
    varies_inputs = True  # its own measure() cycles input_variants copies
    default_precision = "bf16"
    configs = LLM_CONFIGS
    arch: ClassVar[Architecture]

    @classmethod
    def validate_params(cls, params: Params) -> None:
        validate_llm_params(params)

    # -- setup ---------------------------------------------------------------------------
    def resolve_config(self) -> Any:
        weights = self.params["weights"]
        if weights is None:
            return self.arch.build_config(self.params["architecture"])
        prompts.offline()
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(weights, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise UserError(f"weights {weights}: no readable config.json ({exc}).",
                            "Point `weights` at a transformers model directory.") from exc
        if config.model_type != self.arch.model_type:
            raise UserError(
                f"weights {weights} hold a {config.model_type!r} model; workload {self.name} "
                f"needs {self.arch.model_type!r} ({self.arch.model_class}).",
                "Point `weights` at the matching model's directory (GLM-4 needs the "
                "transformers-format weights, model_type glm).")
        return config

    def setup(self) -> None:
        import torch

        validate_llm_params(self.params)
        if self.ctx.precision not in PRECISIONS:
            raise Unsupported(f"precision {self.ctx.precision} is not implemented for LLM "
                              f"generation (use one of {', '.join(PRECISIONS)})")
        backend = self.ctx.backend
        self.config = self.resolve_config()
        self.shape = DecoderShape.from_config(self.config)
        self.grid = grid_points(self.params)
        self.budget = self.params["memory_budget_bytes"] or backend.memory_stats().total_bytes
        supported = [p for p in PRECISIONS if backend.supports_precision(p)]
        try:
            choice = choose_precision(
                self.ctx.precision, supported,
                lambda p: min(estimate_generation_memory(
                    self.shape, g["batch"], g["input_tokens"], g["output_tokens"],
                    p).total_bytes for g in self.grid),
                self.budget)
        except ValueError as exc:
            raise Unsupported(str(exc)) from exc
        self.precision_used, self.precision_reason = choice.used, choice.reason
        from bench.devices.base import PRECISION_DTYPES

        self.dtype = PRECISION_DTYPES[self.precision_used]
        self.extra["tf32"] = backend.set_tf32(self.precision_used == "tf32")

        torch.manual_seed(self.ctx.seed)
        backend.synchronize()
        t0 = time.monotonic()
        self.model = self.load_model()
        backend.synchronize()
        self.model_load_s = time.monotonic() - t0

        self.extra.update({
            "parameters": count_parameters(self.model),
            "reference_parameters": self.arch.reference_parameters,
            "architecture": self.params["architecture"],
            "architecture_source": self.arch.source,
            "model_class": type(self.model).__name__,
            "load_source": (f"local weights {self.params['weights']}" if self.params["weights"]
                            else "random initialisation on the device"),
            "memory_budget_bytes": self.budget,
            "generation": GenerationSettings(1, 1).as_dict() | {
                "max_new_tokens": "output_tokens of the point",
                "min_new_tokens": "output_tokens of the point"},
            "reference_point": self.params["reference_point"],
        })
        if self.arch.note:
            self.extra["parameters_note"] = self.arch.note
        self.prompt_rows = self.make_prompts()

    @classmethod
    def work_probe(cls, mode: str, params: Params, precision: str,
                   info: Info) -> WorkProbe:
        """The reference point's generation per output token (the result-level throughput's
        item), and the least traffic of one: a decode step reads every weight once for the
        whole batch (the input embedding only row by row, so it is left out).

        KV-cached generation does the matrix products of one causal forward over the
        input and output tokens, so that forward is counted (logits of the output positions
        only). The attention scores are counted over the full square, twice the causal
        half: an over-count of under 2 % for these models at the grid's lengths (the
        attention term is small beside 2 x parameters per token).
        """
        import torch
        from transformers import AutoModelForCausalLM

        config = cls.arch.build_config(params["architecture"]) if params["weights"] is None \
            else _local_config(params["weights"])
        model = AutoModelForCausalLM.from_config(config).eval()
        point = info.get("reference_point_used") or params["reference_point"]
        batch, inputs, outputs = point["batch"], point["input_tokens"], point["output_tokens"]
        ids = torch.zeros(1, inputs + outputs - 1, dtype=torch.long)
        embedding = model.get_input_embeddings().weight
        tied = embedding is model.get_output_embeddings().weight
        weights = count_parameters(model) - (0 if tied else embedding.numel())
        # bytes per weight at the precision used (a published int8 row: 1); unknown: no bound
        return WorkProbe(lambda: model(input_ids=ids, logits_to_keep=outputs).logits, outputs,
                         backward=False,
                         bytes_per_item=decode_bytes_per_item(weights, precision, batch),
                         what=f"one causal forward over {inputs} + {outputs} - 1 tokens "
                              f"(the reference point {point})",
                         parameters=count_parameters(model), weights_per_step=weights)

    def compile_model(self) -> list[str]:
        """``generate`` calls the model's own ``__call__``: its ``forward`` is compiled in
        place (as transformers recommends), so every decoding step runs compiled."""
        import torch

        self.model.forward = torch.compile(self.model.forward)
        return [f"{type(self.model).__name__}.forward"]

    def load_model(self) -> Any:
        import torch
        from transformers import AutoModelForCausalLM

        device = self.ctx.device
        weights = self.params["weights"]
        if weights is None:
            with torch.device(device):
                model = AutoModelForCausalLM.from_config(self.config,
                                                         **dtype_kwargs(self.dtype))
        else:
            prompts.offline()
            model = AutoModelForCausalLM.from_pretrained(
                weights, local_files_only=True, **dtype_kwargs(self.dtype)).to(device)
        return model.eval()

    def make_prompts(self, lengths: list[int] | None = None,
                     rows_needed: int | None = None) -> dict[int, list[list[int]]]:
        """Token rows per input length, enough for the largest batch (or ``rows_needed``)."""
        lengths = lengths or sorted({g["input_tokens"] for g in self.grid})
        rows_needed = rows_needed or max(self.params["batch_sizes"])
        vocab = self.shape.vocab
        if self.params["prompts"] == "synthetic":
            return {n: prompts.synthetic_prompt_ids(rows_needed, n, vocab, self.ctx.seed + n)
                    for n in lengths}
        examples = prompts.load_cmrc2018(self.params["dataset"])
        tokenizer = prompts.load_tokenizer(self.params["tokenizer"] or self.params["weights"])
        out = {n: prompts.cmrc2018_prompt_ids(examples, tokenizer, rows_needed, n)
               for n in lengths}
        for rows in out.values():
            prompts.check_vocab(rows, vocab, f"tokenizer {self.params['tokenizer']}")
        self.extra["prompts"] = {"source": "cmrc2018", "dataset": self.params["dataset"],
                                 "paragraphs": len(examples)}
        return out

    def function_probe(self) -> ModelProbe:
        """Logits of the reference point's prompt (its first rows and tokens) and greedy
        decoding of ``GREEDY_TOKENS`` tokens from it, against the CPU reference."""
        import torch

        n_in = self.params["reference_point"]["input_tokens"]
        rows = [r[:CHECK_PROMPT_TOKENS] for r in self.prompt_rows[n_in][:CHECK_BATCH]]
        ids = torch.tensor(rows, dtype=torch.long, device=self.ctx.device)

        def logits(m: Any, x: torch.Tensor) -> torch.Tensor:
            return m(input_ids=x, use_cache=False).logits

        return ModelProbe(
            self.model, {"input_ids": ids},
            forward=lambda m, x: {"logits": logits(m, x["input_ids"])},
            decisions={"logits": -1},
            generate=lambda m, x, n: greedy_decode(lambda t: logits(m, t), x["input_ids"], n),
            notes=[f"the first {ids.shape[1]} tokens of the reference point's prompts; greedy "
                   "decoding recomputes the whole sequence each step (no cache)"])

    def generation_config(self, output_tokens: int) -> Any:
        settings = GenerationSettings(
            max_new_tokens=output_tokens, min_new_tokens=output_tokens,
            do_sample=self.params["do_sample"], num_beams=self.params["num_beams"],
            ignore_eos=self.params["ignore_eos"])
        eos = self.config.eos_token_id
        pad = self.config.pad_token_id
        if pad is None:
            pad = (eos[0] if isinstance(eos, list) else eos) if eos is not None else 0
        return settings.generation_config(eos, pad)

    # -- measurement ---------------------------------------------------------------------
    def run_grid_point(self, point: dict[str, int]) -> PointResult:
        import torch

        b, n_in, n_out = point["batch"], point["input_tokens"], point["output_tokens"]
        est = estimate_generation_memory(self.shape, b, n_in, n_out, self.precision_used)
        extra = {"memory_estimate_bytes": {
            "value": est.total_bytes, "unit": "B", "weights_bytes": est.weights_bytes,
            "kv_cache_bytes": est.kv_cache_bytes, "activation_bytes": est.activation_bytes}}
        if not fits(est, self.budget):
            return skipped_point(point, f"estimated {est.describe()} exceeds the usable share "
                                 f"of the {self.budget / 2**30:.2f} GiB memory budget; not "
                                 "attempted", extra)
        device = self.ctx.device
        ids = torch.tensor(self.prompt_rows[n_in][:b], dtype=torch.long, device=device)
        mask = torch.ones_like(ids)
        prompt_batches = itertools.cycle(self.make_input_variants(ids))
        gen_config = self.generation_config(n_out)
        self.model.generation_config = gen_config
        timings = []
        sync = self.ctx.backend.synchronize

        def step() -> int:
            _, timing = generate_timed(self.model, next(prompt_batches), mask, gen_config, sync)
            timings.append(timing)
            return b * n_out

        def metrics(loop: RepeatResult) -> Metrics:
            timed = timings[-loop["iterations"]:]
            return generation_metrics(timed, b, n_in, n_out, loop["window"]["duration_s"])

        result = run_point(self.ctx, point, step, metrics, extra, item_unit=self.item_unit)
        return result

    def measure(self) -> RepeatResult:
        self.record_input_variants(["input_ids"])
        results = []
        for i, point in enumerate(self.grid):
            progress_note(self.ctx.progress, i, len(self.grid), point)
            results.append(self.run_grid_point(point))
            self.ctx.save_points([r.as_point() for r in results])
        ref, note = pick_reference(results, self.params["reference_point"])
        if ref is None or ref.loop is None:
            smallest = min(results, key=lambda r: r.metrics["memory_estimate_bytes"]["value"])
            raise MemoryError(f"no grid point fits in memory: the smallest, {smallest.params}, "
                              f"{(smallest.error or {}).get('message', '')}")
        self.extra["reference_point_used"] = ref.params
        if note:
            self.extra["reference_point_note"] = note
        ran = [(r.metrics["ttft_s"]["value"], r.metrics["output_tokens_per_s"]["value"],
                r.params) for r in results if r.status == "ok"]
        tiers = tier_metrics(ran)
        self.extra["ttft_tier_points"] = {name: t.get("point") for name, t in tiers.items()}
        metrics = {"model_load_s": {"value": self.model_load_s, "unit": "s"}, **tiers}
        for name in ("ttft_s", "tpot_mean_s", "prompt_tokens_per_s"):
            metrics[f"reference_{name}"] = dict(ref.metrics[name])
        return {**ref.loop, "metrics": metrics, "headline": dict(ref.params),
                "points": [r.as_point() for r in results]}


    # -- serving (the Server scenario through LoadGen, bench.scenarios) ----------------------
    def serving_batch_size(self) -> int:
        return max(self.params["batch_sizes"])

    def serving_point(self, rules: Any) -> tuple[int, int]:
        ref = self.params["reference_point"]
        return (int(rules.input_tokens or ref["input_tokens"]),
                int(rules.output_tokens or ref["output_tokens"]))

    def items_per_sample(self) -> int:
        return self._served_tokens

    def serving_runners(self, count: int, rules: Any) -> list[Any]:
        """One generation runner (LLM serving runs one stream): every query is a prompt of
        the serving point's input length, answered with exactly its output length."""
        import torch

        n_in, n_out = self.serving_point(rules)
        self._served_tokens = n_out
        rows = self.make_prompts([n_in], rules.performance_sample_count)[n_in]
        library = torch.tensor(rows, dtype=torch.long, device=self.ctx.device)
        self.extra["serving"] = {"input_tokens": n_in, "output_tokens": n_out,
                                 "prompts": len(rows)}
        return [GenerationRunner(self.model, library, self.generation_config(n_out),
                                 self.ctx.backend.synchronize)]


class FirstTokenStreamer:
    """A transformers streamer that calls back once, when the batch's first token exists."""

    def __init__(self, on_first: Any, synchronize: Any) -> None:
        self.on_first, self.synchronize = on_first, synchronize
        self.prompt_seen = self.fired = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        if not self.fired:
            self.fired = True
            self.synchronize()
            if self.on_first is not None:
                self.on_first()

    def end(self) -> None:
        pass


class GenerationRunner:
    """Serves a batch of prompts from the sample library with the protocol's generation."""

    def __init__(self, model: Any, library: Any, generation_config: Any,
                 synchronize: Any) -> None:
        self.model, self.library = model, library
        self.generation_config, self.synchronize = generation_config, synchronize

    def run(self, indices: list[int], first_token: Any = None) -> int:
        import torch

        ids = self.library[torch.tensor(indices, dtype=torch.long, device=self.library.device)]
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                      generation_config=self.generation_config,
                                      streamer=FirstTokenStreamer(first_token, self.synchronize))
        self.synchronize()
        new = int(out.shape[1] - ids.shape[1])
        if new != self.generation_config.max_new_tokens:
            raise RuntimeError(f"generate returned {new} new tokens, expected "
                               f"{self.generation_config.max_new_tokens}")
        return new


def _local_config(weights: str) -> Any:
    prompts.offline()
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(weights, local_files_only=True)


def _make(arch: Architecture) -> type[LlmWorkload]:
    cls = type(f"Llm_{arch.workload.replace('-', '_').replace('.', '_')}", (LlmWorkload,), {
        "name": arch.workload,
        "description": f"{arch.model_class} text generation, {arch.source} "
                       f"({arch.reference_parameters:,} parameters); grid of concurrency x "
                       "(input, output) tokens, TTFT tiers",
        "arch": arch,
        "__module__": __name__,
    })
    return register(cls)


for _arch in ARCHITECTURES.values():
    _make(_arch)
