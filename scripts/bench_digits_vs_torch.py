#!/usr/bin/env python3
"""Race score-sde's candle digits networks against the same networks in PyTorch, on CPU:
training steps per second and sampling images per second at equal NFE, one and two threads,
ours and PyTorch alternating in one run; then a profile of our training step and the U-Net's
matrix products alone on both sides (the part of the difference that is the GEMM library).

    python3 scripts/bench_digits_vs_torch.py            # ~15 min on 2 cores
    QUICK=1 python3 scripts/bench_digits_vs_torch.py    # tiny sizes: a smoke test
    python3 scripts/bench_digits_vs_torch.py --table OUT/results.jsonl   # re-print the tables

Ours: `examples/bench_digits.rs` (built with `cargo build --release --features candle`);
PyTorch: `scripts/torch_digits.py`. Before timing, the script checks that the networks are
the same: our seeded initial weights and outputs (`bench_digits --export-init`) are loaded
into the PyTorch modules, whose outputs must agree to 1e-10 (float64).

Matched: the layers, sizes, parameter names and initialisation scheme (see torch_digits.py);
the optimiser (AdamW, lr 2e-3 cosine, betas 0.9/0.999, eps 1e-8, no weight decay), batch
(128), the per-step work (draw a batch, noise it, forward, loss, backward, AdamW step, EMA
update); sampling with DPM-Solver++ 2M, log-SNR grid, 20 steps = 20 NFE, float32.

Environment (defaults in brackets): PEERS_PYTHON [/tmp/peers-venv/bin/python], NETS
[unet mlp], THREADS [1 2], REPEATS [2], QUIET_MAX_WAIT [60], QUIET_THRESHOLD [0.5],
MALLOC_TUNE [1] (the peers' glibc settings, for both sides), OUT
[target/digits-bench/<UTC time>]. Thread counts: RAYON_NUM_THREADS for ours (candle reads
it), torch.set_num_threads for PyTorch, OMP/MKL_NUM_THREADS for both.
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_vs_peers as bvp  # noqa: E402  (wait_quiet, base_env, cpu_model)

QUICK = os.environ.get("QUICK", "0") == "1"
NETS = os.environ.get("NETS", "unet mlp").split()
THREADS = os.environ.get("THREADS", "1 2").split()
REPEATS = int(os.environ.get("REPEATS", "1" if QUICK else "2"))
PY = os.environ.get("PEERS_PYTHON", "/tmp/peers-venv/bin/python")
# Steps per timed training run and images per sampling run (each run takes ~5-20 s here).
TRAIN_STEPS = {"unet": 6 if QUICK else 60, "mlp": 20 if QUICK else 600}
SAMPLE_N = {"unet": 32 if QUICK else 256, "mlp": 64 if QUICK else 2048}
SAMPLE_STEPS = 20


def env_for(threads):
    env = bvp.base_env()
    env.update({"RAYON_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                "OPENBLAS_NUM_THREADS": threads})
    return env


def run(cmd, env, results, label):
    busy = bvp.wait_quiet()
    print(f"+ [{label}] (others busy {busy:.2f} cores before) {' '.join(cmd)}", file=sys.stderr, flush=True)
    p = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        print(f"! exit {p.returncode}", file=sys.stderr)
    recs = []
    for line in p.stdout.splitlines():
        if line.strip().startswith("{"):
            r = json.loads(line)
            r["label"] = label
            recs.append(r)
            results.write(json.dumps(r) + "\n")
            results.flush()
    return recs


def build():
    cmd = ["cargo", "build", "--release", "--locked", "--features", "candle", "--example", "bench_digits"]
    print("+ " + " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, cwd=REPO, check=True)
    tgt = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    return os.path.join(tgt, "release", "examples", "bench_digits")


def jobs(ours):
    """(label, command, threads): ours then PyTorch, for every setting, REPEATS times."""
    out = []
    torch_py = os.path.join(HERE, "torch_digits.py")
    for rep in range(REPEATS):
        for net in NETS:
            for th in THREADS:
                k = f"{net}/train/{th}/{rep}"
                steps = str(TRAIN_STEPS[net])
                out.append((f"ours:{k}", [ours, "--mode", "train", "--net", net, "--batch", "128", "--steps", steps], th))
                out.append((f"torch:{k}", [PY, torch_py, "train", "--net", net, "--batch", "128", "--steps", steps,
                                           "--threads", th], th))
                k = f"{net}/sample/{th}/{rep}"
                n = str(SAMPLE_N[net])
                out.append((f"ours:{k}", [ours, "--mode", "sample", "--net", net, "--n", n, "--steps",
                                          str(SAMPLE_STEPS)], th))
                out.append((f"torch:{k}", [PY, torch_py, "sample", "--net", net, "--n", n, "--steps",
                                           str(SAMPLE_STEPS), "--threads", th], th))
    if not QUICK:
        for net in NETS:
            out.append((f"ours:{net}/profile/1/0", [ours, "--mode", "profile", "--net", net, "--steps",
                                                     str(TRAIN_STEPS[net] // 2)], "1"))
    if "unet" in NETS:
        # The U-Net's matrix products alone, same shapes on both sides (one thread).
        reps = "2" if QUICK else "20"
        for rep in range(REPEATS):
            out.append((f"ours:unet/gemm/1/{rep}", [ours, "--mode", "gemm", "--steps", reps], "1"))
            out.append((f"torch:unet/gemm/1/{rep}", [PY, torch_py, "gemm", "--steps", reps, "--threads", "1"], "1"))
    return out


def fmt(v, spec=".3g"):
    return "—" if v is None else format(v, spec)


def tables(recs):
    lines = []
    chk = [r for r in recs if r.get("mode") == "check"]
    if chk:
        c = chk[-1]
        lines.append("Same networks: our seeded initial weights loaded into the PyTorch modules give our "
                     "outputs within " + ", ".join(
                         f"{n} {c[n]['max_abs_err']:.1e} (outputs up to {c[n]['max_abs_out']:.2f}, "
                         f"{c[n]['params']} parameters)" for n in ("mlp", "unet") if n in c) + " (float64).\n")
    lines.append("| net | what | threads | size | ours | PyTorch | ratio ours/PyTorch (wall) | ratio (CPU) | "
                 "ours CPU s / PyTorch CPU s | others busy ours / PyTorch |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    keyed = {}
    for r in recs:
        lab = r.get("label", "")
        if ":" in lab and r.get("mode") in ("train", "sample"):
            who, key = lab.split(":", 1)
            keyed.setdefault(key.rsplit("/", 1)[0], []).append((key.rsplit("/", 1)[1], who, r))
    for key in sorted(keyed):
        net, mode, th = key.split("/")
        reps = {}
        for rep, who, r in keyed[key]:
            reps.setdefault(rep, {})[who] = r
        for rep in sorted(reps):
            o, t = reps[rep].get("ours"), reps[rep].get("torch")
            if not (o and t):
                continue
            unit = o["rate_unit"]
            size = f"batch {o['batch']}, {o['steps']} steps" if mode == "train" else f"{o['n']} images, NFE {o['nfe']}"
            work = o["steps"] if mode == "train" else o["n"]
            cpu_rate = lambda r: work / r["cpu_s"] if r.get("cpu_s") else None  # noqa: E731
            rc = (cpu_rate(o) / cpu_rate(t)) if cpu_rate(o) and cpu_rate(t) else None
            lines.append(f"| {net} | {mode} ({unit}) | {th} | {size} | {o['rate']:.3g} | {t['rate']:.3g} | "
                         f"**{o['rate'] / t['rate']:.2f}×** | {fmt(rc, '.2f')}× | {fmt(o.get('cpu_s'), '.1f')} / "
                         f"{fmt(t.get('cpu_s'), '.1f')} | {fmt(o.get('other_cores_busy'), '.2f')} / "
                         f"{fmt(t.get('other_cores_busy'), '.2f')} |")
    gemms = {}
    for r in recs:
        lab = r.get("label", "")
        if r.get("mode") == "gemm" and ":" in lab:
            who, key = lab.split(":", 1)
            gemms.setdefault(key, {})[who] = r
    if gemms:
        lines.append("\nThe U-Net's matrix products alone (one training step at batch 128: the same shapes, "
                     "candle's matmul against torch.mm, float32, one thread):\n")
        lines.append("| run | GFLOP per step | ours ms/step (forward + backward) | PyTorch ms/step | ratio ours/PyTorch "
                     "(wall) | ratio (CPU) | ours GFLOP/s | others busy ours / PyTorch |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for key in sorted(gemms):
            o, t = gemms[key].get("ours"), gemms[key].get("torch")
            if not (o and t):
                continue
            om, tm = o["ms_per_step"], t["ms_per_step"]
            rc = o["cpu_s"] / t["cpu_s"] if o.get("cpu_s") and t.get("cpu_s") else None
            lines.append(f"| {key} | {o['gflop_per_step']:.2f} | {om['total']:.1f} ({om['forward']:.1f} + "
                         f"{om['backward']:.1f}) | {tm['total']:.1f} ({tm['forward']:.1f} + {tm['backward']:.1f}) | "
                         f"{om['total'] / tm['total']:.2f}× | {fmt(rc, '.2f')}× | {o['gflops']:.1f} | "
                         f"{fmt(o.get('other_cores_busy'), '.2f')} / {fmt(t.get('other_cores_busy'), '.2f')} |")
    prof = [r for r in recs if r.get("mode") == "profile"]
    if prof:
        lines.append("\nWhere a training step goes (ours, one thread, mean ms per step):\n")
        lines.append("| net | draw batch | forward + loss | backward | AdamW | EMA | total | CPU ms per step | "
                     "others busy |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for r in prof:
            m = r["ms_per_step"]
            tot = sum(m.values())
            cpu = 1e3 * r["cpu_s"] / r["steps"] if r.get("cpu_s") else None
            lines.append(f"| {r['net']} | {m['batch']:.2f} | {m['forward_loss']:.1f} | {m['backward']:.1f} | "
                         f"{m['adamw']:.2f} | {m['ema']:.2f} | {tot:.1f} | {fmt(cpu, '.1f')} | "
                         f"{fmt(r.get('other_cores_busy'), '.2f')} |")
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--table":
        with open(sys.argv[2]) as f:
            print(tables([json.loads(line) for line in f if line.strip()]))
        return
    out = os.environ.get("OUT") or os.path.join(REPO, "target", "digits-bench",
                                                time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    os.makedirs(out, exist_ok=True)
    ours = build()
    recs = []
    with open(os.path.join(out, "results.jsonl"), "w") as results:
        meta = {"label": "meta", "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "uname": " ".join(os.uname()), "cpu": bvp.cpu_model(),
                "rustc": subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip(),
                "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                      text=True).stdout.strip(), "quick": QUICK, "python": PY}
        results.write(json.dumps(meta) + "\n")
        init = os.path.join(out, "init.safetensors")
        recs += run([ours, "--export-init", init], env_for("1"), results, "export")
        recs += run([PY, os.path.join(HERE, "torch_digits.py"), "check", init], env_for("1"), results, "check")
        for label, cmd, th in jobs(ours):
            recs += run(cmd, env_for(th), results, label)
    t = tables(recs)
    with open(os.path.join(out, "tables.md"), "w") as f:
        f.write(t)
    print(t)
    print(f"wrote {out}/results.jsonl and tables.md", file=sys.stderr)


if __name__ == "__main__":
    main()
