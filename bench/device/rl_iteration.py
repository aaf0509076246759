"""Phase iteration: RL iterations of each algorithm through the training loop at bench/iteration.py's
papers'-shapes-scaled-down setting (~30M parameters, LoRA r128 on q,k,v,up, 1 prompt x 8, prompt 200
+ gen 256, block 32, 128 steps), by bench/iteration.py's own `one_run`: seconds per phase of the
iteration after the first, and the first iteration (compilation included, empty cache)."""

from __future__ import annotations

import argparse
import tempfile

import iteration  # bench/iteration.py

import common


def run():
    s = common.shapes("iteration")
    previous = None  # seconds of the last algorithm's run, to skip what cannot finish in time
    for algorithm in s["algorithms"]:
        if previous is not None and previous > common.remaining() - 5:
            common.skip("algorithm", algorithm, f"needs ~{previous:.0f} s, {common.remaining():.0f} s left")
            continue

        def one(algorithm=algorithm):
            nonlocal previous
            args = argparse.Namespace(work=tempfile.mkdtemp(prefix=f"dlrl_device_{algorithm}_"), algorithm=algorithm,
                                      dtype=s["dtype"], prompt=s["prompt"], iterations=s["iterations"],
                                      d_model=s["d_model"], layers=s["layers"], heads=s["heads"], ff=s["ff"],
                                      gen=s["gen"], block=s["block"], steps=s["steps"], group_size=s["group_size"])
            out = iteration.one_run(args)
            first, later = out["iterations"][0], out["iterations"][1:]
            steady = {k: min(r[k] for r in later) for k in (*iteration.PHASES, "iteration")}
            previous = out["setup"] + sum(r["iteration"] for r in out["iterations"])
            common.emit(algorithm=algorithm, dtype=s["dtype"], prompt=s["prompt"], gen=s["gen"], steps=s["steps"],
                        group=s["group_size"], **{f"{k}_s": v for k, v in steady.items()},
                        first_iteration_s=first["iteration"], setup_s=out["setup"],
                        note=f"d {s['d_model']}, {s['layers']} layers; fastest of iterations 2..{s['iterations']}")
        common.guarded("algorithm", algorithm, one)


if __name__ == "__main__":
    run()
