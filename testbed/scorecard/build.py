"""The scorecard of each test device, built from result documents (docs/scorecard.md).

The baseline is a baseline run (``--baseline``: its results, one device) or, where there is
none, the evaluation template's published A100 values from ``bench/specs/scorecard.yaml``
(the communication table and the basic specifications; the template publishes no training,
inference or checkpoint figures, so those sub-items need a baseline run and are NA without
one). NA scores 0; a sub-item that did not pass its acceptance scores 0; both stay visible.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from bench.documents import AnyResultDoc, Params
from bench.metrics import catalogue
from bench.micro import formulas as mf
from testbed.report.inputs import Result, ResultSet
from testbed.report.scores import LLM_TIERS, llm_tier_scores
from testbed.scorecard import formulas as sf
from testbed.scorecard.settings import ITEM_TITLES, ITEMS, Settings, load_settings


def train_item(doc: AnyResultDoc) -> str:
    """training or finetune: which item a training result (a soak's too) belongs to."""
    info = (doc.get("workload") or {}).get("info") or {}
    return "finetune" if str(info.get("objective", "")).startswith("alpaca") else "training"


@dataclass
class Line:
    """One row of the template's summary table."""

    item: str  # key of ITEMS
    sub_item: str
    score: float | None  # None: NA
    note: str = ""
    failed: bool = False  # did not pass acceptance: counts 0

    @property
    def counted(self) -> float:
        return 0.0 if self.failed else sf.na_zero(self.score)

    @property
    def shown(self) -> str:
        if self.failed:
            return "0 (failed)"
        return "NA" if self.score is None else sf.percent_of_baseline(self.score)


@dataclass
class SpecRow:
    title: str
    unit: str
    baseline: float
    measured: float | None
    note: str = ""


@dataclass
class CommRow:
    op: str
    devices: int
    message_bytes: int
    weight: float
    baseline_gbit: float
    baseline_source: str  # "template" or the baseline run's device
    measured_gbit: float | None
    score: float | None


@dataclass
class Crash:
    t_s: float
    kind: str
    message: str
    step: int | None
    recovered_s: float | None
    recovery_s: float | None


@dataclass
class Soak:
    entry: str
    item: str
    window_s: float
    crashes: list[Crash]
    failure_free_s: float
    variance: float | None
    score: float
    steps: list[tuple[float, int]]  # (time since start, step) to draw progress


@dataclass
class Scorecard:
    device: str
    baseline: str
    baseline_kind: str  # "run" | "template"
    lines: list[Line]
    item_scores: dict[str, float]
    overall: float
    headline: str
    specs: list[SpecRow] = field(default_factory=list)
    comm: list[CommRow] = field(default_factory=list)
    comm_measured: dict[str, list[tuple[int, float, int]]] = field(default_factory=dict)
    loss: dict[str, tuple[list[float], list[float] | None]] = field(default_factory=dict)
    tgs: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    soaks: list[Soak] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # False: none of the results is one the scorecard reads (a smoke run): no overall score
    applies: bool = True


# -- reading result documents ----------------------------------------------------------------
def value(doc: AnyResultDoc | None, name: str) -> float | None:
    entry = ((doc or {}).get("metrics") or {}).get(name)
    v = entry.get("value") if isinstance(entry, dict) else None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def soak_s(doc: AnyResultDoc) -> float:
    return float((doc.get("rules") or {}).get("soak_s") or 0)


def loss_series(doc: AnyResultDoc | None) -> list[float] | None:
    for rep in (doc or {}).get("repeats") or []:
        values = (rep.get("series") or {}).get("loss")
        if values:
            return [float(v) for v in values if isinstance(v, int | float)]
    return None


def latest_by_entry(results: Iterable[Result]) -> dict[str, AnyResultDoc]:
    """The newest result of each entry id."""
    out: dict[str, AnyResultDoc] = {}
    for r in sorted(results, key=lambda r: r.doc.get("started_at", "")):
        out[r.workload["id"]] = r.doc
    return out


def _ok(doc: AnyResultDoc | None) -> bool:
    return bool(doc) and doc.get("status") == "ok"


# -- items ---------------------------------------------------------------------------------
def _train_lines(item: str, test: dict[str, dict], base: dict[str, dict] | None,
                 settings: Settings, card: Scorecard) -> list[Line]:
    models = settings.models(item)
    alphas = {m: w["alpha"] for m, w in models.items()}
    weights = {m: w["weight"] for m, w in models.items()}
    trained: dict[str, bool] = {}
    why: list[str] = []
    tgs, tgs_base = {}, {}
    for entry in models:
        doc, bdoc = test.get(entry), (base or {}).get(entry)
        if doc is None:
            continue
        curve, bcurve = loss_series(doc), loss_series(bdoc) if _ok(bdoc) else None
        ok = _ok(doc) and bool(curve)
        if ok and bcurve:
            ok = sf.curve_within_tolerance(curve or [], bcurve, settings.loss_tolerance)
            if not ok:
                why.append(f"{entry}: loss curve outside {settings.loss_tolerance:.0%} of the "
                           "baseline's")
        elif not _ok(doc):
            why.append(f"{entry}: {doc.get('status')}")
        trained[entry] = ok
        tgs[entry] = value(doc, "tgs_tokens_per_s") if _ok(doc) else None
        tgs_base[entry] = value(bdoc, "tgs_tokens_per_s") if _ok(bdoc) else None
        card.tgs[entry] = (tgs[entry], tgs_base[entry])
        if curve:
            card.loss[entry] = (curve, bcurve)
    title = ITEM_TITLES[item]
    if not trained:
        function = Line(item, "function", None, f"no {title.lower()} result")
    else:
        note = f"{sum(trained.values())} of {len(models)} models trained"
        if base is None:
            note += " (no baseline run: loss curves not compared)"
        function = Line(item, "function", sf.support_rate(trained, alphas),
                        "; ".join([note, *why]))
    if not any(v is not None for v in tgs_base.values()) or not trained:
        perf = Line(item, "performance", None, "no baseline run with TGS" if trained
                    else f"no {title.lower()} result")
    else:
        perf = Line(item, "performance", sf.performance(tgs, tgs_base, weights),
                    "Σ W_i × TGS_i / TGS_baseline,i")
    return [function, perf, _stability_line(item, test, base, settings, card)]


def _soak(entry: str, item: str, doc: AnyResultDoc, bdoc: AnyResultDoc | None,
          settings: Settings) -> Soak:
    st = settings.stability
    info = ((doc.get("workload") or {}).get("info") or {}).get("soak") or {}
    window = float(info.get("window_s") or soak_s(doc))
    crashes = [Crash(c["t_s"], c["class"], c["message"], c.get("step"), c.get("recovered_s"),
                     c.get("recovery_s")) for c in info.get("crashes", [])]
    h = value(doc, "soak_failure_free_s")
    if h is None:
        h = sf.longest_failure_free_s(0.0, window, [(c.t_s, c.recovered_s) for c in crashes])
    curve, bcurve = loss_series(doc), loss_series(bdoc)
    var = sf.stability_variance(curve, bcurve, st["variance_steps"]) \
        if curve and bcurve else None
    score = sf.stability_score(len(crashes), h, window, var, st["crash_weight"],
                               st["hours_weight"], st["variance_weight"])
    steps = [(float(t), int(s)) for t, s in info.get("steps", [])]
    return Soak(entry, item, window, crashes, h, var, score, steps)


def _stability_line(item: str, test: dict[str, dict], base: dict[str, dict] | None,
                    settings: Settings, card: Scorecard) -> Line:
    soaks = {e: d for e, d in test.items() if soak_s(d) > 0 and train_item(d) == item}
    if not soaks:
        return Line(item, "stability", None, "no soak (run rule soak_s) result")
    entry, doc = sorted(soaks.items())[0]
    if doc.get("status") != "ok":
        return Line(item, "stability", None, f"soak {entry}: {doc.get('status')}", failed=True)
    soak = _soak(entry, item, doc, (base or {}).get(entry), settings)
    card.soaks.append(soak)
    template = settings.stability["window_s"]
    parts = [f"{entry}: C = {len(soak.crashes)}, h = {soak.failure_free_s:.0f} s of "
             f"{soak.window_s:.0f} s"]
    if soak.window_s < template:
        parts.append(f"shorter than the template's {template / 3600:.0f} h: h scaled to its "
                     "own window")
    parts.append("var NA (no baseline soak): its term scores 0" if soak.variance is None
                 else f"var = {soak.variance:.3g}")
    return Line(item, "stability", soak.score, "; ".join(parts))


def _text_line(test: dict[str, dict], base: dict[str, dict] | None) -> Line:
    names = catalogue().feeding("inference_text")  # the load time and the TTFT tiers
    entries = [e for e, d in test.items() if any(value(d, t) is not None for t, _ in LLM_TIERS)]
    if not entries:
        return Line("inference_text", "TTFT tiers", None, "no text-generation result")
    scores = []
    for e in entries:
        bdoc = (base or {}).get(e)
        if not _ok(bdoc):
            continue
        tiers = llm_tier_scores({m: value(test[e], m) for m in names},
                                {m: value(bdoc, m) for m in names})
        scored = [t.score for t in tiers if t.score is not None]
        if scored:
            scores.append(sum(scored) / len(scored))
    if not scores:
        return Line("inference_text", "TTFT tiers", None,
                    "no baseline run of these entries (the template publishes no values)")
    return Line("inference_text", "TTFT tiers", sum(scores) / len(scores),
                f"mean over {len(scores)} entries of the mean over TTFT tiers")


def _point_key(params: Params) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in params.items()))


def _image_line(test: dict[str, dict], base: dict[str, dict] | None,
                settings: Settings) -> Line:
    sec = settings.section("inference_image")
    weights = sec["metric_weights"]
    metrics = catalogue().feeding("inference_image")  # images/s, latency, load time
    entries = [e for e, d in test.items() if d["workload"]["name"] == sec["workload"]]
    if not entries:
        return Line("inference_image", "images/s, latency, load", None,
                    "no text-to-image result")
    scores = []
    for e in entries:
        doc, bdoc = test[e], (base or {}).get(e)
        if not (_ok(doc) and _ok(bdoc)):
            continue
        bpoints = {_point_key(p["params"]): p for p in bdoc.get("points") or []}
        # a grid point's figures (images/s, latency) per point both ran; a figure of the
        # whole entry (the model's load time) once
        per_point = [m for m in metrics if any(m in (p.get("metrics") or {}) for p in [
            *(doc.get("points") or []), *(bdoc.get("points") or [])])]
        ratios: dict[str, list[float | None]] = {m: [] for m in per_point}
        for p in doc.get("points") or []:
            bp = bpoints.get(_point_key(p["params"]))
            if bp is None:
                continue
            for m in per_point:
                ratios[m].append(sf.metric_ratio(m, value(p, m), value(bp, m)))

        def mean(xs: list[float | None]) -> float | None:
            return sum(sf.na_zero(x) for x in xs) / len(xs) if xs else None

        scores.append(sf.weighted_sum({
            m: mean(ratios[m]) if m in ratios else
            sf.metric_ratio(m, value(doc, m), value(bdoc, m)) for m in metrics}, weights))
    if not scores:
        return Line("inference_image", "images/s, latency, load", None,
                    "no baseline run of these entries (the template publishes no values)")
    return Line("inference_image", "images/s, latency, load", sum(scores) / len(scores),
                "over the resolution grid points both ran")


def _comm_lines(results: list[AnyResultDoc], base: list[AnyResultDoc],
                base_label: str | None, settings: Settings, card: Scorecard) -> Line:
    def measured(docs: list[AnyResultDoc]) -> dict[tuple[str, int, int], float]:
        out: dict[tuple[str, int, int], float] = {}
        for doc in docs:
            for p in doc.get("points") or []:
                prm, t = p.get("params") or {}, value(p, "time_s")
                if p.get("status") != "ok" or t is None or t <= 0:
                    continue
                op, ranks = prm["op"], int(prm["ranks"])
                message = mf.deepspeed_message_bytes(op, int(prm["bytes"]), ranks)
                bits = mf.deepspeed_bits_per_s(op, message, t, ranks)
                key = (op, ranks, message)
                out[key] = max(out.get(key, 0.0), bits / 1e9)
        return out

    mine, theirs = measured(results), measured(base)
    for (op, ranks, message), gbit in sorted(mine.items()):
        card.comm_measured.setdefault(op, []).append((message, gbit, ranks))
    scores: dict[str, float | None] = {}
    weights: dict[str, float] = {}
    for p in settings.comm_points:
        key = (p.op, p.devices, p.message_bytes)
        b, src = (theirs[key], base_label or "baseline run") if key in theirs \
            else (p.throughput_gbit_per_s, "template")
        got = mine.get(key)
        score = sf.ratio(got, b)
        card.comm.append(CommRow(p.op, p.devices, p.message_bytes, p.weight, b, src, got,
                                 score))
        scores[p.key], weights[p.key] = score, p.weight
    if not results:
        return Line("communication", "10 collectives × 8, 32 devices", None,
                    "no collectives result")
    hits = sum(1 for s in scores.values() if s is not None)
    return Line("communication", "10 collectives × 8, 32 devices",
                sf.weighted_mean(scores, weights) if hits else None,
                f"{hits} of {len(scores)} template points measured (same op, devices and "
                "message size); weights normalised by their sum (100.4 %)")


def _checkpoint_line(test: dict[str, dict], base: dict[str, dict] | None,
                     settings: Settings) -> Line:
    sec = settings.section("checkpoint")
    doc, bdoc = test.get(sec["entry"]), (base or {}).get(sec["entry"])
    sub = f"save × {sec['save_weight']}, load × {sec['load_weight']}"
    if doc is None or value(doc, "checkpoint_save_s") is None:
        return Line("checkpoint", sub, None, f"no checkpoint figures from {sec['entry']}")
    if not _ok(bdoc):
        return Line("checkpoint", sub, None,
                    "no baseline run of it (the template publishes no values)")
    score = sf.checkpoint_score(value(doc, "checkpoint_save_s"), value(doc, "checkpoint_load_s"),
                                value(bdoc, "checkpoint_save_s"),
                                value(bdoc, "checkpoint_load_s"),
                                sec["save_weight"], sec["load_weight"])
    return Line("checkpoint", sub, score, f"of {sec['entry']}; weights are settings "
                "(the template's text is garbled around them)")


def _specs(docs: list[AnyResultDoc], settings: Settings) -> list[SpecRow]:
    rows = []
    for v in settings.section("basic_specs")["values"]:
        m = v["measured"]
        if "provenance" in m:
            vals = [((d.get("provenance") or {}).get("device") or {}).get(m["provenance"])
                    for d in docs]
        else:
            vals = [value(d, m["metric"]) for d in docs
                    if d["workload"]["name"] == m["workload"] and _ok(d)
                    and ("precision" not in m or d["workload"].get("precision_used")
                         == m["precision"])]
        vals = [float(x) for x in vals if isinstance(x, int | float) and x]
        rows.append(SpecRow(v["title"], v["unit"], float(v["value"]),
                            max(vals) if vals else None,
                            "" if vals else "not measured"))
    return rows


# -- what the scorecard reads -------------------------------------------------------------------
ITEM_WORDS = {"training": "training", "finetune": "fine-tuning",
              "inference_text": "text generation", "inference_image": "text-to-image",
              "communication": "communication", "checkpoint": "checkpoint"}


def items_of(entry_id: str, workload: str, group: str, mode: str, settings: Settings,
             soak: bool = False, scenario: bool = False) -> set[str]:
    """The scorecard items an entry's results fill (by the settings' entries and workloads)."""
    items = {item for item in ("training", "finetune") if entry_id in settings.models(item)}
    if soak:
        items.add("training")
    if entry_id == settings.section("checkpoint")["entry"]:
        items.add("checkpoint")
    if workload == settings.section("communication")["workload"]:
        items.add("communication")
    if workload == settings.section("inference_image")["workload"]:
        items.add("inference_image")
    elif group == "llm" and mode == "infer" and not scenario:  # LoadGen has no TTFT tiers
        items.add("inference_text")
    return items


def filled_items(docs: Iterable[AnyResultDoc], settings: Settings) -> set[str]:
    out: set[str] = set()
    for d in docs:
        wl = d.get("workload") or {}
        out |= items_of(str(wl.get("id")), str(wl.get("name")), str(wl.get("group")),
                        str(wl.get("mode")), settings, soak=soak_s(d) > 0,
                        scenario=bool(d.get("scenario")))
    return out


def suites_filling(settings: Settings) -> dict[str, list[str]]:
    """Each item and the bundled suites (their small form) whose entries fill it."""
    from bench.config import available_suites, load_suite
    from bench.workloads import get_workload

    out: dict[str, list[str]] = {}
    for name in available_suites():
        if name.endswith("-full") or name == "all":
            continue
        for e in load_suite(name).entries:
            group = get_workload(e.workload).group
            for item in items_of(e.id, e.workload, group, e.mode, settings,
                                 e.rules.soak_s > 0, bool(e.scenario)):
                if name not in out.setdefault(item, []):
                    out[item].append(name)
    return out


def nothing_applies(suites: list[str], settings: Settings) -> str:
    """The headline of a scorecard none of whose items the results fill."""
    filling = suites_filling(settings)
    by_suite: dict[str, list[str]] = {}
    for item in ITEMS:
        for suite in filling.get(item, []):
            by_suite.setdefault(suite, []).append(ITEM_WORDS[item])
    parts = [f"the {s} suite ({', '.join(items)})" for s, items in by_suite.items()]
    which = ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else "".join(parts)
    whose = f"the {', '.join(suites)} suite's results" if suites else "these results"
    return (f"No scorecard item applies to {whose}, so there is no overall score. The items "
            f"are filled by {which}, each also in its -full form.")


# -- the scorecard ---------------------------------------------------------------------------
def _baseline_device(baseline: ResultSet | None) -> tuple[str | None, list[Result]]:
    if baseline is None or not baseline.results:
        return None, []
    counts: dict[str, int] = {}
    for r in baseline.results:
        counts[r.device_key] = counts.get(r.device_key, 0) + 1
    key = max(counts, key=lambda k: counts[k])
    label = baseline.devices[key].label or baseline.devices[key].name
    return label, [r for r in baseline.results if r.device_key == key]


def build_scorecard(results: list[Result], label: str, baseline: ResultSet | None,
                    settings: Settings) -> Scorecard:
    base_label, base_results = _baseline_device(baseline)
    test = latest_by_entry(results)
    base = latest_by_entry(base_results) if base_results else None
    card = Scorecard(label, base_label or settings.baseline_device,
                     "run" if base_label else "template", [], {}, 0.0, "")
    lines: list[Line] = []
    for item in ("training", "finetune"):
        lines += _train_lines(item, test, base, settings, card)
    lines.append(_text_line(test, base))
    lines.append(_image_line(test, base, settings))
    comm_name = settings.section("communication")["workload"]
    lines.append(_comm_lines([d for d in test.values() if d["workload"]["name"] == comm_name],
                             [d for d in (base or {}).values()
                              if d["workload"]["name"] == comm_name], base_label, settings, card))
    lines.append(_checkpoint_line(test, base, settings))
    card.lines = lines
    sub_w = settings.subitem_weights
    for item in ITEMS:
        mine = [ln for ln in lines if ln.item == item]
        if item in ("training", "finetune"):
            card.item_scores[item] = sf.weighted_sum(
                {ln.sub_item: ln.counted for ln in mine}, sub_w)
        else:
            card.item_scores[item] = sum(ln.counted for ln in mine) / len(mine)
    card.overall = sf.weighted_mean(card.item_scores, settings.item_weights)
    card.headline = sf.headline(card.overall, card.baseline)
    card.specs = _specs(list(test.values()), settings)
    if not filled_items(test.values(), settings):
        card.applies = False
        suites = sorted({str((d.get("suite") or {}).get("name")) for d in test.values()
                         if (d.get("suite") or {}).get("name")})
        card.headline = nothing_applies(suites, settings)
    elif card.baseline_kind == "template":
        card.notes.append(f"No baseline run: scored against the template's published "
                          f"{settings.baseline_device} values (communication; basic "
                          f"specifications shown). Training, inference and checkpoint items "
                          f"need a baseline run and are NA.")
    return card


def build_scorecards(inputs: ResultSet, baseline: ResultSet | None = None,
                     settings: Settings | None = None) -> list[Scorecard]:
    """One scorecard per test device, in label order."""
    settings = settings or load_settings()
    cards = []
    for key, dev in sorted(inputs.devices.items(), key=lambda kv: kv[1].label):
        mine = [r for r in inputs.results if r.device_key == key]
        if mine:
            cards.append(build_scorecard(mine, dev.label or dev.name, baseline, settings))
    return cards
