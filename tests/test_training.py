"""Large-model training and fine-tuning (docs/training.md): the arithmetic by hand, the data,
the models, determinism, LoRA, the checkpoint round trip, DDP/FSDP against one rank, a dying
rank, and the report's training section."""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import pytest

from bench.config import Entry, load_suite
from bench.errors import UserError
from bench.llm import train_data as td
from bench.llm.train_formulas import (
    LrSchedule,
    attention_flop_per_token,
    fits,
    loss_difference_variance,
    mfu_pct,
    tgs,
    train_flop_per_token,
    training_memory,
)
from bench.records import RepeatSpec
from bench.rules import RunRules
from bench.validate import validate_file
from tests.conftest import run_bench

# 2 ranks sum their shares of the loss in another order than 1 rank, and their gradients are
# averaged by an all-reduce: in fp32 the curves agree to rounding, which this bounds.
RANKS_REL_TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def one_thread():
    """In-process training on one thread: with two, OpenMP barriers stall on a busy shared
    machine and a few steps take minutes. Results do not depend on it (each run here is
    compared with another run under the same setting)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- arithmetic, worked by hand ------------------------------------------------------------------
def test_tgs_worked_by_hand():
    # Llama-3-8B on 8 devices: 4096 tokens x 16 samples every 2 s = 32768 tokens/s, /8 devices
    assert tgs(4096, 16, 2.0, 8) == 4096.0
    # the small config: 64 x 4 tokens in 50 ms on one device
    assert tgs(64, 4, 0.05, 1) == pytest.approx(5120.0)
    with pytest.raises(ValueError):
        tgs(64, 4, 0.0, 1)


def test_flop_per_token_worked_by_hand():
    # reduced Llama (hidden 64, 2 layers, 4 heads of 16, 2 KV heads, MLP 128, vocab 512):
    # per layer q 64x64 + k, v 64x32 + o 64x64 + gate/up/down 3 x 64x128 = 36,864;
    # 2 layers + LM head 512x64 = 106,496 matrix weights
    n = 2 * (4096 + 2048 + 2048 + 4096 + 3 * 8192) + 512 * 64
    assert n == 106_496
    assert attention_flop_per_token(2, 64, 64) == 12 * 2 * 64 * 64 == 98_304
    assert train_flop_per_token(n, 2, 64, 64) == 6 * 106_496 + 98_304 == 737_280
    # LoRA r 8 on q and v: 2 x (8 x (64 + 64) + 8 x (64 + 32)) = 3,584 trained weights; the
    # frozen base costs 4 FLOP per weight (no weight gradient)
    assert train_flop_per_token(n + 3584, 2, 64, 64, frozen_matmul_params=n) == \
        6 * 3584 + 4 * 106_496 + 98_304
    assert mfu_pct(1e9, 1000.0, 312e12) == pytest.approx(100 * 1e12 / 312e12)


def test_model_counts_match_the_hand_numbers():
    from bench.llm.trainer import TrainSpec, meta_shape

    spec = TrainSpec(task="pretrain", model="llama3-8b", architecture="reduced", seq_len=64,
                     global_batch=4, precision="fp32", strategy="none",
                     activation_checkpointing=False)
    s = meta_shape(spec)
    assert (s.matmul_params, s.layers, s.attention_width, s.frozen_matmul_params) == \
        (106_496, 2, 64, 0)
    lora = meta_shape(TrainSpec(**{**spec.as_dict(), "task": "finetune", "method": "lora"}))
    assert lora.trainable == 3584 and lora.frozen_matmul_params == 106_496
    assert lora.matmul_params == 106_496 + 3584


def test_published_parameter_counts():
    from bench.llm.train_models import TRAIN_MODELS, model_shape

    for name, tm in TRAIN_MODELS.items():
        config = tm.config("published")
        shape = model_shape(tm.build_meta(config), config)
        assert shape.parameters == tm.arch.reference_parameters, name
    # Llama-3-8B: everything but the input embedding (128256 x 4096) and the 65 RMSNorm
    # weight vectors is a matrix product (the LM head is untied)
    config = TRAIN_MODELS["llama3-8b"].config("published")
    shape = model_shape(TRAIN_MODELS["llama3-8b"].build_meta(config), config)
    assert shape.matmul_params == 8_030_261_248 - 128256 * 4096 - 65 * 4096


def test_lr_schedule_worked_by_hand():
    s = LrSchedule(peak=1e-3, warmup_steps=10, decay_steps=110, min_ratio=0.1)
    assert s.lr(5) == pytest.approx(5e-4)
    assert s.lr(10) == pytest.approx(1e-3)
    assert s.lr(60) == pytest.approx(1e-4 + 9e-4 * 0.5)  # half-way: cos(pi/2) = 0
    assert s.lr(110) == pytest.approx(1e-4) and s.lr(500) == pytest.approx(1e-4)
    with pytest.raises(ValueError):
        s.lr(0)
    with pytest.raises(ValueError):
        LrSchedule(1e-3, 10, 10)


def test_training_memory_worked_by_hand():
    # 1000 parameters, all trained: 16 kB of states; 2 layers, hidden 8, batch 2 x seq 4,
    # bf16: 34 x 8 tokens x 8 x 2 layers = 4352 B of activations; logits 3 x 8 x 100 x 4
    m = training_memory(1000, 1000, 1, "ddp", 2, 8, 100, 2, 4, 2, False)
    assert (m.states_bytes, m.activation_bytes, m.logits_bytes) == (16_000, 4352, 9600)
    # FSDP over 4 ranks divides the states; checkpointing keeps 2 x tokens x hidden per layer
    # plus one layer's full set
    # plus two gathered blocks of 500 parameters in fp32
    m = training_memory(1000, 1000, 4, "fsdp", 2, 8, 100, 2, 4, 2, True)
    assert (m.states_bytes, m.activation_bytes) == (4000, 2 * 2 * 8 * 8 + 34 * 8 * 8)
    assert m.gathered_bytes == 2 * 500 * 4 and m.total_bytes == 4000 + 2432 + 9600 + 4000
    # LoRA: 10 trained, 990 frozen at 2 bytes
    assert training_memory(1000, 10, 1, "none", 1, 8, 10, 1, 1, 2, False,
                           frozen_bytes_per_param=2).states_bytes == 160 + 1980
    assert fits(m, m.total_bytes * 2) and not fits(m, m.total_bytes)
    assert loss_difference_variance([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 0.0
    assert loss_difference_variance([1.0, 3.0], [1.0, 1.0]) == 1.0  # diffs 0, 2: var 1


# -- data ----------------------------------------------------------------------------------------
def test_markov_data_is_deterministic_learnable_and_split_by_rank():
    chain = td.MarkovChain(seed=3, low=0, high=512)
    pool = chain.pool(64, 200)
    assert np.array_equal(pool, td.MarkovChain(3, 0, 512).pool(64, 200))
    assert not np.array_equal(pool, td.MarkovChain(4, 0, 512).pool(64, 200))
    assert pool.min() >= 0 and pool.max() < 512
    # Zipf unigram: well below the uniform entropy ln 512 = 6.24 nats
    _, counts = np.unique(pool, return_counts=True)
    q = counts / counts.sum()
    assert -(q * np.log(q)).sum() < math.log(512) - 1.0
    # order 2: a context (a, b) is followed by at most 4 distinct tokens
    successors: dict[tuple[int, int], set[int]] = {}
    for row in pool:
        for a, b, c in zip(row, row[1:], row[2:], strict=False):
            successors.setdefault((int(a), int(b)), set()).add(int(c))
    assert max(len(s) for s in successors.values()) <= td.BRANCHES
    # a global batch is the same whether one rank or two compute it
    source = td.CausalSource(pool, 32, seed=3)
    whole = source.batch(7, np.arange(4))["input_ids"]
    halves = [source.batch(7, np.arange(r * 2, r * 2 + 2))["input_ids"] for r in range(2)]
    assert np.array_equal(whole, np.concatenate(halves))
    assert not np.array_equal(whole, source.batch(8, np.arange(4))["input_ids"])


def test_bert_pretraining_batches():
    chain = td.MarkovChain(0, td.FIRST_BERT_ID, 2048)
    src = td.BertPretrainingSource(chain.pool(32, 128), 64, 0, td.FIRST_BERT_ID, 2048)
    b = src.batch(0, np.arange(64))
    ids, tt, labels = b["input_ids"], b["token_type_ids"], b["labels"]
    assert ids.shape == (64, 64) and (ids[:, 0] == 101).all() and (ids[:, -1] == 102).all()
    assert (ids[:, src.len_a + 1] == 102).all()
    assert (tt[:, :src.len_a + 2] == 0).all() and (tt[:, src.len_a + 2:] == 1).all()
    chosen = labels != td.IGNORE_INDEX
    assert 0.10 < chosen.mean() < 0.20  # 15 % of the sentence tokens
    assert not chosen[:, 0].any()  # never [CLS] or [SEP]
    assert (ids[chosen] == 103).mean() > 0.6  # 80 % of those become [MASK]
    assert set(b["next_sentence_label"].tolist()) == {0, 1}


def test_alpaca_records(tmp_path):
    chain = td.MarkovChain(0, 0, 512)
    records = td.synthetic_alpaca_records(chain, [5, 6, 7], [8, 9], 16, 64, eos_id=2)
    assert all(r[:3] == [5, 6, 7] and r[-1] == 2 and len(r) <= 64 for r in records)
    source = td.AlpacaSource(records, 64, global_batch=4, pad_id=0)
    assert 0.2 < source.real_token_fraction < 1.0  # padded, as real records are
    b = source.batch(0, np.arange(4))
    assert ((b["labels"] == td.IGNORE_INDEX) == (b["attention_mask"] == 0)).all()
    path = tmp_path / "alpaca_data.json"
    path.write_text(json.dumps([{"instruction": "Add.", "input": "1 2", "output": "3"},
                                {"instruction": "Say hi.", "output": "hi"}]))
    recs = td.load_alpaca(path)
    assert "### Input:\n1 2" in td.alpaca_prompt(recs[0])
    assert "### Input" not in td.alpaca_prompt(recs[1])
    path.write_text(json.dumps([{"instruction": "x", "output": 3}]))
    with pytest.raises(UserError, match=r"record \$\[0\]"):
        td.load_alpaca(path)


# -- training in one process ---------------------------------------------------------------------
def _spec(**kw):
    from bench.llm.trainer import TrainSpec

    base = dict(task="pretrain", model="llama3-8b", architecture="reduced", seq_len=32,
                global_batch=4, precision="fp32", strategy="none",
                activation_checkpointing=False, lr=1e-3, warmup_steps=5, decay_steps=200)
    return TrainSpec(**{**base, **kw})


def _session(**kw):
    from bench.devices import get_backend
    from bench.llm.trainer import TrainSession

    s = TrainSession(_spec(**kw), get_backend("cpu"))
    s.setup()
    return s


def test_loss_falls_over_50_steps_and_is_bit_identical_between_runs():
    runs = []
    for _ in range(2):
        s = _session(precision="bf16")
        for _ in range(50):
            s.step()
        runs.append(s.local_losses)
    assert runs[0] == runs[1]  # bit for bit, every step
    first, last = runs[0][0], sum(runs[0][-5:]) / 5
    assert first == pytest.approx(math.log(512), abs=0.05)  # a random model knows nothing
    assert last < first - 1.0, runs[0]


def test_lora_trains_only_the_adapters():
    import torch

    s = _session(task="finetune", method="lora")
    trainable = {n: p.detach().clone() for n, p in s.model.named_parameters()
                 if p.requires_grad}
    assert all(".lora_A." in n or ".lora_B." in n for n in trainable)
    # r 8 on q_proj (64 -> 64) and v_proj (64 -> 32) of 2 layers
    assert sum(p.numel() for p in trainable.values()) == 2 * (8 * (64 + 64) + 8 * (64 + 32))
    frozen = {n: p.detach().clone() for n, p in s.model.named_parameters()
              if not p.requires_grad}
    for _ in range(3):
        s.step()
    after = dict(s.model.named_parameters())
    assert all(torch.equal(after[n], v) for n, v in frozen.items())
    assert any(not torch.equal(after[n], v) for n, v in trainable.items() if "lora_B" in n)


def test_checkpoint_round_trip_continues_with_the_same_loss(tmp_path, monkeypatch):
    from bench.llm import trainer

    rules = RunRules(warmup_iters=1, min_iters=2, min_duration_s=0.0)
    s = _session(checkpoint_dir=str(tmp_path / "ck"))
    record = s.run(rules)
    ck = record.checkpoint
    assert ck["resumed_loss"] == ck["next_loss"]  # exactly, on the CPU
    assert ck["bytes"] == sum(f.stat().st_size for f in (tmp_path / "ck").iterdir()) > 0
    assert 0 < ck["save_blocking_s"] <= ck["save_s"] and ck["load_s"] > 0
    assert record.steps == 3 and len(record.loss) == 3  # the round trip's steps are not kept

    # A load that restores nothing must be caught by the resumed-loss check.
    monkeypatch.setattr("torch.distributed.checkpoint.load", lambda *a, **k: None)
    s = _session(checkpoint_dir=str(tmp_path / "ck2"))
    with pytest.raises(trainer.ResumeMismatch, match="did not restore"):
        s.run(rules)


def test_a_nan_loss_is_an_error_naming_the_step(monkeypatch):
    from bench.child import run_repeat
    from bench.llm.trainer import TrainSession

    real = TrainSession._loss

    def poisoned(self, batch, arrays):
        loss = real(self, batch, arrays)
        return loss * float("nan") if self.step_no == 4 else loss

    monkeypatch.setattr(TrainSession, "_loss", poisoned)
    entry = Entry(id="p", workload="llm-pretrain", mode="train", config="small",
                  precision="fp32",
                  params={**load_suite("train").entries[0].params, "checkpoint": False},
                  rules=RunRules(warmup_iters=2, min_iters=5, min_duration_s=0.0))
    result = run_repeat(RepeatSpec("cpu", entry, seed=0, repeat=0))
    assert result["status"] == "error"
    assert result["error"]["message"] == "loss became nan at step 4 on rank 0"
    assert len(result["series"]["loss"]) == 3  # the curve up to the failure is kept


def test_weights_and_local_data(tmp_path):
    """A local model directory and local text: loaded, never downloaded."""
    import torch

    from bench.llm.train_models import TRAIN_MODELS

    tm = TRAIN_MODELS["llama3-8b"]
    torch.manual_seed(1)
    saved = tm.arch.model_type_class()(tm.config("reduced"))
    saved.save_pretrained(tmp_path / "weights")
    s = _session(weights=str(tmp_path / "weights"), task="finetune", method="lora")
    base = dict(saved.named_parameters())
    for name, p in s.model.named_parameters():
        if not p.requires_grad:
            key = name.replace("base_model.model.", "").replace(".base_layer", "")
            assert torch.equal(p, base[key]), name
    (tmp_path / "text.jsonl").write_text("\n".join(
        json.dumps({"text": f"document {i}: the quick brown fox jumps over the lazy dog"})
        for i in range(40)))
    p = _session(data_path=str(tmp_path / "text.jsonl"))
    assert p.data_info["source"] == "text" and p.data_info["tokens"] > 400
    p.step()


def test_warmup_rule_and_suites(tmp_path):
    entries = {e.id: e for e in load_suite("all").entries}
    assert {"pretrain-llama3-8b", "pretrain-bert-base", "pretrain-llama3-8b-fsdp2",
            "finetune-llama3-8b-lora"} <= set(entries)
    full = {e.id: e for e in load_suite("train-full").entries}
    assert full["pretrain-llama3-8b"].params["strategy"] == "fsdp"
    assert all(e.rules.warmup_iters < 50 for e in full.values())
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nrules: {warmup_iters: 50}\nentries:\n"
                     "  - {workload: llm-pretrain, mode: train}\n")
    with pytest.raises(UserError, match="fewer than 50 warm-up"):
        load_suite(str(suite))
    suite.write_text("name: s\nentries:\n  - {workload: llm-pretrain, mode: train, "
                     "params: {model: gpt-5}}\n")
    with pytest.raises(UserError, match="model is 'gpt-5'"):
        load_suite(str(suite))


def test_base_torch_stands_in_as_a_placeholder_wheel(tmp_path):
    from testbed.images.lock import base_torch_version, placeholder_wheel
    from testbed.images.spec import load_spec

    assert base_torch_version(load_spec("cuda")) == "2.3.0a0"
    assert base_torch_version(load_spec("corex")) == "2.1.1"
    assert base_torch_version(load_spec("cpu")) is None  # installed from its lock
    wheel = placeholder_wheel(tmp_path, "torch", "2.3.0a0")
    assert wheel.name == "torch-2.3.0a0+base-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read("torch-2.3.0a0+base.dist-info/METADATA").decode()
    assert "Name: torch\nVersion: 2.3.0a0+base" in meta


# -- several ranks, through the runner ---------------------------------------------------------
SUITE = """\
name: ranks
seed: 0
rules: {warmup_iters: 1, min_iters: 4, min_duration_s: 0.0, repeats: 1, timeout_s: 240}
telemetry: {interval_s: 0.2, idle_s: 0.2}
entries:
  - {id: one, workload: llm-pretrain, mode: train, precision: fp32,
     params: {seq_len: 32, checkpoint: false}}
  - {id: ddp2, workload: llm-pretrain, mode: train, precision: fp32,
     params: {seq_len: 32, nproc: 2, strategy: ddp, checkpoint: false}}
  - {id: fsdp2, workload: llm-pretrain, mode: train, precision: fp32,
     params: {seq_len: 32, nproc: 2, strategy: fsdp}}
  - {id: dies, workload: test-train-dies, mode: train, precision: fp32,
     params: {seq_len: 32, nproc: 2, strategy: ddp, checkpoint: false}}
  - {id: after, workload: test-sleep, mode: infer}
"""


@pytest.fixture(scope="module")
def ranks_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ranks")
    (tmp / "suite.yaml").write_text(SUITE)
    proc = run_bench("run", "--suite", str(tmp / "suite.yaml"), "--device", "cpu", "--out",
                     str(tmp / "run"), timeout=600)
    docs = {p.stem: json.loads(p.read_text()) for p in (tmp / "run").glob("*.json")
            if p.name != "manifest.json"}
    return proc, docs, tmp / "run"


def test_two_ranks_ddp_and_fsdp_agree_with_one_rank(ranks_run):
    _, docs, out = ranks_run
    for path in out.glob("*.json"):
        assert validate_file(path).ok, (path, validate_file(path).problems)
    one = docs["one"]["repeats"][0]["series"]["loss"]
    assert len(one) == 5
    for name, strategy in (("ddp2", "ddp"), ("fsdp2", "fsdp")):
        doc = docs[name]
        assert doc["status"] == "ok", doc.get("error")
        info = doc["workload"]["info"]
        assert (info["world_size"], info["strategy"]) == (2, strategy)
        assert info["launcher"].startswith("torch.distributed.run")
        loss = doc["repeats"][0]["series"]["loss"]
        assert loss == pytest.approx(one, rel=RANKS_REL_TOLERANCE)
        assert len(doc["repeats"][0]["metrics"]["peak_mem_bytes"]["per_rank"]) == 2
        assert len(info["peak_mem_bytes_per_rank"]) == 2
    assert docs["fsdp2"]["workload"]["info"]["activation_checkpointing"] is True
    # the sharded state round-trips too
    assert docs["fsdp2"]["metrics"]["checkpoint_resume_loss_diff"]["value"] == 0.0
    assert docs["fsdp2"]["metrics"]["checkpoint_bytes"]["value"] > 0
    # TGS from its own definition
    m = docs["ddp2"]["metrics"]
    assert m["tgs_tokens_per_s"]["value"] == pytest.approx(
        32 * 4 / (m["iteration_time_mean_s"]["value"] * 2))


def test_a_rank_that_dies_takes_its_entry_down_and_the_next_runs(ranks_run):
    proc, docs, _ = ranks_run
    assert proc.returncode == 1
    dies = docs["dies"]
    assert dies["status"] == "error"
    assert "rank 1" in dies["error"]["message"] and "signal 9" in dies["error"]["message"]
    assert docs["after"]["status"] == "ok"


def test_the_report_shows_tgs_mfu_and_loss_curves(ranks_run, tmp_path):
    from testbed.report import write_report

    _, _, out = ranks_run
    files = write_report([out], tmp_path / "report")
    html = files.html.read_text()
    assert "id='training'" in html and "TGS: tokens per device per second" in html
    for wl in ("one", "ddp2", "fsdp2"):
        assert f"id='loss-{wl}'" in html
    svg = (tmp_path / "report" / "charts" / "loss-fsdp2.svg").read_text()
    assert svg.count("<circle") == 5 and "step 5" in svg
    md = files.markdown.read_text()
    assert "## Training" in md and "charts/loss-one.svg" in md
