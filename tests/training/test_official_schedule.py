"""The EGSPO update under the official trainer's schedule (algorithm.columns_per_update) equals, step for
step, a plain loop doing what that trainer does: after a rollout, micro-step j trains the one selected
step column (j + 1) % K over the whole batch (mean over rows, divided by the tokens per step),
gradient accumulation averages GA = columns_per_update micro-steps into one AdamW step, and every step
is taken against the rollout-time log-probs. The oracle selects the steps, forms the advantages and
the reference log-probs itself, from full-logit forwards of the states before each step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlrl_jax import config, models
from dlrl_jax.app.run import Run
from dlrl_jax.training import loop
from dlrl_jax.training.optimizer import OptimizerSettings, make_optimizer
from tests.training.observe import observe_iterations

K, COLUMNS, MU, GROUP = 4, 2, 2, 2
SFT_STEPS = 8  # enough for rewards that differ within a group (asserted below)


def _run_one_iteration(tmp_path):
    cfg = config.load(None, [f"run.out_dir={tmp_path}", "sft.steps=0", "task.train_size=32", "task.eval_size=8",
                             "algorithm.name=egspo", "algorithm.prompts_per_batch=2", f"algorithm.group_size={GROUP}",
                             f"algorithm.k={K}", f"algorithm.columns_per_update={COLUMNS}", f"algorithm.mu={MU}",
                             "algorithm.micro_batches=2", "sft.batch_size=16", "run.progress=false", "run.tensorboard=false"])
    run = Run(cfg)
    params = loop.run_sft(run, run.params, SFT_STEPS, progress=False)  # a warm start, so that rewards (and advantages) vary
    rl = loop.RLLoop(run, params, run.reference(params), progress=False)
    start = jax.tree.map(np.asarray, rl.params)
    seen = {}
    steps = []

    def capture(rl, traj, reward, selection, k):
        """The rollout, and each optimizer step of the iteration's items taken one by one with the
        loop's own single-step update (the step the iteration's scan runs), from copies of the state."""
        seen.update(traj=traj, reward=np.asarray(reward))
        stack, _ = rl.items(traj, reward, selection, k)
        params, opt_state = jax.tree.map(jnp.copy, rl.params), jax.tree.map(jnp.copy, rl.opt_state)
        for i in range(len(stack["step"])):
            params, opt_state, m = rl.update(params, opt_state, jax.tree.map(lambda x, i=i: x[i], stack))
            steps.append((jax.tree.map(np.asarray, params), float(m["grad_norm"])))

    observe_iterations(rl, capture)
    rl.step()
    rl.close()
    run.writer.close()
    # the iteration's one jitted call ends where the step-by-step updates end
    for got, want in zip(jax.tree.leaves(rl.params), jax.tree.leaves(steps[-1][0])):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-7)
    return cfg, run, start, seen, steps


def _oracle(cfg, run, start, traj, reward):
    """[(params, grad norm)] after each optimizer step of the plain official loop."""
    a, s = cfg.algorithm, cfg.sampler
    tokens, prompt_mask = np.asarray(traj.tokens), np.asarray(traj.prompt_mask)
    unmask_step, entropy = np.asarray(traj.unmask_step), np.asarray(traj.step_entropy)
    B, G = unmask_step.shape
    P = tokens.shape[1] - G
    # top-K steps by entropy (ties to the earlier step), the trainer's torch.topk order: decreasing entropy
    selected = np.argsort(-entropy, axis=1, kind="stable")[:, :K]
    old = np.take_along_axis(np.asarray(traj.step_logprob), selected, axis=1)
    grouped = reward.reshape(-1, GROUP)
    advantage = (grouped - grouped.mean(axis=1, keepdims=True)).reshape(B)  # egspo: lambda 0, every column
    attention = jnp.asarray(np.concatenate([prompt_mask, np.ones((B, G), bool)], axis=1))

    # (jitted with the column as an argument: one compile each for the forward and the gradient, where
    # running them op by op would compile every operation of the model separately)
    @jax.jit
    def step_logprob(params, column):
        step = jnp.asarray(selected)[:, column]
        completion = jnp.where(jnp.asarray(unmask_step) < step[:, None], jnp.asarray(tokens[:, P:]), run.mask_id)
        canvas = jnp.concatenate([jnp.asarray(tokens[:, :P]), completion], axis=1)
        logp = jax.nn.log_softmax(models.forward(run.graphdef, params, canvas, attention), axis=-1)
        token_logp = jnp.take_along_axis(logp[:, P:], jnp.asarray(tokens[:, P:, None]), axis=-1)[..., 0]
        return jnp.where(jnp.asarray(unmask_step) == step[:, None], token_logp, 0.0).sum(axis=1)

    ref = np.stack([np.asarray(step_logprob(start, c)) for c in range(K)], axis=1)

    def column_loss(params, column):
        logp = step_logprob(params, column)
        ratio = jnp.exp(logp - jnp.asarray(old)[:, column])
        clipped = jnp.clip(ratio, 1 - a.eps_low, 1 + a.eps_high)
        delta = jnp.asarray(ref)[:, column] - logp
        per_row = -jnp.minimum(ratio * advantage, clipped * advantage) + a.beta * (jnp.exp(delta) - delta - 1)
        return per_row.mean() / (s.gen_length // s.steps)

    o = cfg.optim
    tx = make_optimizer(OptimizerSettings(learning_rate=o.learning_rate, warmup_steps=o.warmup_steps,
                                          weight_decay=o.weight_decay, b1=o.b1, b2=o.b2, grad_clip=o.grad_clip))
    column_grad = jax.jit(jax.grad(column_loss))
    apply_update = jax.jit(lambda g, state, p: tx.update(g, state, p))
    params = jax.tree.map(jnp.asarray, start)
    opt_state, accumulated, out = tx.init(params), None, []
    for micro_step in range(MU * K):
        column = (micro_step + 1) % K  # the trainer's counter is incremented before compute_loss reads it
        grads = column_grad(params, column)
        grads = jax.tree.map(lambda g: g / COLUMNS, grads)  # the trainer's loss / gradient_accumulation_steps
        accumulated = grads if accumulated is None else jax.tree.map(jnp.add, accumulated, grads)
        if (micro_step + 1) % COLUMNS == 0:
            norm = float(optax.tree.norm(accumulated))
            updates, opt_state = apply_update(accumulated, opt_state, params)
            params = optax.apply_updates(params, updates)
            out.append((jax.tree.map(np.asarray, params), norm))
            accumulated = None
    return out


def test_official_schedule_equals_the_trainers_plain_loop(tmp_path):
    cfg, run, start, seen, steps = _run_one_iteration(tmp_path)
    assert np.ptp(seen["reward"]) > 0  # non-zero advantages: the update has something to follow
    want = _oracle(cfg, run, start, seen["traj"], seen["reward"])
    assert len(steps) == len(want) == MU * K // COLUMNS  # K / GA optimizer steps per pass over the columns
    previous = jax.tree.leaves(start)
    for i, ((got_params, got_norm), (want_params, want_norm)) in enumerate(zip(steps, want)):
        # the accumulated gradient's norm sees the 1/GA weighting (AdamW's step itself would not)
        np.testing.assert_allclose(got_norm, want_norm, rtol=2e-4, err_msg=f"optimizer step {i}")
        flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])  # noqa: E731
        moved = np.linalg.norm(flat(want_params) - np.concatenate([np.ravel(x) for x in previous]))
        error = np.linalg.norm(flat(got_params) - flat(want_params)) / moved
        assert error < 1e-2, f"optimizer step {i}: parameters differ from the official loop by {error:.4f} of a step"
        previous = jax.tree.leaves(want_params)
