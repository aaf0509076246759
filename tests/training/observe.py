"""Seeing an RL iteration's inputs from a test, without a hook in the loop: the loop's post-reward
function (`RLLoop.iteration_fn`) wrapped so that `observe(rl, traj, reward, selection, k)` runs just
before each call, while `rl.state` is still the state the iteration starts from (the call donates it)."""


class Observed:
    def __init__(self, rl, inner, observe):
        self.rl, self.inner, self.observe = rl, inner, observe

    def __getattr__(self, name):  # memory, _jitted, ...: the wrapped function's
        return getattr(self.inner, name)

    def __call__(self, state, batch, reward_B, selection=None, *, k):
        self.observe(self.rl, batch, reward_B, selection, k)
        return self.inner(state, batch, reward_B, selection, k=k)


def observe_iterations(rl, observe) -> None:
    """From now on, `observe(rl, traj, reward, selection, k)` before each of `rl`'s iterations' jitted
    part (traj without the greedy completions, as the jitted part takes it)."""
    rl.iteration_fn = Observed(rl, rl.iteration_fn, observe)
