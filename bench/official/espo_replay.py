"""Feeds a rollout recorded from the official ESPO trainer (bench/official/run_espo.py) into this
project's ESPO iteration from the same weights, with the trainer's own masks, and compares every
optimizer step: loss, gradient norm (before clipping), every parameter; also the advantages.

The masks: ESPO draws each ELBO sample's completion mask from a torch seed (`forward_process`); this
project draws it from a JAX key (`objectives.elbo.draw_masks_in_strata`, ESPO's stratified scheme).
The replay substitutes the recorded masks for our draw: `recorded_draw` recognises which (optimizer
step i, sample m) a draw key belongs to -- the keys are fold_in(fold_in(base, i), m), computable here --
and returns the trainer's mask for it. Everything around the draw (the coupled ELBO and its weights,
the old and reference passes, the ratio, clipping, k2 KL, leave-one-out advantages, AdamW) is ours.

Usage (this project's venv):
    python -m bench.official.espo_replay --recording espo_f32.npz --model FOLDER [--decay-rule modules]
"""

from __future__ import annotations

import argparse
import json
import tempfile

import numpy as np

from bench.official.compare import DECAY_RULES, TOLERANCES, compare_steps, hf_tensors, rl_loop, table, with_adapter


def recorded_draw(masks_IxMxBxG, base_key):
    """A stand-in for `draw_masks_in_strata` returning the recorded mask of the draw whose key is
    fold_in(fold_in(base_key, i), m); a key matching none of them gives an all-False mask and l = -1,
    which the replay checks for (see `replay`)."""
    import jax
    import jax.numpy as jnp

    masks = jnp.asarray(masks_IxMxBxG)
    I, M = masks.shape[:2]
    candidates = [(i, m, jax.random.key_data(jax.random.fold_in(jax.random.fold_in(base_key, i), m)))
                  for i in range(I) for m in range(M)]

    def draw(key, row_offset, batch, gen_length, strata):
        data = jax.random.key_data(key)
        masked = jnp.zeros((batch, gen_length), bool)
        found = jnp.bool_(False)
        for i, m, want in candidates:
            hit = jnp.all(data == want)
            rows = jax.lax.dynamic_slice_in_dim(masks[i, m], row_offset, batch, axis=0)
            masked = jnp.where(hit, rows, masked)
            found = found | hit
        l_B = jnp.where(found, masked.sum(axis=1), -1).astype(jnp.int32)
        return masked, l_B
    return draw


def _config(s: dict, model: str, out_dir: str, rows: int, adapter: str | None = None, extra=()):
    from dlrl_jax import config

    return config.load(None, ([f"model.adapter={adapter}"] if adapter else []) + [
        f"run.out_dir={out_dir}", f"model.path={model}", f"model.dtype={s.get('dtype', 'float32')}", "sft.steps=0",
        "task.train_size=8", "task.eval_size=4", "algorithm.name=espo", "algorithm.prompts_per_batch=1",
        f"algorithm.group_size={s['group']}", f"algorithm.mu={s['mu']}", "algorithm.micro_batches=1",
        f"algorithm.elbo_samples={s['num_mc']}", f"algorithm.elbo_strata={rows}", "algorithm.elbo_remat=false",
        f"algorithm.beta={s['beta']}", f"algorithm.eps_low={s['eps']}", f"algorithm.eps_high={s['eps']}",
        f"sampler.gen_length={s['gen_length']}", f"sampler.steps={s['steps']}", f"optim.learning_rate={s['lr']}",
        "optim.warmup_steps=0", f"optim.weight_decay={s['weight_decay']}", f"optim.b1={s['b1']}",
        f"optim.b2={s['b2']}", f"optim.grad_clip={s['grad_clip']}", "run.progress=false", "run.tensorboard=false",
        *extra])


def replay(recording: str, model: str, decay_rule: str = "ours") -> dict:
    import jax
    import jax.numpy as jnp

    from dlrl_jax.app.run import Run
    from dlrl_jax.objectives import elbo
    from dlrl_jax.rollout.trajectory import Trajectory
    from dlrl_jax.training.key_streams import MASK_STREAM

    rec = np.load(recording)
    s = json.loads(str(rec["settings"]))
    rec, adapter = with_adapter(recording, rec, s)
    prompt_ids, completion_ids = rec["prompt_ids"], rec["completion_ids"]
    B, P = prompt_ids.shape
    G = completion_ids.shape[1]
    with tempfile.TemporaryDirectory() as out_dir:
        run = Run(_config(s, model, out_dir, B, adapter))
        start = hf_tensors(run.graphdef, run.params)
        initial = {k[len("initial/"):]: rec[k] for k in rec.keys() if k.startswith("initial/")}
        if max(float(np.abs(start[k] - initial[k]).max()) for k in initial) != 0.0:
            raise ValueError(f"{recording} started from other weights than {model}")
        traj = Trajectory(tokens=jnp.asarray(np.concatenate([prompt_ids, completion_ids], 1), jnp.int32),
                          prompt_mask=jnp.ones((B, P), bool), unmask_step=jnp.zeros((B, G), jnp.int32),
                          step_logprob=jnp.zeros((B, 1)), step_entropy=jnp.zeros((B, 1)),
                          step_count=jnp.zeros((B, 1), jnp.int32))
        reward = rec["rewards"]
        base = jax.random.fold_in(jax.random.key(run.cfg.seed), MASK_STREAM)
        own_draw = elbo.draw_masks_in_strata
        elbo.draw_masks_in_strata = recorded_draw(rec["masks"], base)
        try:
            rl = rl_loop(run, decay_rule)
            stack, _ = rl.items(traj, reward)
            for i in range(stack.key.shape[0]):  # every item's draws are among the recorded ones
                for m in range(rec["masks"].shape[1]):
                    got = jax.random.fold_in(jax.random.wrap_key_data(stack.key[i, 0]), m)
                    want = jax.random.fold_in(jax.random.fold_in(base, i), m)
                    if not np.array_equal(jax.random.key_data(got), jax.random.key_data(want)):
                        raise ValueError(f"optimizer step {i}, sample {m}: the item's mask key is not the one "
                                         "recorded_draw maps to the trainer's masks")
            params, opt_state, steps = rl.params, rl.opt_state, []
            for i in range(stack.key.shape[0]):
                params, opt_state, m = rl.update(params, opt_state, jax.tree.map(lambda x, i=i: x[i], stack))
                steps.append(dict(loss=float(m["loss"]), grad_norm=float(m["grad_norm"]),
                                  params=hf_tensors(run.graphdef, params)))
        finally:
            elbo.draw_masks_in_strata = own_draw
        rl.close()
        run.writer.close()
    return dict(recording=rec, settings=s, steps=steps,
                advantage=(np.asarray(stack.advantage[0, 0]), rec["advantages"]),
                old_finite=bool(np.isfinite(np.asarray(stack.old_elbo)).all()))


def compare(result: dict) -> list[dict]:
    """One row per optimizer step (one micro-step each here); the loss at the rollout weights (ratio 1)
    is -mean(A) = 0 for leave-one-out advantages, so it is judged against mean |A|."""
    rec = result["recording"]
    scale = float(np.abs(rec["advantages"]).mean())
    return compare_steps(rec, result["steps"], [float(x) for x in rec["losses"]], scale)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recording", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--decay-rule", choices=DECAY_RULES, default="ours",
                   help="weight decay on our side: ours (dlrl_jax's rule) or a transformers Trainer rule "
                        "(compare.TRAINER_NO_DECAY; this trainer's transformers: modules)")
    args = p.parse_args(argv)
    result = replay(args.recording, args.model, args.decay_rule)
    ours, theirs = result["advantage"]
    print(f"advantages: max |ours - official| {np.abs(ours - theirs).max():.2e}")
    rows = compare(result)
    print(table(rows, markdown=args.markdown))
    bad = [r for r in rows if any(r[k] > v for k, v in TOLERANCES.items())]
    for r in bad:
        print(f"step {r['step']}: outside tolerance; largest element difference in {r['worst_param']}")
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
