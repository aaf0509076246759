"""Run in a fresh process with 8 fake CPU devices: `dlrl-jax train` on a (2, 2, 2) mesh; its
checkpoint restored onto (2, 2, 2), (8, 1, 1) and one device; the run resumed on (8, 1, 1). Prints
one JSON line of facts for the test to check."""

import json
import os
import sys

os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8"

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

from dlrl_jax import cli, config, parallel  # noqa: E402
from dlrl_jax.app.run import Run
from dlrl_jax.checkpoints.train_state import TrainStateCheckpointer  # noqa: E402
from dlrl_jax.training import loop  # noqa: E402

out = sys.argv[1]
common = ["sft.steps=2", "sft.batch_size=8", "task.train_size=64", "task.eval_size=8", "algorithm.prompts_per_batch=2",
          "algorithm.group_size=4", "run.save_every=1", "run.eval_every=0", "run.tensorboard=false",
          "run.progress=false", f"run.out_dir={out}"]


def train_args(*extra):
    a = ["train"]
    for s in common + list(extra):
        a += ["--set", s]
    return a


facts = {"devices": jax.device_count()}
assert cli.main(train_args("run.iterations=2", "mesh.data=2", "mesh.fsdp=2", "mesh.tensor=2")) == 0

ckpt = TrainStateCheckpointer(os.path.join(out, "checkpoints"))
saved = None
for shape in ((2, 2, 2), (8, 1, 1), (1, 1, 1)):
    mesh_settings = [f"mesh.data={shape[0]}", f"mesh.fsdp={shape[1]}", f"mesh.tensor={shape[2]}"]
    run = Run(config.load(None, common + ["run.iterations=2"] + (mesh_settings if shape[0] > 1 else [])))
    target = loop.RLLoop(run, run.params, run.reference(run.params), progress=False).state_tree()
    if shape == (1, 1, 1):  # one device: every array whole on device 0
        one = NamedSharding(parallel.make_mesh(1, 1, 1, devices=jax.devices()[:1]), PartitionSpec())
        target = jax.tree.map(lambda x: jax.device_put(x, one), target)
    tree, meta = ckpt.restore(1, target)
    leaves = [np.asarray(x) for x in jax.tree.leaves(tree["params"])]
    saved = leaves if saved is None else saved
    facts[str(shape)] = {
        "equal": all(np.array_equal(a, b) for a, b in zip(saved, leaves)),
        "devices_per_array": sorted({len(x.sharding.device_set) for x in jax.tree.leaves(tree["params"])}),
        "sharded": any(not x.sharding.is_fully_replicated for x in jax.tree.leaves(tree["params"])),
        "iteration": meta["iteration"]}
    run.writer.close()
ckpt.close()
# the (2, 2, 2) run continues on (8, 1, 1) for two more iterations
assert cli.main(train_args("run.iterations=4", "mesh.data=8") + ["--resume"]) == 0
facts["rl_steps"] = [r["step"] for r in map(json.loads, open(os.path.join(out, "metrics.jsonl"))) if r["phase"] == "rl"]
print(json.dumps(facts))
