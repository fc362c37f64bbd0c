#!/usr/bin/env python3
"""Run score-sde's `examples/peer_bench.rs` and the Python peers in one go, alternating
(ours, then the peer, algorithm by algorithm), one thread each, and print the ratios.

    python3 scripts/bench_vs_peers.py                 # everything (~15-25 min on 2 cores)
    PARTS=numpy,diffusers python3 scripts/bench_vs_peers.py
    QUICK=1 python3 scripts/bench_vs_peers.py         # tiny sizes: a smoke test (~2 min)
    python3 scripts/bench_vs_peers.py --table OUT/results.jsonl   # only re-print the tables

Environment (defaults in brackets):
  PEERS_DIR [../shared/peers, else /work/shared/peers]  the peer harness (README.md there)
  PEERS_PYTHON [/tmp/peers-venv/bin/python]  interpreter with the peers' requirements; if the
               default is missing, a venv is made there and requirements.txt installed
  PARTS [numpy,torch64,torch32,diffusers,threads,memory]  what to run
  PROBLEMS [ring2d rand16d]  problems of the peer parts
  ALGOS [all]  e.g. "em pc-rd-langevin": only these SDE samplers in the numpy/torch parts
  THREADS [1]  OMP/MKL/OpenBLAS threads and torch threads for the peers (ours: 1 thread)
  MALLOC_TUNE [1]  the peers' glibc tuning (see the peers' README: without it every score
               call page-faults its temporaries afresh and numpy runs ~2x slower)
  N2 [100000] N16 [20000] N2_TORCH64 [N2/2] N16_TORCH64 [N16]  batch sizes, as run_all.sh
  SDE_STEPS [1000]  DPM_STEPS [10 20]  N_MEM [1000000]  THREAD_STEPS [1000]
  QUIET_MAX_WAIT [60] QUIET_THRESHOLD [0.5]  wait (s) for other processes to leave the CPUs
               before each run, as the peers' wait_quiet
  OUT [target/peer-bench/<UTC time>]  output directory: results.jsonl, tables.md
  OURS_BEFORE [unset]  a peer_bench binary built from an earlier commit: each of our runs is
               preceded by the same run of that binary, and a before/after table is printed
               (a change's speed measured in one run beside the peers)

Ours is built with `cargo build --release --example peer_bench` (and `--features rayon`
for the thread scaling part). Every JSON line records `other_cores_busy`: the average number
of cores other processes kept busy during the timed region (> 0.3: the wall time is
inflated by sharing the cores). Ratios are given by wall time and by CPU time; on a quiet
machine they agree, on a shared one the CPU-time ratio is the more robust.
"""
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def env_int(k, d):
    return int(os.environ.get(k, d))


QUICK = os.environ.get("QUICK", "0") == "1"
N2 = env_int("N2", 2000 if QUICK else 100000)
N16 = env_int("N16", 1000 if QUICK else 20000)
N2_T64 = env_int("N2_TORCH64", N2 // 2)
N16_T64 = env_int("N16_TORCH64", N16)
SDE_STEPS = env_int("SDE_STEPS", 50 if QUICK else 1000)
DPM_STEPS = [int(s) for s in os.environ.get("DPM_STEPS", "10 20").split()]
N_MEM = env_int("N_MEM", 20000 if QUICK else 1000000)
THREAD_STEPS = env_int("THREAD_STEPS", 50 if QUICK else 1000)
THREADS = os.environ.get("THREADS", "1")
PARTS = os.environ.get("PARTS", "numpy,torch64,torch32,diffusers,threads,memory").split(",")
PROBLEMS = os.environ.get("PROBLEMS", "ring2d rand16d").split()
ALGOS = os.environ.get("ALGOS", "").split()
QUIET_MAX_WAIT = float(os.environ.get("QUIET_MAX_WAIT", 0 if QUICK else 60))
QUIET_THRESHOLD = float(os.environ.get("QUIET_THRESHOLD", 0.5))


def peers_dir():
    d = os.environ.get("PEERS_DIR")
    if d:
        return d
    for c in (os.path.join(REPO, "..", "shared", "peers"), "/work/shared/peers"):
        if os.path.exists(os.path.join(c, "problem.py")):
            return os.path.abspath(c)
    sys.exit("peer harness not found: set PEERS_DIR")


def peers_python(pdir):
    py = os.environ.get("PEERS_PYTHON")
    if py:
        return py
    venv = "/tmp/peers-venv"
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        print(f"+ creating {venv} (pip install -r {pdir}/requirements.txt)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "-r", os.path.join(pdir, "requirements.txt")], check=True)
    return py


def base_env():
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": THREADS, "MKL_NUM_THREADS": THREADS, "OPENBLAS_NUM_THREADS": THREADS,
                "RAYON_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"})
    if os.environ.get("MALLOC_TUNE", "1") == "1":
        env.update({"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "1073741824",
                    "MALLOC_TOP_PAD_": "268435456"})
    # as run_all.sh: numpy/scipy pick their OpenBLAS kernel themselves
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    return env


def busy_jiffies():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle


def wait_quiet():
    """Wait until other processes keep < QUIET_THRESHOLD cores busy (or QUIET_MAX_WAIT s)."""
    hz = os.sysconf("SC_CLK_TCK")
    t0 = time.time()
    while True:
        b0 = busy_jiffies()
        time.sleep(1.0)
        busy = (busy_jiffies() - b0) / hz
        if busy < QUIET_THRESHOLD or time.time() - t0 >= QUIET_MAX_WAIT:
            return busy
        time.sleep(4.0)


def build():
    out = {}
    for feat, name in (([], "peer_bench"), (["--features", "rayon"], "peer_bench_rayon")):
        cmd = ["cargo", "build", "--release", "--locked", "--example", "peer_bench"] + feat
        print("+ " + " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, cwd=REPO, check=True)
        tgt = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
        dst = os.path.join(OUT, name)
        shutil.copy2(os.path.join(tgt, "release", "examples", "peer_bench"), dst)
        out[name] = dst
    return out


def run(cmd, cwd, results, label):
    busy = wait_quiet()
    print(f"+ [{label}] (others busy {busy:.2f} cores before) " + " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.run(cmd, cwd=cwd, env=base_env(), stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        print(f"! exit {p.returncode}: {' '.join(cmd)}", file=sys.stderr)
    recs = []
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            r["label"] = label
            recs.append(r)
            results.write(json.dumps(r) + "\n")
            results.flush()
    return recs


def jobs(pdir, py, bins):
    """(label, command, cwd) in alternating order: ours, then the peer, per algorithm."""
    ours = bins["peer_bench"]
    prob = lambda name: os.path.join(pdir, "problems", f"{name}.json")  # noqa: E731
    out = []

    before = os.environ.get("OURS_BEFORE")
    count = [0]

    def pair(name, n, steps, algos, dtype, peer_cmd, ours_algos=None):
        for algo, peer_algo in zip(algos, ours_algos or algos):
            if ALGOS and isinstance(algo, str) and algo not in ALGOS:
                continue
            k = count[0]
            count[0] += 1
            args = ["--problem", prob(name), "--n", str(n), "--steps", *map(str, steps),
                    "--algo", *([algo] if isinstance(algo, str) else algo), "--dtype", dtype]
            if before:
                out.append((f"before#{k}", [before, *args], REPO))
            out.append((f"ours#{k}", [ours, *args], REPO))
            out.append((f"peer#{k}", peer_cmd(peer_algo), pdir))

    for name, n, n64 in (("ring2d", N2, N2_T64), ("rand16d", N16, N16_T64)):
        if name not in PROBLEMS:
            continue
        if "numpy" in PARTS:
            pair(name, n, [SDE_STEPS], ["em", "pc-rd-langevin", "pc-em-langevin"], "float64",
                 lambda a: [py, "peer_numpy_sde.py", "--problem", name, "--n", str(n), "--steps", str(SDE_STEPS),
                            "--algo", a], ours_algos=["em", "pc-rd", "pc-em"])
        if "torch64" in PARTS:
            pair(name, n64, [SDE_STEPS], ["em", "pc-rd-langevin", "pc-em-langevin"], "float64",
                 lambda a: [py, "peer_torch_sde.py", "--problem", name, "--n", str(n64), "--steps", str(SDE_STEPS),
                            "--algo", a, "--dtype", "float64", "--threads", THREADS],
                 ours_algos=["em", "pc-rd", "pc-em"])
        if "torch32" in PARTS:
            pair(name, n, [SDE_STEPS], ["em", "pc-rd-langevin"], "float32",
                 lambda a: [py, "peer_torch_sde.py", "--problem", name, "--n", str(n), "--steps", str(SDE_STEPS),
                            "--algo", a, "--dtype", "float32", "--threads", THREADS],
                 ours_algos=["em", "pc-rd"])
        if "diffusers" in PARTS:
            pair(name, n, DPM_STEPS, [["dpmsolver++2m", "dpmsolver++2m/quadratic", "dpmsolver++2m/logsnr"]],
                 "float32",
                 lambda a: [py, "peer_diffusers.py", "--problem", name, "--n", str(n), "--steps",
                            *map(str, DPM_STEPS), "--scheduler", "dpmsolver++2m", "--threads", THREADS],
                 ours_algos=["dpmsolver++2m"])
    if "threads" in PARTS:
        rb = bins["peer_bench_rayon"]
        for _ in range(2):
            for t in (1, 2):
                out.append((f"threads{t}", [rb, "--problem", prob("ring2d"), "--n", str(N2), "--steps",
                                            str(THREAD_STEPS), "--algo", "em", "--dtype", "float64",
                                            "--threads", str(t), "--metrics", "0"], REPO))
    if "memory" in PARTS:
        for algo in ("em", "pc-rd-langevin", "dpmsolver++2m/quadratic"):
            out.append(("memory", [ours, "--problem", prob("ring2d"), "--n", str(N_MEM), "--steps", "10",
                                   "--algo", algo, "--dtype", "float64", "--warmup-steps", "0",
                                   "--repeats", "1", "--metrics", "0"], REPO))
    return out


# ------------------------------------------------------------------ tables

PEER_ALGO = {"pc-rd-langevin": "pc-rd-langevin", "pc-em-langevin": "pc-em-langevin", "em": "em"}


def fmt(v, spec=".3g"):
    if v is None:
        return "—"
    return format(v, spec)


def cpu_rate(r):
    c = r.get("config", {}).get("cpu_s")
    return r["N"] * r["NFE"] / c if c else None


def tables(recs):
    lines = []
    # "ours#k" is compared with "peer#k", the peer run right after it
    ours = [r for r in recs if r.get("label", "").startswith("ours#")]
    peers = [r for r in recs if r.get("label", "").startswith("peer#")]
    pid = lambda r: r["label"].split("#")[1]  # noqa: E731
    lines.append("### Throughput and quality, one thread (ours / peer)\n")
    lines.append("| problem | algorithm | dtype | N | steps | NFE | peer | ours S·NFE/s | peer S·NFE/s | "
                 "ratio (wall) | ratio (CPU) | SW1 ours / peer | loglik gap ours / peer | mean err ours / peer | "
                 "weight TV ours / peer | others busy ours / peer |")
    lines.append("|" + "---|" * 16)
    for o in ours:
        if o["algorithm"].startswith("dpmsolver++2m"):
            cands = [p for p in peers if pid(p) == pid(o) and p["algorithm"] == "dpmsolver++2m"
                     and p["problem"] == o["problem"] and p["steps"] == o["steps"] and p["N"] == o["N"]]
        else:
            cands = [p for p in peers if pid(p) == pid(o) and p["algorithm"] == PEER_ALGO.get(o["algorithm"])
                     and p["problem"] == o["problem"] and p["steps"] == o["steps"] and p["dtype"] == o["dtype"]
                     and p["N"] == o["N"]]
        for p in cands:
            rw = o["sample_nfe_per_s"] / p["sample_nfe_per_s"]
            co, cp = cpu_rate(o), cpu_rate(p)
            rc = co / cp if co and cp else None
            lines.append(
                f"| {o['problem']} | {o['algorithm']} | {o['dtype']} | {o['N']} | {o['steps']} | {o['NFE']} / {p['NFE']} "
                f"| {p['peer']} | {fmt(o['sample_nfe_per_s'])} | {fmt(p['sample_nfe_per_s'])} | **{rw:.1f}×** | "
                f"{fmt(rc, '.1f')}× | {fmt(o['sw1'], '.4f')} / {fmt(p['sw1'], '.4f')} | "
                f"{fmt(o['loglik_gap'], '+.4f')} / {fmt(p['loglik_gap'], '+.4f')} | "
                f"{fmt(o['mean_err'], '.4f')} / {fmt(p['mean_err'], '.4f')} | "
                f"{fmt(o['weight_tv'], '.4f')} / {fmt(p['weight_tv'], '.4f')} | "
                f"{fmt(o['config'].get('other_cores_busy'), '.2f')} / {fmt(p['config'].get('other_cores_busy'), '.2f')} |")
    befores = [r for r in recs if r.get("label", "").startswith("before#")]
    if befores:
        lines.append("\n### Before / after (OURS_BEFORE vs this build, the same runs back to back)\n")
        lines.append("| problem | algorithm | dtype | N | steps | before S·NFE/s | after S·NFE/s | after/before (wall) | "
                     "after/before (CPU) | others busy before / after |")
        lines.append("|" + "---|" * 10)
        for b in befores:
            for o in ours:
                if (pid(o) == pid(b) and o["algorithm"] == b["algorithm"] and o["steps"] == b["steps"]
                        and o["N"] == b["N"] and o["dtype"] == b["dtype"]):
                    cb, co = cpu_rate(b), cpu_rate(o)
                    rc = co / cb if co and cb else None
                    lines.append(
                        f"| {o['problem']} | {o['algorithm']} | {o['dtype']} | {o['N']} | {o['steps']} | "
                        f"{fmt(b['sample_nfe_per_s'])} | {fmt(o['sample_nfe_per_s'])} | "
                        f"**{o['sample_nfe_per_s'] / b['sample_nfe_per_s']:.3f}** | {fmt(rc, '.3f')} | "
                        f"{fmt(b['config'].get('other_cores_busy'), '.2f')} / "
                        f"{fmt(o['config'].get('other_cores_busy'), '.2f')} |")
    th = [r for r in recs if r.get("label", "").startswith("threads")]
    if th:
        lines.append("\n### Threads (feature `rayon`, ring2d, Euler–Maruyama, float64)\n")
        lines.append("| run | threads | N | steps | wall s | S·NFE/s | CPU s | others busy |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for i, r in enumerate(th):
            lines.append(f"| {i + 1} | {r['config']['threads']} | {r['N']} | {r['steps']} | {r['wall_s']:.3f} | "
                         f"{fmt(r['sample_nfe_per_s'])} | {fmt(r['config'].get('cpu_s'), '.2f')} | "
                         f"{fmt(r['config'].get('other_cores_busy'), '.2f')} |")
        one = [r["wall_s"] for r in th if r["config"]["threads"] == 1]
        two = [r["wall_s"] for r in th if r["config"]["threads"] == 2]
        if one and two:
            pairs = [a / b for a, b in zip(one, two)]
            lines.append(f"\nSpeed-up 2 threads / 1 thread: per pair {', '.join(f'{x:.2f}×' for x in pairs)}; "
                         f"best walls {min(one) / min(two):.2f}×")
    mem = [r for r in recs if r.get("label") == "memory"]
    if mem:
        lines.append("\n### Peak resident memory (ring2d, float64, VmHWM before the metrics)\n")
        lines.append("| algorithm | N | one state array (N·D·8) MB | peak RSS MB | RSS at start MB | "
                     "(peak − start) / state array |")
        lines.append("|---|---|---|---|---|---|")
        for r in mem:
            c = r["config"]
            st = c["state_array_bytes"] / 1e6
            pk = c["peak_rss_kb"] * 1024 / 1e6
            s0 = (c.get("rss_at_start_kb") or 0) * 1024 / 1e6
            lines.append(f"| {r['algorithm']} | {r['N']} | {st:.1f} | {pk:.1f} | {s0:.1f} | {(pk - s0) / st:.2f} |")
    return "\n".join(lines) + "\n"


def main():
    global OUT
    if len(sys.argv) >= 3 and sys.argv[1] == "--table":
        with open(sys.argv[2]) as f:
            print(tables([json.loads(l) for l in f if l.strip()]))
        return
    OUT = os.environ.get("OUT") or os.path.join(REPO, "target", "peer-bench", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    os.makedirs(OUT, exist_ok=True)
    pdir = peers_dir()
    py = peers_python(pdir)
    bins = build()
    recs = []
    with open(os.path.join(OUT, "results.jsonl"), "w") as results:
        meta = {"label": "meta", "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "uname": " ".join(os.uname()), "cpu": cpu_model(),
                "rustc": subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip(),
                "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                      text=True).stdout.strip(),
                "peers_python": py, "threads": THREADS, "quick": QUICK}
        results.write(json.dumps(meta) + "\n")
        for label, cmd, cwd in jobs(pdir, py, bins):
            recs += run(cmd, cwd, results, label)
    t = tables(recs)
    with open(os.path.join(OUT, "tables.md"), "w") as f:
        f.write(t)
    print(t)
    print(f"wrote {OUT}/results.jsonl and tables.md", file=sys.stderr)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


if __name__ == "__main__":
    main()
