"""bench/device/check.sh: the prepared GPU check, run here with --cpu --tiny. The driver keeps every
phase's rows through failures and time-outs; the measured phases report numbers that agree with an
independent computation from their own fields (the roofline and MFU from bench/'s formulas and the
peaks the env phase reported), and the correctness phases pass."""

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEVICE = os.path.join(ROOT, "bench", "device")


def _module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _check(tmp_path, phases):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHON=sys.executable)
    done = subprocess.run(["bash", os.path.join(DEVICE, "check.sh"), "--out", str(out), "--cpu", "--tiny",
                           "--phases", ",".join(phases)], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "results.json").read_text())
    markdown = (out / "results.md").read_text()
    assert [p["name"] for p in report["phases"]] == phases
    for p in report["phases"]:
        assert p["status"] == "ok", f"{p['name']}: {p['status']}\n{p['log_tail']}"
        assert p["rows"], f"{p['name']} reported nothing"
        bad = [r for r in p["rows"] if r["status"] != "ok"]
        assert not bad, f"{p['name']}: {bad}"
        assert f"## {p['name']}: ok" in markdown
    return {p["name"]: p["rows"] for p in report["phases"]}


def _peaks(rows):
    """The peaks the env phase measured, which every later phase uses (check.py passes them on)."""
    value = {r["item"]: r["value"] for r in rows["env"]}
    common = _module("device_check_common", os.path.join(DEVICE, "common.py"))
    return value[common.PEAK_ITEM], value[common.BANDWIDTH_ITEM]


def _assert_measured(rows):
    """The rollout and update rows against bench/'s roofline and MFU formulas, recomputed here."""
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        from rollout import forward_flops
        from rollout_roofline import rollout_plan, roofline_seconds
    finally:
        del sys.path[0]
    from dlrl_jax import models

    common = _module("device_check_common", os.path.join(DEVICE, "common.py"))
    peak, bandwidth = _peaks(rows)
    assert peak > 1e8 and bandwidth > 1e8
    s = common.SHAPES["tiny"]["rollout"]
    cfg = models.preset(s["preset"], param_dtype=s["dtype"], dtype=s["dtype"])
    assert [r["case"] for r in rows["rollout"]] == [f"tiny bfloat16, batch {b}" for b in s["batches"]]
    for r, batch in zip(rows["rollout"], s["batches"]):
        for k in ("compile_s", "rollout_s", "tokens_per_s", "roofline_s", "roofline_fraction"):
            assert math.isfinite(r[k]) and r[k] > 0, (k, r)
        assert math.isclose(r["tokens_per_s"] * r["rollout_s"], batch * s["gen"], rel_tol=1e-9)
        roof = roofline_seconds(rollout_plan(cfg, batch, s["prompt"], s["gen"], s["block"], s["steps"], "none"),
                                peak, bandwidth)
        assert math.isclose(r["roofline_s"], roof, rel_tol=1e-9) and math.isclose(
            r["roofline_fraction"], roof / r["rollout_s"], rel_tol=1e-9)
    u = common.SHAPES["tiny"]["update"]
    ucfg = models.preset(u["preset"])
    for r in rows["update_nf4"]:
        shape = u[r["case"].split(",")[0]]
        passes = shape.get("columns", 2 * shape.get("samples", 1))
        flops = passes * 3 * forward_flops(ucfg, shape["rows"], shape["prompt"] + shape["gen"])
        assert r["items"] == shape["micro_batches"] * shape.get("columns", 1)
        assert math.isclose(r["mfu"], flops / r["step_s"] / peak, rel_tol=1e-9), r
        assert 0 < r["mfu"] < 1 and r["compiled_estimate_gib"] > 0 and r["trained_params_M"] > 0
        assert math.isfinite(r["loss"]) and not r["skipped_step"], r


def test_driver_keeps_rows_through_failures_and_timeouts(tmp_path, monkeypatch):
    """A phase that hangs is killed at its limit and one that crashes is recorded; both keep the rows
    they wrote, the next phase still runs, and the files are rewritten after every phase."""
    check = _module("device_check_driver", os.path.join(DEVICE, "check.py"))
    scripts = {
        "hangs": "import common, time\ncommon.emit(item='before the hang', value=1.0)\ntime.sleep(60)\n",
        "crashes": "import common\ncommon.emit(item='before the crash', value=2.0)\nraise RuntimeError('boom')\n",
        "works": "import common\ncommon.emit(item='after both', value=3.0, status='fail', note='a failed check')\n",
    }
    phases = []
    for name, text in scripts.items():
        (tmp_path / f"{name}.py").write_text(text)
        phases.append(check.Phase(name, str(tmp_path / f"{name}.py"), (), 3, 3, f"a phase that {name}"))
    monkeypatch.setattr(check, "PHASES", tuple(phases))
    report = check.main(["--out", str(tmp_path / "out"), "--cpu", "--tiny", "--budget", "9"])
    by_name = {p["name"]: p for p in report["phases"]}
    assert [p["status"] for p in report["phases"]] == ["timeout", "failed", "ok"]
    assert by_name["hangs"]["rows"][0]["value"] == 1.0 and by_name["hangs"]["seconds"] < 10
    assert by_name["crashes"]["rows"][0]["value"] == 2.0 and "RuntimeError: boom" in by_name["crashes"]["log_tail"]
    assert by_name["works"]["rows"][0]["status"] == "fail"
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [p["status"] for p in saved["phases"]] == ["timeout", "failed", "ok"]
    markdown = (tmp_path / "out" / "results.md").read_text()
    assert "| hangs | timeout |" in markdown and "| works | ok | " in markdown and "RuntimeError: boom" in markdown


# slow (over a minute on 2 cores): the device check is a benchmark; the driver's own logic is tested above
@pytest.mark.slow
def test_tiny_check_measures_rollout_and_update(tmp_path):
    """The phases that have no other test in the suite: the rollout and the LoRA-on-NF4 update."""
    _assert_measured(_check(tmp_path, ["env", "rollout", "update_nf4"]))


@pytest.mark.slow  # every phase: about 90 s on 2 cores (`python -m pytest -m slow`)
def test_tiny_check_all_phases(tmp_path):
    rows = _check(tmp_path, ["env", "parity", "golden", "rollout", "update_nf4", "update_bf16", "iteration", "seeds"])
    _assert_measured(rows)
    for r in rows["parity"]:
        assert r["value"] <= r["tolerance"], r
    assert {r["check"].split(",")[0].split(":")[0] for r in rows["parity"]} >= {"logits llada", "ELBO estimate"}
    assert rows["golden"][0]["algorithm"] == "egspo" and rows["golden"][0]["update_ratio"] <= 1
    assert rows["golden"][0]["tolerance_scale"] == 1.0  # the suite's own tolerances on the CPU
    for r in rows["iteration"] + rows["update_bf16"]:
        assert all(math.isfinite(v) and v > 0 for k, v in r.items() if k.endswith("_s") and k != "reference_s"), r
    for r in rows["seeds"]:
        assert math.isclose(r["seeds_per_hour"], 3600 * (r["seeds"] if "vmap" in r["program"] else 1) / r["run_s"])
