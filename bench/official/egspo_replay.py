"""Feeds a rollout recorded from the official EGSPO trainer (bench/official/run_egspo.py) into this
project's post-reward EGSPO iteration, from the same weights, and compares every optimizer step:
loss, gradient norm (before clipping) and every parameter; also the update's inputs (the advantages and
the rollout-time log-probs of the selected steps) and our step selection run on the trainer's entropies.

The adapter (`trajectory_from_recording`) turns the trainer's trajectory -- the canvas before every
denoising step -- into this project's `Trajectory`: the final tokens plus the step at which each
completion position was committed, the per-step sums of the recorded log-probs and the per-step token
counts. The selection is the trainer's own (`eval_time_steps`), the rewards the trainer's own.

Usage (this project's venv):
    python -m bench.official.egspo_replay --recording egspo_f32.npz --model FOLDER [--markdown]
"""

from __future__ import annotations

import argparse
import json
import tempfile

import numpy as np

from bench.official.compare import DECAY_RULES, TOLERANCES, compare_steps, hf_tensors, rl_loop, table, with_adapter


class RecordingError(ValueError):
    """A recorded rollout this project's trajectory cannot represent; the message names what and where."""


def trajectory_from_recording(trajectory_TxBxL, logps_TxBxN, prompt_length: int, mask_id: int):
    """(tokens [B, L], unmask_step [B, G], step_logprob [B, T], step_count [B, T]) from the trainer's
    canvases (trajectory[t] is the canvas before step t, trajectory[T] the final one) and its per-step
    log-probs of the committed tokens. Every step must commit exactly N = logps.shape[2] tokens, each
    a real token: a step that committed the mask token itself (the sampler may draw it; the canvas then
    does not change there) has no place in a trajectory of committed positions, and is refused."""
    traj = np.asarray(trajectory_TxBxL)
    logps = np.asarray(logps_TxBxN, np.float64)
    T = traj.shape[0] - 1
    if logps.shape[0] != T:
        raise RecordingError(f"logps has {logps.shape[0]} steps, the trajectory {T} (+1 canvases)")
    P = int(prompt_length)
    completion = traj[:, :, P:]
    B, G = completion.shape[1], completion.shape[2]
    if np.any(traj[1:, :, :P] != traj[:1, :, :P]):
        raise RecordingError("the prompt changes during the rollout; the trajectory's prompt must stay fixed")
    committed = (completion[:-1] == mask_id) & (completion[1:] != mask_id)  # [T, B, G]
    changed_elsewhere = (completion[:-1] != mask_id) & (completion[1:] != completion[:-1])
    if changed_elsewhere.any():
        t, b, g = map(int, np.argwhere(changed_elsewhere)[0])
        raise RecordingError(f"row {b}, completion position {g}: a committed token changes at step {t}")
    counts = committed.sum(axis=2).T  # [B, T]
    wrong = np.argwhere(counts != logps.shape[2])
    if len(wrong):
        b, t = map(int, wrong[0])
        raise RecordingError(f"row {b}, step {t}: {counts[b, t]} positions left the mask, the trainer recorded "
                             f"{logps.shape[2]} tokens (a step that drew the mask token itself cannot be replayed)")
    unmask_step = np.full((B, G), T, np.int32)
    t_idx, b_idx, g_idx = np.nonzero(committed)
    unmask_step[b_idx, g_idx] = t_idx
    tokens = traj[-1].astype(np.int32)
    step_logprob = logps.sum(axis=2).T.astype(np.float32)  # the trainer's 'sum' aggregation of a step
    return tokens, unmask_step, step_logprob, counts.astype(np.int32)


def _config(settings: dict, model: str, out_dir: str, adapter: str | None = None, extra=()):
    from dlrl_jax import config

    s = settings
    lora = [f"model.adapter={adapter}", f"algorithm.beta={s['beta']}"] if adapter else ["algorithm.beta=0.0"]
    return config.load(None, lora + [
        f"run.out_dir={out_dir}", f"model.path={model}", f"model.dtype={s['dtype']}", "sft.steps=0",
        "task.train_size=8", "task.eval_size=4", "algorithm.name=" + ("egspo_sa" if s.get("lambda1") else "egspo"),
        f"algorithm.lam={s.get('lambda1', 0.0)}", "algorithm.prompts_per_batch=1",
        f"algorithm.group_size={s['group']}", f"algorithm.k={s['k']}", f"algorithm.columns_per_update={s['columns']}",
        f"algorithm.mu={s['mu']}", "algorithm.micro_batches=1", "algorithm.aggregation=sum",
        "algorithm.selection=top_k_entropy", f"algorithm.eps_low={s['eps_low']}", f"algorithm.eps_high={s['eps_high']}",
        f"sampler.gen_length={s['gen_length']}", f"sampler.block_length={s['block_length']}",
        f"sampler.steps={s['steps']}", f"optim.learning_rate={s['lr']}", "optim.warmup_steps=0",
        f"optim.weight_decay={s['weight_decay']}", f"optim.b1={s['b1']}", f"optim.b2={s['b2']}",
        f"optim.grad_clip={s['grad_clip']}", "run.progress=false", "run.tensorboard=false", *extra])


def replay(recording: str, model: str, decay_rule: str = "ours") -> dict:
    """Runs our iteration on the recorded rollout; returns the comparison (see `table`). decay_rule
    "names" / "modules": weight decay as transformers' Trainer applies it (compare.TRAINER_NO_DECAY)."""
    import jax
    import jax.numpy as jnp

    from dlrl_jax.app.run import Run
    from dlrl_jax.rollout.trajectory import Trajectory
    from dlrl_jax.training.algorithms.common import Selection

    rec = np.load(recording)
    settings = json.loads(str(rec["settings"]))
    rec, adapter = with_adapter(recording, rec, settings)
    with tempfile.TemporaryDirectory() as out_dir:
        run = Run(_config(settings, model, out_dir, adapter))
        start = hf_tensors(run.graphdef, run.params)
        initial = {k[len("initial/"):]: rec[k] for k in rec.keys() if k.startswith("initial/")}
        weights = max(float(np.abs(start[k] - initial[k]).max()) for k in initial)
        if weights != 0.0:
            raise RecordingError(f"{recording} started from other weights than {model} (max |diff| {weights})")
        tokens, unmask_step, step_logprob, step_count = trajectory_from_recording(
            rec["trajectory"], rec["logps"], int(rec["prompt_length"]), run.mask_id)
        B, K = rec["eval_time_steps"].shape
        traj = Trajectory(tokens=jnp.asarray(tokens), prompt_mask=jnp.ones((B, int(rec["prompt_length"])), bool),
                          unmask_step=jnp.asarray(unmask_step), step_logprob=jnp.asarray(step_logprob),
                          step_entropy=jnp.asarray(rec["step_entropy"].T), step_count=jnp.asarray(step_count))
        # the trainer scores K + 1 completions a row: the greedy completions of the selected steps (EGSPO-SA's
        # step rewards), then the final one
        rewards = rec["rewards"].reshape(B, K + 1)
        reward = rewards[:, -1]
        official_steps = rec["eval_time_steps"].astype(np.int32)
        greedy = rewards[:, :K] if settings.get("lambda1") else np.zeros((B, K), np.float32)
        selection = Selection(steps=jnp.asarray(official_steps), valid=jnp.ones((B, K), bool),
                              greedy_reward=jnp.asarray(greedy, jnp.float32))
        rl = rl_loop(run, decay_rule)
        ours_selected = np.asarray(rl._select(jax.random.key(0), traj, k=K).steps)
        stack, _ = rl.items(traj, reward, selection, K)
        params, opt_state = rl.params, rl.opt_state
        steps = []
        for i in range(len(stack.step)):
            params, opt_state, m = rl.update(params, opt_state, jax.tree.map(lambda x, i=i: x[i], stack))
            steps.append(dict(loss=float(m["loss"]), grad_norm=float(m["grad_norm"]),
                              params=hf_tensors(run.graphdef, params)))
        rl.close()
        run.writer.close()
    first = jax.tree.map(lambda x: np.asarray(x[0]), stack)  # step 0's items: [items, B]
    column = np.asarray(rec["loss_columns"])[0]
    return dict(recording=rec, settings=settings, steps=steps, start=start, ours_selected=ours_selected,
                official_selected=official_steps,
                advantage=(np.asarray(first.advantage[0]), rec["advantages_per_step"][:, column]),
                old_logprob=(np.asarray(first.old_logprob[0]), rec["old_per_token_logps"][column]))


def compare(result: dict) -> list[dict]:
    """One row per optimizer step (see compare.compare_steps): the official loss of a step is the mean
    of its micro-step losses (what the Trainer logs); the loss at the rollout weights cancels
    (sum of a group's advantages is 0), so it is judged against mean |A| / tokens per step."""
    rec, s = result["recording"], result["settings"]
    losses, columns = rec["losses"], s["columns"]
    official = [float(np.mean(losses[i * columns:(i + 1) * columns])) for i in range(len(result["steps"]))]
    scale = float(np.abs(rec["advantages_per_step"]).mean()) / (s["gen_length"] / s["steps"])
    return compare_steps(rec, result["steps"], official, scale)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recording", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--decay-rule", choices=DECAY_RULES, default="ours",
                   help="weight decay on our side: ours (dlrl_jax's rule) or a transformers Trainer rule "
                        "(compare.TRAINER_NO_DECAY; this trainer's transformers: names)")
    args = p.parse_args(argv)
    result = replay(args.recording, args.model, args.decay_rule)
    ours, theirs = result["advantage"]
    print(f"advantages (first step's column): max |ours - official| {np.abs(ours - theirs).max():.2e}")
    ours, theirs = result["old_logprob"]
    print(f"rollout log-probs of the selected steps: max |ours - official| {np.abs(ours - theirs).max():.2e}")
    same = np.array_equal(np.sort(result["ours_selected"], axis=1), np.sort(result["official_selected"], axis=1))
    print(f"our top-K entropy selection on the trainer's entropies picks the trainer's steps: {same}")
    rows = compare(result)
    print(table(rows, markdown=args.markdown))
    bad = [r for r in rows if any(r[k] > v for k, v in TOLERANCES.items())]
    for r in bad:
        print(f"step {r['step']}: outside tolerance; largest element difference in {r['worst_param']}")
    raise SystemExit(1 if bad or not same else 0)


if __name__ == "__main__":
    main()
