"""The device check: every phase in its own process under its own time limit, the results written to
OUT/results.json and OUT/results.md after every phase (bench/device/README.md).

    python bench/device/check.py --out runs/device_check            # a GPU: the papers' shapes, 8 minutes
    python bench/device/check.py --out /tmp/check --cpu --tiny      # this CPU, tiny shapes (the suite's test)

A phase that fails, runs out of memory or passes its limit is recorded with its status, the rows it had
already written and the tail of its log, and the next phase runs. Each phase's limit is its budget
plus whatever earlier phases left unused, so the whole run stays within the sum of the budgets
(scaled to --budget). A phase's own rows say whether each check passed (status ok / fail / skipped).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import common  # noqa: E402  (bench/device/common.py: standard library only at import)


@dataclasses.dataclass(frozen=True)
class Phase:
    name: str
    script: str
    args: tuple
    gpu_s: float  # budget at the papers' shapes on one GPU (estimated: no GPU has run it yet)
    tiny_s: float  # the tiny shapes on a 2-core CPU
    what: str


# Cheapest and most important first: a run cut short keeps the correctness checks and the headline numbers.
PHASES = (
    Phase("env", "env.py", (), 25, 60, "device, memory, versions, missing modules, peaks"),
    Phase("parity", "parity.py", (), 45, 120, "logits (float32, TF32, bf16), sampler T=0, ELBO vs the CPU / oracles"),
    Phase("golden", "golden.py", (), 60, 180, "one RL iteration per algorithm against the golden values"),
    Phase("rollout", "rollout_speed.py", (), 95, 60, "rollout tokens/s and share of the roofline"),
    Phase("update_nf4", "update_speed.py", ("nf4",), 80, 90, "EGSPO / ESPO update, LoRA on an NF4 base"),
    Phase("update_bf16", "update_speed.py", ("none",), 70, 90, "ESPO / EGSPO update, LoRA on a bf16 base"),
    Phase("iteration", "rl_iteration.py", (), 35, 120, "RL iterations of each algorithm, ~30M model"),
    Phase("seeds", "seeds.py", (), 70, 180, "seeds per hour, one seed at a time against jit(vmap(train))"),
)


def run_phase(cmd, env, rows_path, log_path, timeout_s):
    """Runs one phase process; returns (status, returncode, seconds, rows). The process group is killed
    at the timeout, so a hung compile or a phase's own children cannot outlive it."""
    env = dict(env, DLRL_DEVICE_ROWS=rows_path, DLRL_DEVICE_DEADLINE=str(time.time() + timeout_s))
    t = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
        try:
            returncode = proc.wait(timeout=timeout_s)
            status = "ok" if returncode == 0 else "failed"
        except subprocess.TimeoutExpired:
            status = "timeout"
        finally:  # also when this driver is interrupted: the phase's own session would outlive it
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            returncode = proc.wait()
    return status, returncode, time.perf_counter() - t, _rows(rows_path)


def _rows(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _tail(path, lines=15):
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def render_markdown(report: dict) -> str:
    out = [f"# Device check, {report['started']}", "",
           f"Machine: {report['machine']}. Mode: {report['mode']} shapes, platform {report['platform']}, "
           f"budget {report['budget_s']:.0f} s; wall {report['wall_s']:.0f} s. Command: `{report['command']}`.", "",
           "| phase | status | seconds | limit s | checks ok | failed | skipped | what |",
           "|---|---|---|---|---|---|---|---|"]
    for p in report["phases"]:
        counts = [sum(r.get("status") == s for r in p["rows"]) for s in ("ok", "fail", "skipped")]
        out.append(f"| {p['name']} | {p['status']} | {p['seconds']:.1f} | {p['timeout_s']:.0f} | "
                   + " | ".join(map(str, counts)) + f" | {p['what']} |")
    for p in report["phases"]:
        out += ["", f"## {p['name']}: {p['status']} ({p['seconds']:.1f} s)", ""]
        if p["rows"]:
            keys = [k for k in dict.fromkeys(k for r in p["rows"] for k in r) if k != "note"]
            keys += ["note"] if any("note" in r for r in p["rows"]) else []
            out += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            out += ["| " + " | ".join(_cell(r.get(k)) for k in keys) + " |" for r in p["rows"]]
        if p["status"] != "ok":
            out += ["", "Log tail:", "```", p["log_tail"].rstrip(), "```"]
    return "\n".join(out) + "\n"


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v).replace("|", "/").replace("\n", " ")


def _write(out_dir, report):
    for name, text in (("results.json", json.dumps(report, indent=1)), ("results.md", render_markdown(report))):
        tmp = os.path.join(out_dir, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(out_dir, name))  # a reader never sees half a file


def child_env(args) -> dict:
    env = dict(os.environ, DLRL_DEVICE_MODE="tiny" if args.tiny else "gpu",
               DLRL_DEVICE_EXPECT="cpu" if args.cpu else "gpu",
               PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "bench"), HERE] +
                                          ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    if args.cpu:
        env["JAX_PLATFORMS"] = "cpu"
        if args.tiny:  # XLA:CPU with LLVM's cheap passes: a third of the compile time (tiny timings mean nothing)
            env["XLA_FLAGS"] = " ".join([env.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0",
                                         "--xla_llvm_disable_expensive_passes=true"]).strip()
    else:  # one process at a time owns the GPU: let it use nearly all of the memory
        env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.92")
        if env.get("JAX_PLATFORMS") and "cpu" not in env["JAX_PLATFORMS"].split(","):
            env["JAX_PLATFORMS"] += ",cpu"  # the parity phase's reference runs on the CPU backend
    if "JAX_COMPILATION_CACHE_DIR" not in env:  # a rerun on the same machine skips compiling again
        env["JAX_COMPILATION_CACHE_DIR"] = args.cache
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    return env


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for results.json, results.md and logs/")
    p.add_argument("--cpu", action="store_true", help="run on the CPU (JAX_PLATFORMS=cpu); default: expect a GPU")
    p.add_argument("--tiny", action="store_true", help="tiny shapes (the suite's test); default: the papers'")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds for the whole run (default: 480 with the papers' shapes, the tiny budgets' sum)")
    p.add_argument("--phases", default=",".join(ph.name for ph in PHASES), help="comma-separated subset, in order")
    p.add_argument("--cache", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "dlrl_device_check_cache"),
                   help="JAX persistent compilation cache (when JAX_COMPILATION_CACHE_DIR is unset)")
    args = p.parse_args(argv)
    unknown = sorted(set(args.phases.split(",")) - {ph.name for ph in PHASES})
    if unknown:
        p.error(f"--phases: unknown {', '.join(unknown)}; choose from {', '.join(ph.name for ph in PHASES)}")
    args.out = os.path.abspath(args.out)  # the phases run from the repository root
    args.command = " ".join(["bench/device/check.sh"] + (argv if argv is not None else sys.argv[1:]))
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args):
    phases = [ph for ph in PHASES if ph.name in args.phases.split(",")]
    budgets = [ph.tiny_s if args.tiny else ph.gpu_s for ph in phases]
    total = args.budget or (sum(budgets) if args.tiny else 480.0)
    scale = min(1.0, total / sum(budgets))
    os.makedirs(os.path.join(args.out, "logs"), exist_ok=True)
    env = child_env(args)
    start = time.perf_counter()
    report = {"started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "command": args.command,
              "mode": "tiny" if args.tiny else "papers'", "platform": "cpu" if args.cpu else "gpu",
              "budget_s": total, "wall_s": 0.0, "machine": "unknown (env did not finish)", "phases": []}
    banked = 0.0
    for ph, budget in zip(phases, budgets):
        limit = max(1.0, min(budget * scale + banked, total - (time.perf_counter() - start)))
        rows_path = os.path.join(args.out, "logs", f"{ph.name}.jsonl")
        log_path = os.path.join(args.out, "logs", f"{ph.name}.log")
        if os.path.exists(rows_path):
            os.remove(rows_path)
        entry = {"name": ph.name, "what": ph.what, "status": "running", "seconds": 0.0, "timeout_s": limit,
                 "returncode": None, "rows": [], "log_tail": ""}
        report["phases"].append(entry)
        _write(args.out, report)  # a run killed now still says which phase it was in
        print(f"[device check] {ph.name}: limit {limit:.0f} s", flush=True)
        cmd = [sys.executable, os.path.join(HERE, ph.script), *ph.args]
        try:
            status, returncode, seconds, rows = run_phase(cmd, env, rows_path, log_path, limit)
        except (KeyboardInterrupt, SystemExit):  # SIGTERM / SIGINT: keep what the phase wrote, then stop
            entry.update(status="interrupted", rows=_rows(rows_path), log_tail=_tail(log_path))
            _write(args.out, report)
            raise
        entry.update(status=status, returncode=returncode, seconds=seconds, rows=[dict(r) for r in rows],
                     log_tail=_tail(log_path) if status != "ok" else "")
        banked = max(0.0, budget * scale + banked - seconds)
        if ph.name == "env":
            found = {r.get("item"): r for r in rows}
            report["machine"] = found.get("device", {}).get("value", report["machine"])
            peak, bandwidth = found.get(common.PEAK_ITEM), found.get(common.BANDWIDTH_ITEM)
            if peak and bandwidth:  # later phases divide by these, not by their own measurements
                env["DLRL_DEVICE_PEAKS"] = f"{peak['value']!r},{bandwidth['value']!r},{peak['note']}"
        report["wall_s"] = time.perf_counter() - start
        _write(args.out, report)
        print(f"[device check] {ph.name}: {status} in {seconds:.1f} s, {len(rows)} rows", flush=True)
        if ph.name == "env" and status != "ok":  # no (expected) device: every later number would mislead
            print("[device check] env failed: stopping (see results.md)", flush=True)
            break
    print(f"[device check] wrote {os.path.join(args.out, 'results.md')} and results.json", flush=True)
    return report


if __name__ == "__main__":
    main()
