"""What the official-trainer replays share: our parameters under the Hugging Face names, the
Trainer's weight-decay rule on LLaDA's names, and the per-optimizer-step comparison and its table."""

from __future__ import annotations

import os
import tempfile

import numpy as np


def hf_tensors(graphdef, params) -> dict:
    """Our parameters under the Hugging Face names (the exporter's own mapping, written and read back)."""
    from flax import nnx
    from safetensors.numpy import load_file

    from dlrl_jax import models

    with tempfile.TemporaryDirectory() as d:
        models.save_pretrained(nnx.merge(graphdef, params), d)
        return load_file(os.path.join(d, "model.safetensors"))


# Which parameters transformers' Trainer exempts from weight decay (get_decay_parameter_names), by
# version, on LLaDA's parameter names, in our names:
#  "names" (4.57, EGSPO's pin): names matching "bias", "layernorm", "rmsnorm", "(^|.)norm($|.)" or
#     "_norm($|.)": attn_norm and ff_norm (our mlp_norm) are exempt, the final norm `ln_f` is decayed;
#  "modules" (4.49 / 4.52, d1's and ESPO's pins): only biases and nn.LayerNorm modules; LLaDA's RMS norms
#     are not nn.LayerNorm, so every norm is decayed.
# dlrl_jax exempts every norm scale (optimizer._NO_DECAY). `--decay-rule names|modules` applies the
# Trainer's rule on our side, to show that this is the whole difference.
TRAINER_NO_DECAY = {"names": {"attn_norm", "mlp_norm", "bq", "bk", "bv"}, "modules": {"bq", "bk", "bv"}}
DECAY_RULES = ("ours", *TRAINER_NO_DECAY)


def trainer_decay_mask(rule: str):
    """The optimizer's decay mask function under the Trainer's `rule` (a key of TRAINER_NO_DECAY)."""
    import jax

    exempt = TRAINER_NO_DECAY[rule]

    def mask(params):
        def decays(path, _):
            names = {str(getattr(k, "key", getattr(k, "name", ""))) for k in path}
            return not (names & exempt)
        return jax.tree_util.tree_map_with_path(decays, params)
    return mask


def merged_official(params: dict, lora_scale: float) -> dict:
    """A PEFT-wrapped trainer's parameters (base_layer / lora_A.default / lora_B.default names) as the
    merged Hugging Face weights W + scale B A that our export writes; plain parameters as they are."""
    out = {}
    for name, value in params.items():
        if ".lora_" in name:
            continue
        if name.endswith(".base_layer.weight"):
            stem = name[:-len(".base_layer.weight")]
            a, b = params[stem + ".lora_A.default.weight"], params[stem + ".lora_B.default.weight"]
            out[stem + ".weight"] = value + lora_scale * (b.astype(np.float64) @ a.astype(np.float64)).astype(
                value.dtype)
        else:
            out[name] = value
    return out


def merged_recording(rec, lora_scale: float) -> dict:
    """`rec` with its initial/ and step{i}/ parameter sets merged (`merged_official`), for compare_steps."""
    groups: dict = {}
    for key in rec.keys():
        if "/" in key:
            prefix, name = key.split("/", 1)
            groups.setdefault(prefix, {})[name] = rec[key]
    out = {"grad_norms": rec["grad_norms"]}
    for prefix, params in groups.items():
        out.update({f"{prefix}/{k}": v for k, v in merged_official(params, lora_scale).items()})
    return out


def with_adapter(recording: str, rec, settings: dict):
    """(rec, adapter folder or None): for a LoRA recording, its parameter sets merged (the comparison is on
    W + (alpha / r) B A, what our export writes) and the trainer's initial adapter that the runner saved
    beside it; else the recording as it is."""
    if not settings.get("lora_rank"):
        return rec, None
    merged = merged_recording(rec, settings["lora_alpha"] / settings["lora_rank"])
    return dict(merged, **{k: rec[k] for k in rec.keys() if "/" not in k}), recording + ".adapter"


def rl_loop(run, decay_rule: str = "ours"):
    """This project's RLLoop over `run`; decay_rule "names" / "modules": its optimizer decays what that
    version of transformers' Trainer decays (`trainer_decay_mask`) instead of dlrl_jax's own rule."""
    from dlrl_jax.training import loop, optimizer

    own_mask = optimizer._decay_mask
    if decay_rule != "ours":
        optimizer._decay_mask = trainer_decay_mask(decay_rule)
    try:
        return loop.RLLoop(run, run.params, run.reference(run.params), progress=False)
    finally:
        optimizer._decay_mask = own_mask


def compare_steps(rec, steps: list[dict], official_losses: list[float], loss_scale: float) -> list[dict]:
    """One row per optimizer step: our loss and gradient norm against the trainer's, and the relative
    parameter difference (|ours - official| / |official step|, over all parameters). `rec` holds the
    trainer's grad_norms and its parameters (initial/NAME, step{i}/NAME); a loss is judged against
    max(|official loss|, loss_scale), the size of its terms where it cancels to ~0."""
    norms = rec["grad_norms"]
    rows, before = [], {k[len("initial/"):]: rec[k] for k in rec.keys() if k.startswith("initial/")}
    for i, ours in enumerate(steps):
        official_loss = official_losses[i]
        after = {k[len(f"step{i}/"):]: rec[k] for k in rec.keys() if k.startswith(f"step{i}/")}
        moved = np.sqrt(sum(float(((after[k] - before[k]) ** 2).sum()) for k in after))
        diff = np.sqrt(sum(float(((ours["params"][k] - after[k]) ** 2).sum()) for k in after))
        worst = max(after, key=lambda k: float(np.abs(ours["params"][k] - after[k]).max()))
        rows.append(dict(step=i, loss_official=official_loss, loss_ours=ours["loss"],
                         loss_err=abs(ours["loss"] - official_loss) / max(abs(official_loss), loss_scale),
                         grad_norm_official=float(norms[i]), grad_norm_ours=ours["grad_norm"],
                         grad_norm_err=abs(ours["grad_norm"] - norms[i]) / norms[i],
                         param_err=diff / moved, moved=moved, worst_param=worst))
        before = after
    return rows


# Float32 tolerances (REPRODUCTION.md gives the reasoning): the loss and gradient norm are sums of the
# same float32 terms in different orders (XLA's fused reductions vs PyTorch's), each step's log-prob a
# sum over ~1e2 vocabulary entries and the forward ~1e2-deep reductions: relative error of order
# 1e-6..1e-5; the near-zero loss of a step at the rollout weights (sum_rows A = 0) is measured against
# the scale of its terms, mean |A| / tokens per step. Parameters: Adam divides by sqrt(v), so an element
# whose gradient is rounding-level on one side moves by up to lr there: judged against the step's size.
TOLERANCES = {"loss_err": 1e-4, "grad_norm_err": 1e-4, "param_err": 1e-3}


def table(rows: list[dict], markdown: bool = False) -> str:
    head = ["step", "loss official", "loss ours", "rel err", "grad norm official", "grad norm ours", "rel err",
            "param diff / step", "within"]
    lines = []
    for r in rows:
        ok = all(r[k] <= v for k, v in TOLERANCES.items())
        lines.append([str(r["step"]), f"{r['loss_official']:.8g}", f"{r['loss_ours']:.8g}", f"{r['loss_err']:.1e}",
                      f"{r['grad_norm_official']:.8g}", f"{r['grad_norm_ours']:.8g}", f"{r['grad_norm_err']:.1e}",
                      f"{r['param_err']:.1e}", "yes" if ok else "NO"])
    if markdown:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] +
                         ["| " + " | ".join(line) + " |" for line in lines])
    widths = [max(len(x) for x in col) for col in zip(head, *lines)]
    return "\n".join("  ".join(x.rjust(w) for x, w in zip(line, widths)) for line in [head] + lines)
