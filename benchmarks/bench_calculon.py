"""Calculon's layout search beside factorysim's, on Llama-3 405B and H100 (figures, not pass/fail).

Calculon (Isaev et al., SC'23; github.com/calculon-ai/calculon) is not a factorysim dependency: nothing in
the tests or CI needs it, and this script stops with a message saying how to get it when it is absent.
Set it up once, outside the project, in its own virtual environment:

    git clone https://github.com/calculon-ai/calculon /tmp/calculon-src
    python3 -m venv /tmp/calculon-venv
    /tmp/calculon-venv/bin/pip install -e /tmp/calculon-src numpy pandas psutil

then run, from the factorysim checkout with factorysim's environment active:

    CALCULON_DIR=/tmp/calculon-src CALCULON_PYTHON=/tmp/calculon-venv/bin/python \\
        python benchmarks/bench_calculon.py                  16,384 and 1,024 chips, 2 workers, 3 runs each
    python benchmarks/bench_calculon.py --chips 16384 --sample 400 --repeat 3 --workers 2
    python benchmarks/bench_calculon.py validate            the sampler against a complete Calculon search

(--calculon DIR and --calculon-python PATH do the same as the two variables.)

What is compared. Both tools search the layouts of one model on one cluster for the best training
throughput, each with its own model of a step:

- factorysim `search` (in process, as `factorysim search SCENARIO --workers N` runs it) on
  scenarios/llama3-405b-16k-h100.toml, and for 1,024 chips the same file on 128 servers without spares
  (the file's TP8 PP16 with dp 8 as its own layout). Its knobs: tp, cp, pp, dp, ep, micro_batch,
  interleave, sequence_parallel, recompute (none/selective/full), three pipeline stage splits, zero 0-3,
  tp_overlap. A layout is refused by the earliest rule that decides it (divisibility, the scale-up
  domain, memory), and one whose compute-only floor cannot reach the top N is not estimated: "tried"
  counts every layout enumerated, "estimated" those that ran the step model.
- Calculon `llm-optimal-execution` (loe) on the Llama-3 405B file its repository ships (llama3-405b.json:
  hidden 16,384, FFN 53,248, 126 blocks, 128 heads, 8K sequences; multi-head attention, as Calculon has no
  grouped-query attention) and its H100 system (systems/h100_80g_nvl8.json: NVLink 8-GPU servers, a 50 GB/s
  per-GPU fabric, 512 GiB host memory for offload), float16 (the file has no bfloat16; same bytes and peak),
  a batch of 2,048 sequences. Its knobs, per execution: tp, pp, dp (fills the chips), interleave,
  micro-batch, recompute (full/attn_only/none), optimizer sharding, TP communication (ar/p2p_rs_ag/rs_ag),
  sequence-parallel all-gather redo, DP overlap, TP overlap (none/ring/pipe), weight, activation and
  optimizer offload, and which network carries tp, pp and dp. There is no cp, no uneven stages and no
  pruning: every execution runs the whole model (memory is checked after), which is what its count means.
  Without -m, as here: with -m (--mbs-break) the count depends on the results.

Calculon's complete 405B search is about a million executions at a tenth of a second each, hours on two
cores, so its rate is measured on a uniform random sample of its executions (seeded, different in each
run), evaluated the way its search evaluates one (Llm, compile, run, stats) in a pool of the same number of
workers, pool start-up included as Calculon's own rate includes it; the whole-space time is extrapolated
from that rate and labelled so. The enumeration is checked against Calculon's own count (`loe -d`) before
anything is timed, and `validate` compares the sampled rate with the rate Calculon prints for a complete
search small enough to run (128 chips, batch 1, no overlap: 1,976 executions).
Runs of the two tools alternate, so both see the same load on a shared machine; medians are quoted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import machine

ROOT = Path(__file__).resolve().parents[1] / "scenarios"
L405 = ROOT / "llama3-405b-16k-h100.toml"
BATCH = 2048  # sequences, the scenario's global batch
DTYPE = "float16"
# factorysim overrides giving the same model on fewer chips: the file's TP8 PP16, dp filling the servers
SMALLER = {1024: ["cluster.nodes=128", "cluster.spare_nodes=0", "parallelism.dp=8"]}

HOW_TO_GET = (
    "Calculon is not installed with factorysim. Get it in its own environment:\n"
    "  git clone https://github.com/calculon-ai/calculon /tmp/calculon-src\n"
    "  python3 -m venv /tmp/calculon-venv\n"
    "  /tmp/calculon-venv/bin/pip install -e /tmp/calculon-src numpy pandas psutil\n"
    "then: CALCULON_DIR=/tmp/calculon-src CALCULON_PYTHON=/tmp/calculon-venv/bin/python "
    "python benchmarks/bench_calculon.py"
)

# Run by Calculon's interpreter with the checkout as its working directory. Prints one JSON line.
CHILD = r'''
import itertools, json, logging, multiprocessing as mp, random, sys, time
import calculon
from calculon.llm import Llm
from calculon.system import System

cfg = json.loads(sys.argv[1])
app = Llm.Application(calculon.io.read_json_file(cfg["model"]))
syst = System(calculon.io.read_json_file(cfg["system"]))
N, DT = cfg["chips"], cfg["datatype"]
ON_OFF, OFF = (True, False), (False,)


def executions():
    """Every execution loe's search runs (without -m), as a tuple of its knobs."""
    nets, host = syst.num_networks, syst.mem2.capacity > 0
    offload = ON_OFF if host else OFF
    for tp in Llm.get_all_tensor_parallelisms(N, app.hidden, app.attn_heads):
        for pp in Llm.get_all_pipeline_parallelisms(N, tp, app.num_blocks):
            dp = Llm.get_data_parallelism(N, tp, pp)
            if dp > cfg["max_batch"]:
                continue
            batch = cfg["max_batch"] // dp * dp
            mbs = list(Llm.get_valid_microbatch_sizes(app.seq_size, tp, dp, batch, pp))
            nets_of = [range(nets) if d > 1 else (0,) for d in (tp, pp, dp)]
            dpo = ON_OFF if dp > 1 and cfg["dp_overlap"] else OFF
            tpo = ("none", "ring", "pipe") if tp > 1 and cfg["tp_overlap"] else ("none",)
            for v in Llm.get_valid_pipeline_interleavings(app.num_blocks, pp):
                for rc in ("full", "attn_only", "none"):
                    act = offload if rc != "full" else OFF
                    for shard in ON_OFF if dp > 1 else OFF:
                        for comm in ("ar", "p2p_rs_ag", "rs_ag"):
                            redo = ON_OFF if Llm.can_redo_ag(comm, rc) else OFF
                            for rest in itertools.product(redo, dpo, tpo, offload, act, offload, mbs, *nets_of):
                                yield (tp, pp, dp, v, batch, rc, shard, comm) + rest


def as_json(e):
    tp, pp, dp, v, batch, rc, shard, comm, redo, dpo, tpo, wo, ao, oo, mb, tn, pn, dn = e
    return {
        "num_procs": N, "tensor_par": tp, "pipeline_par": pp, "data_par": dp, "tensor_par_net": tn,
        "pipeline_par_net": pn, "data_par_net": dn, "batch_size": batch, "microbatch_size": mb,
        "datatype": DT, "fused_activation": True, "attention_type": "multihead", "activation_recompute": rc,
        "pipeline_interleaving": v, "optimizer_sharding": shard, "tensor_par_comm_type": comm,
        "tensor_par_overlap": tpo, "seq_par_ag_redo": redo, "data_par_overlap": dpo, "weight_offload": wo,
        "activations_offload": ao, "optimizer_offload": oo, "training": True,
    }


def run_one(e):
    t = time.perf_counter()
    try:
        model = Llm(app, logging.Logger("sub"))
        model.compile(syst, Llm.Execution.from_json(as_json(e)))
        model.run(syst)
        rate = model.get_stats_json(False)["sample_rate"]
    except Llm.Error:
        rate = None
    return rate, time.perf_counter() - t


total = sum(1 for _ in executions())
out = {"total": total}
if cfg["sample"]:
    k = min(cfg["sample"], total)
    chosen = set(random.Random(cfg["seed"]).sample(range(total), k))
    picked = [e for i, e in enumerate(executions()) if i in chosen]
    t = time.perf_counter()
    with mp.Pool(cfg["workers"]) as pool:
        rates = pool.map(run_one, picked, chunksize=4)
    wall = time.perf_counter() - t
    good = [dt for r, dt in rates if r is not None]
    bad = [dt for r, dt in rates if r is None]
    out.update(sampled=k, wall=wall, good=len(good), good_s=sum(good), bad_s=sum(bad))
print(json.dumps(out))
'''


def fail(msg: str) -> None:
    print(msg, file=sys.stderr)
    raise SystemExit(2)


def find_calculon(args: argparse.Namespace) -> tuple[Path, str]:
    where = args.calculon or os.environ.get("CALCULON_DIR")
    if not where:
        fail("bench_calculon: no Calculon checkout given (--calculon DIR or CALCULON_DIR).\n" + HOW_TO_GET)
    root = Path(where).expanduser().resolve()
    if not (root / "calculon" / "llm" / "optimal_execution.py").is_file():
        fail(
            f"bench_calculon: {root} is not a Calculon checkout (no calculon/llm/optimal_execution.py).\n" + HOW_TO_GET
        )
    py = args.calculon_python or os.environ.get("CALCULON_PYTHON") or sys.executable
    probe = subprocess.run(
        [py, "-c", "import calculon.llm, numpy, pandas, psutil"], cwd=root, capture_output=True, text=True
    )
    if probe.returncode:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        fail(f"bench_calculon: {py} cannot run Calculon from {root} ({last}); "
             "set CALCULON_PYTHON to the environment it is installed in.\n" + HOW_TO_GET)  # fmt: skip
    for name in (args.model, args.system):
        if not (root / name).is_file():
            fail(f"bench_calculon: {root / name} does not exist; --model and --system name files in the checkout")
    return root, py


def calculon_child(root: Path, py: str, cfg: dict) -> dict:
    # `-c` in the checkout: its `calculon` package is what imports (a script in the checkout's parent
    # directory would import the checkout itself, a namespace package, instead)
    r = subprocess.run([py, "-c", CHILD, json.dumps(cfg)], cwd=root, capture_output=True, text=True)
    if r.returncode:
        fail(f"bench_calculon: Calculon's run failed:\n{r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def calculon_loe(root: Path, py: str, chips: int, batch: int, workers: int, *extra: str) -> dict:
    """Calculon's own command line; its log lines parsed (Total executions, Calculation rate)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [py, "bin/calculon", "loe", *extra, ARGS.model, str(chips), str(batch), DTYPE, ARGS.system,
               str(Path(tmp) / "out.json"), "-c", str(workers), "-n"]  # fmt: skip
        t = time.perf_counter()
        r = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
        wall = time.perf_counter() - t
    text = r.stdout + r.stderr
    total = re.search(r"Total executions: (\d+)", text)
    rate = re.search(r"Calculation rate: ([\d.]+)", text)
    good = re.search(r"Good executions: (\d+)", text)
    if r.returncode or not total:
        fail(f"bench_calculon: `{' '.join(cmd)}` failed:\n{text.strip()[-2000:]}")
    return {"total": int(total[1]), "rate": float(rate[1]) if rate else None, "good": int(good[1]), "wall": wall}


def factorysim_search(chips: int, workers: int) -> dict:
    from factorysim import load_scenario
    from factorysim.explore import LocalRunner, Request
    from factorysim.explore.search import search

    s = load_scenario(L405, SMALLER.get(chips, []))
    if s.cluster.job_chips != chips:
        fail(
            f"bench_calculon: no factorysim scenario of {chips:,} chips here (have 16,384 and {', '.join(map(str, SMALLER))})"
        )
    t = time.perf_counter()
    r = search(s, Request(), LocalRunner(workers))
    wall = time.perf_counter() - t
    return {"wall": wall, "tried": r.layouts_tried, "estimated": r.estimated, "pruned": r.pruned,
            "refused": sum(r.layout_refused.values()), "placements": r.placements,
            "best": r.best[0].tokens_per_s}  # fmt: skip


def compare(root: Path, py: str, chips: int) -> None:
    w = ARGS.workers
    base = {"model": ARGS.model, "system": ARGS.system, "chips": chips, "datatype": DTYPE, "max_batch": BATCH,
            "workers": w, "tp_overlap": True, "dp_overlap": True, "sample": 0, "seed": 0}  # fmt: skip
    own = calculon_loe(root, py, chips, BATCH, w, "-d")["total"]
    mine = calculon_child(root, py, base)["total"]
    if own != mine:
        fail(f"bench_calculon: Calculon's loe -d counts {own:,} executions, the sampler {mine:,}: "
             "this Calculon enumerates differently; the sampler must follow it before its rate means anything")  # fmt: skip
    fs, cs = [], []
    for i in range(ARGS.repeat):
        fs.append(factorysim_search(chips, w))
        cs.append(calculon_child(root, py, {**base, "sample": ARGS.sample, "seed": 1000 * chips + i}))
        print(f"  run {i + 1}: factorysim {fs[-1]['wall']:.1f} s; Calculon sample of {cs[-1]['sampled']} "
              f"in {cs[-1]['wall']:.1f} s", flush=True)  # fmt: skip
    med = statistics.median
    f_wall = med(r["wall"] for r in fs)
    f_est = med(r["estimated"] / r["wall"] for r in fs)
    f_tried = med(r["tried"] / r["wall"] for r in fs)
    c_rate = med(r["sampled"] / r["wall"] for r in cs)
    c_whole = own / c_rate
    n_good = sum(r["good"] for r in cs)
    n_bad = sum(r["sampled"] - r["good"] for r in cs)
    c_good_ms = 1e3 * sum(r["good_s"] for r in cs) / max(n_good, 1)
    c_bad_ms = 1e3 * sum(r["bad_s"] for r in cs) / max(n_bad, 1)
    c_fit = n_good / (n_good + n_bad)
    f = fs[0]
    f_runs = ", ".join(f"{r['wall']:.1f}" for r in fs)
    c_runs = ", ".join(f"{r['sampled'] / r['wall']:.1f}" for r in cs)
    print(f"Llama-3 405B on {chips:,} H100, {w} workers, medians of {ARGS.repeat} alternating runs")
    print(f"  factorysim search: {f_wall:.1f} s for the whole space (runs {f_runs}); "
          f"{f['tried']:,} layouts tried on {f['placements']} placements: {f['estimated']:,} estimated, "
          f"{f['pruned']:,} not estimated (compute floor), {f['refused']:,} refused by rule; "
          f"{f_est:,.0f} estimates/s ({f_est / w:,.0f} per core), {f_tried:,.0f} layouts tried/s; "
          f"best {f['best']:,.0f} tokens/s")  # fmt: skip
    print(f"  Calculon loe: {own:,} executions in its space (loe -d; the sampler agrees); "
          f"{c_rate:.1f} executions/s ({c_rate / w:.1f} per core) on samples of {cs[0]['sampled']} "
          f"(runs {c_runs}/s), {c_fit:.0%} of them fit "
          f"({c_good_ms:.0f} ms each in a worker; {c_bad_ms:.1f} ms for one refused); "
          f"whole space, extrapolated: {c_whole / 3600:.1f} h")  # fmt: skip
    print(f"  ratio factorysim/Calculon: {f_est / c_rate:,.0f}x in full evaluations per second of search "
          f"(estimates vs executions), "
          f"{f_tried / c_rate:,.0f}x in layouts tried per second, "
          f"{c_whole / f_wall:,.0f}x in time to search each tool's whole space")  # fmt: skip


def validate(root: Path, py: str) -> None:
    """A complete Calculon search small enough to finish: its printed rate against the sampler's."""
    w = ARGS.workers
    chips, batch = 128, 1
    cfg = {"model": ARGS.model, "system": ARGS.system, "chips": chips, "datatype": DTYPE, "max_batch": batch,
           "workers": w, "tp_overlap": False, "dp_overlap": False, "sample": ARGS.sample, "seed": 7}  # fmt: skip
    before = calculon_child(root, py, cfg)  # the sampler before and after the complete run: same load
    full = calculon_loe(root, py, chips, batch, w, "--no-tp-overlap", "--no-dp-overlap")
    after = calculon_child(root, py, {**cfg, "seed": 8})
    if full["total"] != before["total"]:
        fail(f"bench_calculon: loe ran {full['total']:,} executions, the sampler enumerates {before['total']:,}")
    rates = [r["sampled"] / r["wall"] for r in (before, after)]
    fit = (before["good"] + after["good"]) / (before["sampled"] + after["sampled"])
    print(f"validate, Llama-3 405B on {chips} H100, batch {batch}, no overlap, {w} workers: Calculon loe ran all "
          f"{full['total']:,} executions in {full['wall']:.1f} s, printing {full['rate']:.1f}/s "
          f"({full['good'] / full['total']:.0%} fit); the sampler, before and after: {rates[0]:.1f}/s and "
          f"{rates[1]:.1f}/s on {before['sampled']} each ({fit:.0%} fit); "
          f"sampled/complete {rates[0] / full['rate']:.2f} and {rates[1] / full['rate']:.2f}")  # fmt: skip


def main() -> None:
    global ARGS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", nargs="?", choices=["compare", "validate"], default="compare")
    p.add_argument("--calculon", metavar="DIR", help="Calculon checkout (default: $CALCULON_DIR)")
    p.add_argument("--calculon-python", metavar="PATH", help="Python with Calculon's needs (default: $CALCULON_PYTHON)")
    p.add_argument("--chips", default="16384,1024", help="cluster sizes, comma-separated (16384, 1024)")
    p.add_argument("--workers", type=int, default=2, help="worker processes for each tool (default 2)")
    p.add_argument("--sample", type=int, default=1500, help="Calculon executions timed per run (default 1500)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each tool, alternating (default 3)")
    p.add_argument("--model", default="llama3-405b.json", help="Calculon application file, in the checkout")
    p.add_argument("--system", default="systems/h100_80g_nvl8.json", help="Calculon system file, in the checkout")
    ARGS = p.parse_args()
    root, py = find_calculon(ARGS)
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    print(f"machine: {machine()}; Calculon at {root} ({head.stdout.strip() or 'not a git work tree'})")
    if ARGS.what == "validate":
        validate(root, py)
        return
    sizes = [int(c) for c in ARGS.chips.split(",") if c.strip().isdigit()]
    if not sizes or any(c != 16384 and c not in SMALLER for c in sizes):
        fail(f"bench_calculon: --chips {ARGS.chips!r}: allowed are 16384 and {', '.join(map(str, SMALLER))}")
    for chips in sizes:
        compare(root, py, chips)


ARGS: argparse.Namespace

if __name__ == "__main__":
    main()
