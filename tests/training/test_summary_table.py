"""The end-of-run table: greedy solved, and with run.eval_samples the solved rate per sample and pass@k
for k = the group size, before and after RL, on a hand-made summary."""

from dlrl_jax.app.train import format_summary


def test_table_shows_greedy_per_sample_and_pass_at_the_group_size_before_and_after():
    summary = {"eval_examples": 256, "seed": 1, "algorithm": "egspo_sa", "seconds": 12.5,
               "initial": {"reward": 0.0, "solved": 0.0},
               "before": {"reward": 0.5, "solved": 0.125, "eval_pass@1": 0.0625, "eval_pass@2": 0.1,
                          "eval_pass@4": 0.2, "eval_pass@8": 0.25},
               "after": {"reward": 0.75, "solved": 0.375, "eval_pass@1": 0.3125, "eval_pass@2": 0.4,
                         "eval_pass@4": 0.45, "eval_pass@8": 0.5}}
    lines = format_summary(summary, group_size=8).splitlines()
    assert lines[0].split() == ["held-out", "(256)", "reward", "solved", "per", "sample", "pass@8"]
    assert lines[1].split() == ["initial", "(random", "init)", "0.000", "0.0%", "-", "-"]
    assert lines[2].split() == ["before", "RL", "0.500", "12.5%", "6.2%", "25.0%"]
    assert lines[3].split() == ["after", "RL", "0.750", "37.5%", "31.2%", "50.0%"]
    assert lines[4].split()[:5] == ["RL", "change", "+0.250", "+25.0", "points"] and "(x3.00)" in lines[4]
    # pass@4 for a group of 4; without run.eval_samples (no eval_pass@ keys) the table is today's
    assert format_summary(summary, group_size=4).splitlines()[3].split()[-1] == "45.0%"
    plain = {k: ({"reward": v["reward"], "solved": v["solved"]} if isinstance(v, dict) else v) for k, v in summary.items()}
    assert format_summary(plain, group_size=8).splitlines()[2].split() == ["before", "RL", "0.500", "12.5%"]
