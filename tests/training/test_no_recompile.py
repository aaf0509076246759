"""After the first RL iteration nothing is traced or compiled again: every later iteration reuses the
compiled rollout, scoring helpers and update (same shapes, static settings)."""

import jax

from dlrl_jax import config
from dlrl_jax.app.run import Run
from dlrl_jax.training import loop

# JAX reports these events for every trace / lowering / backend compile (jax._src.dispatch).
EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
          "/jax/core/compile/backend_compile_duration")


def test_rl_iterations_after_the_first_do_not_recompile(tmp_path):
    cfg = config.load(None, [f"run.out_dir={tmp_path}", "sft.steps=0", "task.train_size=32", "task.eval_size=8",
                             "algorithm.prompts_per_batch=2", "algorithm.group_size=4", "run.progress=false",
                             "run.tensorboard=false"])
    run = Run(cfg)
    seen = []

    def listener(event, duration, **kwargs):
        if event in EVENTS:
            seen.append(event)

    # under the run's mesh, as `dlrl-jax train` runs the loop (its programs carry the activations' sharding
    # constraints): the same programs as tests/training/test_end_to_end.py's run, from the suite's cache
    with jax.set_mesh(run.mesh):
        rl = loop.RLLoop(run, run.params, run.reference(run.params), progress=False)
        rl.step()  # compiles everything once
        jax.monitoring.register_event_duration_secs_listener(listener)
        try:
            for _ in range(3):
                rl.step()
        finally:
            jax.monitoring.clear_event_listeners()
            rl.close()
            run.writer.close()
    assert rl.iteration == 4
    assert seen == [], f"{len(seen)} traces/compiles after the first iteration: {sorted(set(seen))}"
