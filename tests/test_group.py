"""Vectorised training of a group of runs: equal to each run trained alone, failures isolated,
resumable, and refused for configurations it does not support."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lyapkit.backend import Progress  # noqa: E402
from lyapkit.store import RunLockedError, lock_run, open_run  # noqa: E402
from lyapkit.trainers import config as config_module  # noqa: E402
from lyapkit.trainers.config import ConfigError  # noqa: E402
from lyapkit.trainers.group import group_key, train_group  # noqa: E402
from lyapkit.trainers.trainer import Trainer, TrainResult  # noqa: E402

# (seed, residual r, learning rate) of the members
MEMBERS = [(0, 0.9, 0.05), (1, 1.0, 0.1), (2, 0.95, 0.02)]


def make_config(
    directory: Path, name: str, seed: int, r: float, lr: float, *, dtype: str = "float64"
) -> dict:
    return {
        "run": {"name": name, "dir": str(directory), "seed": seed, "dtype": dtype},
        "task": {"name": "adding", "T": 12, "n_train": 256, "n_test": 64},
        "model": {
            "name": "WCRNN",
            "hidden_size": 8,
            "gamma": 0.1,
            "residual": {"kind": "homogeneous", "r": r},
        },
        "optimizer": {"name": "sgd", "lr": lr, "momentum": 0.9, "clip_grad_norm": 1.0},
        "training": {"steps": 30, "batch_size": 32, "eval_every": 10, "checkpoint_every": 10},
        "diagnostics": {
            "gradients": {"every": 15, "batch": 16},
            "lyapunov": {"at": [0, 30], "steps": 20, "transient": 4, "sequences": 2},
        },
    }


def group_configs(directory: Path, **kwargs) -> list[dict]:
    return [
        make_config(directory, f"member{i}", seed, r, lr, **kwargs)
        for i, (seed, r, lr) in enumerate(MEMBERS)
    ]


def alone(configs: list[dict], directory: Path) -> list[TrainResult]:
    """Each configuration trained by Trainer in ``directory``."""
    results = []
    for config in configs:
        config = copy.deepcopy(config)
        config["run"]["dir"] = str(directory)
        results.append(Trainer(config).train())
    return results


def checkpoint(path: Path) -> dict:
    return torch.load(path.with_name(path.stem + ".ckpt.pt"), weights_only=False)


def assert_same_run(a: Path, b: Path, tol: float) -> None:
    """Every recorded group and the checkpoint of two runs agree to ``tol``."""
    run_a, run_b = open_run(a), open_run(b)
    assert set(run_a.children) == set(run_b.children)
    for group in run_a.children:
        ds_a, ds_b = run_a[group].to_dataset(), run_b[group].to_dataset()
        assert set(ds_a.data_vars) == set(ds_b.data_vars), group
        np.testing.assert_array_equal(ds_a["step"], ds_b["step"])
        for name in ds_a.data_vars:
            assert ds_a[name].attrs == ds_b[name].attrs, (group, name)
            np.testing.assert_allclose(
                ds_a[name].values, ds_b[name].values, rtol=tol, atol=tol, err_msg=f"{group}.{name}"
            )
    ckpt_a, ckpt_b = checkpoint(a), checkpoint(b)
    assert ckpt_a["step"] == ckpt_b["step"]
    for name, value in ckpt_a["model"].items():
        torch.testing.assert_close(value, ckpt_b["model"][name], rtol=tol, atol=tol)
    states_a, states_b = ckpt_a["optimizer"]["state"], ckpt_b["optimizer"]["state"]
    assert states_a.keys() == states_b.keys()
    for key, state in states_a.items():
        torch.testing.assert_close(
            state["momentum_buffer"], states_b[key]["momentum_buffer"], rtol=tol, atol=tol
        )
    assert ckpt_a["scheduler"] == ckpt_b["scheduler"]
    assert ckpt_a["optimizer"]["param_groups"] == ckpt_b["optimizer"]["param_groups"]


def assert_same_result(a: TrainResult, b: TrainResult, tol: float) -> None:
    assert a.metric == b.metric and a.steps_to_threshold == b.steps_to_threshold
    assert a.best_metric == pytest.approx(b.best_metric, rel=tol, abs=tol)
    assert a.final_loss == pytest.approx(b.final_loss, rel=tol, abs=tol)


def assert_failed_as_alone(
    results: list, configs: list[dict], failing: int, tmp_path: Path, tol: float
) -> None:
    """Member ``failing`` got the exception Trainer raises for it alone, no lock is left, and
    every other member equals its run trained alone, to ``tol``."""
    with pytest.raises(Exception) as alone_error:
        alone([configs[failing]], tmp_path / "alone")
    failed = results[failing]
    assert type(failed) is type(alone_error.value) and str(failed) == str(alone_error.value)
    assert not list((tmp_path / "group").glob("*.lock"))
    for i, (result, config) in enumerate(zip(results, configs, strict=True)):
        if i != failing:
            reference = alone([config], tmp_path / "alone")[0]
            assert_same_result(result, reference, tol)
            assert_same_run(result.path, reference.path, tol)


def test_group_equals_each_member_trained_alone(tmp_path):
    configs = group_configs(tmp_path / "group")
    results = train_group(configs)
    expected = alone(configs, tmp_path / "alone")
    for result, reference in zip(results, expected, strict=True):
        assert isinstance(result, TrainResult) and not result.already_finished
        assert result.path.parent == tmp_path / "group"
        assert_same_result(result, reference, 1e-10)
        assert_same_run(result.path, reference.path, 1e-10)
        assert {"training", "evaluation", "gradients", "lyapunov"} <= set(result.seconds)
    assert not list((tmp_path / "group").glob("*.lock"))


def test_group_equals_alone_in_float32_on_digits(tmp_path):
    pytest.importorskip("sklearn")
    configs = []
    for i, (seed, r, lr) in enumerate(MEMBERS[:2]):
        config = make_config(tmp_path / "group", f"digits{i}", seed, r, lr, dtype="float32")
        config["task"] = {"name": "sdigits"}
        config["training"] = {"steps": 8, "batch_size": 16, "eval_every": 4, "checkpoint_every": 4}
        config["diagnostics"] = {}
        configs.append(config)
    results = train_group(configs)
    for result, reference in zip(results, alone(configs, tmp_path / "alone"), strict=True):
        assert result.metric == "accuracy"
        assert_same_result(result, reference, 5e-5)  # float32 sums in another order
        assert_same_run(result.path, reference.path, 5e-5)


def test_group_key_accepts_free_keys_and_refuses_the_rest(tmp_path):
    base = make_config(tmp_path, "a", 0, 1.0, 0.1)
    key = group_key(base)
    assert key is not None
    other = make_config(tmp_path / "elsewhere", "b", 7, 0.5, 0.3)
    other["model"]["gamma"] = 0.05
    other["run"]["threads"] = 2
    other["diagnostics"] = {"curvature": {"every": 10}}
    assert group_key(other) == key
    for table, name, value in [
        ("model", "hidden_size", 16),
        ("optimizer", "momentum", 0.5),
        ("optimizer", "clip_grad_norm", 0.5),
        ("training", "batch_size", 16),
        ("training", "steps", 40),
        ("task", "T", 20),
        ("run", "dtype", "float32"),
    ]:
        changed = copy.deepcopy(base)
        changed[table][name] = value
        assert group_key(changed) not in (None, key), name
    for table, name, value in [
        ("model", "variant", "B"),
        ("model", "train_residual", True),
        ("model", "name", "ElmanRNN"),
        ("optimizer", "name", "adam"),
        ("schedule", "name", "cosine"),
        ("task", "name", "teacher_student"),
    ]:
        changed = copy.deepcopy(base)
        changed.setdefault(table, {})[name] = value
        assert group_key(changed) is None, name
    with pytest.raises(ConfigError, match="optimizer.lr"):
        group_key({**base, "optimizer": {"lr": -1}})


def test_group_key_refuses_an_option_it_does_not_know(tmp_path, monkeypatch):
    # a new training option (as the `flossing` one being added) is not in the whitelist
    monkeypatch.setitem(config_module.DEFAULTS["training"], "flossing", 1)
    config = make_config(tmp_path, "a", 0, 1.0, 0.1)
    assert group_key(config) is None
    with pytest.raises(ValueError, match=r"configs\[0\].*cannot be trained in a group"):
        train_group([config])
    assert not list(tmp_path.iterdir())


def test_train_group_refuses_mixed_or_bad_configurations(tmp_path):
    configs = group_configs(tmp_path)
    wider = copy.deepcopy(configs[1])
    wider["model"]["hidden_size"] = 16
    with pytest.raises(ValueError, match=r"configs\[1\] cannot be grouped.*model.hidden_size"):
        train_group([configs[0], wider])
    twice = copy.deepcopy(configs[1])
    twice["run"]["name"] = configs[0]["run"]["name"]
    with pytest.raises(ValueError, match="more than once"):
        train_group([configs[0], twice])
    with pytest.raises(ValueError, match="at least one"):
        train_group([])
    with pytest.raises(ValueError, match="exclude each other"):
        train_group(configs, resume=True, overwrite=True)
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_diverging_member_fails_alone(tmp_path):
    configs = group_configs(tmp_path / "group", dtype="float32")
    configs[1]["optimizer"]["lr"] = 1e3
    configs[1]["optimizer"]["clip_grad_norm"] = 0.0
    for config in configs:
        config["optimizer"]["clip_grad_norm"] = configs[1]["optimizer"]["clip_grad_norm"]
        config["diagnostics"] = {}
    results = train_group(configs)
    assert isinstance(results[1], FloatingPointError)
    assert "summary" not in open_run(tmp_path / "group" / "member1.nc").children
    assert_failed_as_alone(results, configs, 1, tmp_path, 1e-5)


def test_members_diverging_at_the_same_step_all_fail(tmp_path):
    """Every member lost at once: each is recorded as failed with its FloatingPointError."""
    configs = group_configs(tmp_path / "group", dtype="float32")[:2]
    for config in configs:
        config["optimizer"].update(lr=1e30, clip_grad_norm=0.0)
        config["diagnostics"] = {}
    results = train_group(configs)
    assert all(isinstance(result, FloatingPointError) for result in results), results
    assert not list((tmp_path / "group").glob("*.lock"))


class Interrupt(Progress):
    """A progress meter that interrupts training after ``after`` steps."""

    def __init__(self, after: int):
        self.after = after

    def update(self, n: int) -> None:
        self.after -= n
        if self.after <= 0:
            raise KeyboardInterrupt


def test_interrupted_group_resumes_and_a_finished_one_does_nothing(tmp_path):
    configs = group_configs(tmp_path / "group")
    with pytest.raises(KeyboardInterrupt):
        train_group(configs[1:], progress=Interrupt(15))  # checkpoints at step 10
    assert not list((tmp_path / "group").glob("*.lock"))
    assert all(checkpoint(tmp_path / "group" / f"member{i}.nc")["step"] == 10 for i in (1, 2))
    # member0 is new, members 1 and 2 resume from step 10: two groups, one after the other
    results = train_group(configs)
    expected = alone(configs, tmp_path / "alone")
    for result, reference in zip(results, expected, strict=True):
        assert not result.already_finished
        assert_same_result(result, reference, 1e-10)
        assert_same_run(result.path, reference.path, 1e-10)
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "group").iterdir()}
    again = train_group(configs)
    assert all(r.already_finished for r in again)
    for result, first in zip(again, results, strict=True):
        assert_same_result(result, first, 0)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "group").iterdir()} == files


def test_a_member_of_an_interrupted_group_resumes_with_trainer(tmp_path):
    configs = group_configs(tmp_path / "group")
    with pytest.raises(KeyboardInterrupt):
        train_group(configs, progress=Interrupt(25))  # checkpoints at steps 10 and 20
    resumed = Trainer(configs[0]).train(resume=True)
    reference = alone(configs[:1], tmp_path / "alone")[0]
    assert_same_result(resumed, reference, 1e-10)
    assert_same_run(resumed.path, reference.path, 1e-10)


def test_members_that_cannot_start_are_reported_and_the_others_train(tmp_path):
    configs = group_configs(tmp_path / "group")
    for config in configs:
        config["diagnostics"] = {}
    stale = copy.deepcopy(configs[2])
    stale["optimizer"]["lr"] = 0.5
    Trainer(stale).train()  # a finished run with another learning rate
    with lock_run(tmp_path / "group" / "member0.lock"):
        results = train_group(configs)
    assert isinstance(results[0], RunLockedError)
    assert isinstance(results[2], Exception) and "optimizer.lr" in str(results[2])
    assert isinstance(results[1], TrainResult) and math.isfinite(results[1].best_metric)
    assert not (tmp_path / "group" / "member0.nc").exists()


def test_a_member_whose_file_is_no_run_store_fails_alone_and_keeps_no_lock(tmp_path):
    configs = group_configs(tmp_path / "group")[:2]
    for config in configs:
        config["diagnostics"] = {}
    garbage = tmp_path / "group" / "member1.nc"
    garbage.parent.mkdir()
    garbage.write_bytes(b"not an HDF5 file")
    results = train_group(configs)
    with pytest.raises(ValueError) as alone_error:
        Trainer(configs[1]).train(resume=True)
    assert type(results[1]) is ValueError and str(results[1]) == str(alone_error.value)
    assert isinstance(results[0], TrainResult) and not list(garbage.parent.glob("*.lock"))
    garbage.unlink()  # once the file is gone, the same process trains the run
    assert isinstance(train_group(configs)[1], TrainResult)


def test_a_member_whose_diagnostics_fail_stops_alone_as_with_trainer(tmp_path):
    """k = 100 exponents of an 8-unit model: refused when the spectrum is due (step 15), after the
    checkpoint at step 10; the other members train to the end."""
    configs = group_configs(tmp_path / "group")
    configs[1]["diagnostics"] = {"lyapunov": {"at": [15], "k": 100, "steps": 8, "transient": 2}}
    results = train_group(configs)
    assert type(results[1]) is ValueError
    assert_failed_as_alone(results, configs, 1, tmp_path, 1e-10)
    # its run file and checkpoint are left as Trainer leaves them: both at step 10
    assert_same_run(tmp_path / "group" / "member1.nc", tmp_path / "alone" / "member1.nc", 1e-10)


def test_step_zero_is_recorded_with_denormals_as_trainer_records_them(tmp_path):
    """Gradients that pass through subnormal numbers at step 0 (γ = 1e-4, r = 1e-3, 130 steps,
    float64): Trainer computes them before it flushes denormals to zero, and so must the group."""
    configs = group_configs(tmp_path / "group")[:2]
    for config in configs:
        config["task"]["T"] = 130
        config["model"].update(gamma=1e-4, residual={"kind": "homogeneous", "r": 1e-3})
        config["training"].update(steps=2, eval_every=2, checkpoint_every=2)
        config["diagnostics"] = {"gradients": {"at": [0], "batch": 8}}
    results = train_group(configs)
    for result, reference in zip(results, alone(configs, tmp_path / "alone"), strict=True):
        mean_log = open_run(result.path)["gradients"]["mean_log"].values
        # norms below e^-354.5 have subnormal squares (< 2.2e-308), which flushing zeroes
        assert mean_log[np.isfinite(mean_log)].min() < -354.5
        assert_same_run(result.path, reference.path, 1e-10)


def test_resume_between_evaluations_equals_an_uninterrupted_run(tmp_path):
    """Checkpoints every 4 steps, evaluations every 10: interrupted at step 15, Trainer and the
    group resume from step 12 with the batch losses of steps 11 and 12 in the next train_loss."""
    configs = group_configs(tmp_path / "group")[:2]
    for config in configs:
        config["training"].update(eval_every=10, checkpoint_every=4)
    with pytest.raises(KeyboardInterrupt):
        train_group(configs, progress=Interrupt(15))
    resumed = train_group(configs)

    def interrupt(trainer, step, store):
        if step == 15:
            raise KeyboardInterrupt

    trainer_config = copy.deepcopy(configs[0])
    trainer_config["run"]["dir"] = str(tmp_path / "trainer")
    with pytest.raises(KeyboardInterrupt):
        Trainer(trainer_config, callbacks=[interrupt]).train()
    assert checkpoint(tmp_path / "trainer" / "member0.nc")["step"] == 12
    by_trainer = Trainer(trainer_config).train(resume=True)
    expected = alone(configs, tmp_path / "alone")
    for result, reference in zip([*resumed, by_trainer], [*expected, expected[0]], strict=True):
        assert not result.already_finished
        assert_same_result(result, reference, 1e-10)
        assert_same_run(result.path, reference.path, 1e-10)
