"""`python -m maml_tf.bench.benchmark`: seconds per meta-iteration of the real training step, on synthetic tasks.

Each configuration runs in its own process (so peak RSS and the first trace are its own), see
`bench.step.measure`. With `--peers DIR` the fastest peer implementations of the same meta-step
(PyTorch / JAX scripts, run with their own interpreters, never imported) are timed in the same
run, interleaved with maml_tf (A-B-A-B with `--repeats 2`) so machine noise hits both.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Dict

from maml_tf.errors import OneLineParser
from maml_tf.bench.step import BENCHES, measure


# The fastest peer of /work/shared/peers/summary.md for each configuration: (venv, arguments);
# of its exact variants only (vmap's native batch norm drops a second-order term).
PEERS = {
    ("5w1s_q1", 2): [("torch", "--impl vmap --bn manual")],
    ("5w1s_q1", 1): [("jax", "--batching unroll")],
    ("5w1s_q15", 2): [("torch", "--impl l2l")],
    ("5w1s_q15", 1): [("torch", "--impl l2l")],
    ("20w1s_q1", 2): [("torch", "--impl loop")],
    ("20w1s_q1", 1): [("jax", "--batching unroll")],
    # 2026-12-01 rows of summary.md: the fastest there (the PyTorch loop and learn2learn are
    # within noise of each other and swap places in the run; --all_peers times both).
    ("mini_5w1s", 2): [("torch", "--impl loop"), ("torch", "--impl l2l")],
    ("mini_5w1s", 1): [("torch", "--impl loop"), ("torch", "--impl l2l")],
    ("mini_5w5s", 2): [("torch", "--impl loop"), ("torch", "--impl l2l")],
    ("mini_5w5s", 1): [("torch", "--impl l2l"), ("torch", "--impl loop")],
    ("20w5s_q5", 2): [("torch", "--impl loop"), ("torch", "--impl l2l")],
    ("20w5s_q5", 1): [("torch", "--impl l2l"), ("torch", "--impl loop")],
}


def _json_lines(cmd, env=None, cwd=None):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not rows:
        return [{"error": out.stderr[-800:], "cmd": " ".join(cmd)}]
    return rows


def run_child(name: str, args, extra=()) -> Dict:
    cmd = [sys.executable, "-m", "maml_tf.bench.benchmark", "--child", name, "--warmup", str(args.warmup),
           "--iters", str(args.iters), "--max_seconds", str(args.max_seconds)]
    for item in [*args.set, *extra]:
        cmd += ["--set", item]
    who = "maml_tf" + (f" [{','.join(extra)}]" if extra else "")
    return {"who": who, "bench": name, **_json_lines(cmd)[-1]}


def run_peer(bench: str, venv: str, peer_args: str, args) -> Dict:
    home = os.environ.get("PEERS_HOME", os.path.expanduser("~/.cache/maml-peers"))
    order = 1 if BENCHES[bench].config.get("first_order") else 2
    script = "torch_maml.py" if venv == "torch" else "jax_maml.py"
    cmd = [f"{home}/{venv}/bin/python", script, *peer_args.split(), "--config",
           BENCHES[bench].peer_config, "--order", str(order), "--warmup", str(args.warmup),
           "--iters", str(args.iters), "--max-seconds", str(args.max_seconds)]
    env = dict(os.environ, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2",
               PEERS_THREADS="2", L2L_SRC=f"{home}/l2l-src/learn2learn-0.2.0")
    return {"who": f"{venv} {peer_args}", "bench": bench, **_json_lines(cmd, env, args.peers)[-1]}


def _parse_set(items):
    """{Config field: value} of KEY=VALUE items; ValueError naming the item that is none."""
    from maml_tf.experiment.config import Config

    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not hasattr(Config(), key) or not _:
            raise ValueError(f"--set {item}: not KEY=VALUE of a training setting (maml_tf.experiment.config.Config)")
        default = getattr(Config(), key)
        kind = str if default is None else type(default)  # an Optional[str] setting
        try:
            out[key] = value.lower() in ("1", "true") if kind is bool else kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"--set {item}: {key} takes a {kind.__name__}") from None
    return out


def print_table(rows):
    cpus = sorted({r["cpu_model"] for r in rows if r.get("cpu_model")})
    print(f"\nCPU: {', '.join(cpus) or 'not recorded (rows written before cpu_model)'}")
    print(f"{'bench / who':56s} {'step median (min-max) s':>26s} {'sample s':>9s} {'total s':>8s} "
          f"{'1st call s':>10s} {'RSS MiB':>8s} {'GFLOP/s':>8s} {'CPU s/it':>8s} {'others':>6s}")
    for r in rows:
        if "error" in r:
            print(f"{r.get('bench', '?') + ' / ' + r['who']:56s} ERROR {r['error'][-200:]!r}")
        elif r["who"].startswith("maml_tf"):
            s = r["step_s"]
            print(f"{r['bench'] + ' / ' + r['who']:56s} {s['median']:9.4f} ({s['min']:.4f}-{s['max']:.4f})"
                  f" {r['sample_s']['median']:9.4f} {r['total_s']['median']:8.4f} "
                  f"{r['trace_s'] + r['first_call_s']:10.2f} {r['peak_rss_mib']:8.0f} "
                  f"{_number(r['gflops_per_s'], 8, 1)} {r['cpu_s_per_iter']:8.3f} "
                  f"{r['other_procs_cores_used']:6.2f}")
        else:
            print(f"{r['bench'] + ' / ' + r['who']:56s} {r['sec_per_iter_median']:9.4f} "
                  f"({r['sec_per_iter_min']:.4f}-{r['sec_per_iter_max']:.4f}) {'':9s} {'':8s} "
                  f"{r['warmup_total_s']:10.2f} {r['peak_rss_mib']:8.0f} {'':8s} "
                  f"{r['self_cores_used'] * r['sec_per_iter_median']:8.3f} "
                  f"{r.get('other_procs_cores_used', 0):6.2f}")


def _number(value, width: int, digits: int) -> str:
    return f"{'n/a':>{width}s}" if value is None else f"{value:{width}.{digits}f}"


def print_ratios(rows):
    """Per bench: the median over repeats of each runner's median step time, its ratio to the
    fastest peer's, and the ratio in each round (the runs' order: round i against round i)."""
    print(f"\n{'bench':24s} {'who':40s} {'s/iter':>8s} {'x peer':>7s}  per round")
    for bench in dict.fromkeys(r.get("bench") for r in rows):
        times = {}
        for r in rows:
            if r.get("bench") == bench and "error" not in r:
                t = r["step_s"]["median"] if "step_s" in r else r["sec_per_iter_median"]
                times.setdefault(r["who"], []).append(t)
        medians = {who: statistics.median(t) for who, t in times.items()}
        peers = {who: t for who, t in medians.items() if not who.startswith("maml_tf")}
        fastest = min(peers, key=peers.get, default=None)
        for who, t in medians.items():
            ratio = f"{t / peers[fastest]:7.2f}" if fastest else ""
            rounds = "/".join(f"{a / b:.2f}" for a, b in zip(times[who], times[fastest])) \
                if fastest and who != fastest else ""
            print(f"{bench:24s} {who:40s} {t:8.4f} {ratio}  {rounds}")


def main(argv=None):
    p = OneLineParser(description=__doc__.splitlines()[0])
    p.add_argument("--benches", default=",".join(BENCHES), help="comma-separated; default: all")
    p.add_argument("--set", action="append", default=[], help="Config override key=value (repeatable)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--max_seconds", type=float, default=40.0, help="per timed loop (min 5 iters)")
    p.add_argument("--repeats", type=int, default=1, help="rounds per bench (A-B-A-B with peers)")
    p.add_argument("--compare", action="append", default=[],
                   help="also time maml_tf with these overrides, e.g. onednn=on or onednn=on,intra_op_threads=0, "
                        "or switch=NAME for a reference code path of bench.step.SWITCHES (repeatable)")
    p.add_argument("--peers", default=None, help="peers directory: also time the fastest peers, "
                                                 "interleaved with maml_tf, in the same run")
    p.add_argument("--all_peers", action="store_true", help="every listed peer, not only the first (fastest)")
    p.add_argument("--out", default=None, help="append the JSON lines to this file")
    p.add_argument("--report", nargs="+", default=None,
                   help="only print the tables of earlier --out files (JSON lines)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.report:
        try:
            rows = [json.loads(line) for path in args.report for line in open(path) if line.strip()]
        except (OSError, ValueError) as err:
            sys.exit(f"error: --report: {err}")
        print_table(rows)
        print_ratios(rows)
        return
    if not args.child:
        problem = _refusal(args)
        if problem:
            sys.exit(f"error: {problem}")
    if args.child:
        switches = [item.split("=", 1)[1] for item in args.set if item.startswith("switch=")]
        sets = [item for item in args.set if not item.startswith("switch=")]
        print(json.dumps(measure(args.child, _parse_set(sets), args.warmup, args.iters,
                                 args.max_seconds, switches)), flush=True)
        return
    rows = []
    for bench in args.benches.split(","):
        order = 1 if BENCHES[bench].config.get("first_order") else 2
        peers = PEERS.get((BENCHES[bench].peer_config, order), []) if args.peers else []
        peers = peers if args.all_peers else peers[:1]
        variants = [[], *[item.split(",") for item in args.compare]]
        for _ in range(args.repeats):
            for job in [*variants, *peers]:
                row = run_child(bench, args, job) if isinstance(job, list) else run_peer(bench, *job, args)
                row["loadavg"] = open("/proc/loadavg").read().split()[0]
                print(json.dumps(row), flush=True)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps(row) + "\n")
                rows.append(row)
    print_table(rows)
    print_ratios(rows)
    failed = [r for r in rows if "error" in r]
    if failed:  # a table with an ERROR row is no result
        sys.exit(f"error: {len(failed)} of {len(rows)} timings failed (ERROR rows above)")


def _refusal(args) -> str:
    """What is wrong with the command line, checked before anything runs ('' if nothing)."""
    unknown = [b for b in args.benches.split(",") if b not in BENCHES]
    if unknown:
        return f"--benches: no configuration {', '.join(unknown)} (known: {', '.join(BENCHES)})"
    for name, value, least in (("--warmup", args.warmup, 0), ("--iters", args.iters, 1),
                               ("--repeats", args.repeats, 1)):
        if value < least:
            return f"{name} must be at least {least}, got {value}"
    if not args.max_seconds > 0:
        return f"--max_seconds must be positive, got {args.max_seconds}"
    try:
        _parse_set([i for i in args.set if not i.startswith("switch=")])
    except ValueError as err:
        return str(err)
    try:
        for item in args.compare:
            _parse_set([i for i in item.split(",") if not i.startswith("switch=")])
    except ValueError as err:
        return str(err).replace("--set", "--compare", 1)
    if args.peers:
        return _peers_refusal(args)
    return ""


def _peers_refusal(args) -> str:
    """The peers' folder and the interpreters of the configurations' peers exist (one with no
    peer, as sinusoid, is timed alone)."""
    if not os.path.isfile(os.path.join(args.peers, "torch_maml.py")):
        return f"--peers {args.peers}: no peers folder (torch_maml.py, jax_maml.py)"
    home = os.environ.get("PEERS_HOME", os.path.expanduser("~/.cache/maml-peers"))
    for bench in args.benches.split(","):
        order = 1 if BENCHES[bench].config.get("first_order") else 2
        peers = PEERS.get((BENCHES[bench].peer_config, order), [])
        for venv, _ in peers if args.all_peers else peers[:1]:
            if not os.access(f"{home}/{venv}/bin/python", os.X_OK):
                return (f"--peers: no {venv} interpreter at {home}/{venv}/bin/python (PEERS_HOME; "
                        f"made by {args.peers}/setup.sh)")
    return ""


if __name__ == "__main__":
    main()
