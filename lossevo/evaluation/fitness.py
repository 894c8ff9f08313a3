"""evaluate / evaluate_many: probes → batched training under noise → environments → statistics.

Scores come from one split: ``validation`` (the default; every choice — campaign fitness,
racing, tuning, model selection — reads it) or ``test`` (reports only: ``lossevo compare``
and the experiments). Validation labels carry the task's corruption, drawn once per
evaluation seed and shared by its instances (a user has one noisy validation set), except a
trusted share that stays clean; validation mode never touches the test arrays.

One instance k of an evaluation with seed s owns the seed sequence (s, k): its noise draw,
initial weights and data order come from it and from nothing else, so every candidate sees the
same instances (common random numbers: differences between candidates are not luck), a
candidate's randomness does not depend on what it was batched with (only float rounding can,
through the batch shape), and racing can add instances later. A training scheme
(lossevo.baselines.schemes) trains every candidate around its loss on the same instances; its
own randomness comes from the child seed sequence (s, k, 1), so it is paired too. Rejected
candidates (failed probes, invalid text, an exception, nan/inf) get the worst fitness and a
reason; they never disturb the other candidates of their batch.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lossevo.evaluation.data import Dataset, load_dataset
from lossevo.evaluation.early_stopping import EarlyStopper
from lossevo.evaluation.environments import adversarial_inputs, shifted_set
from lossevo.evaluation.fidelity import Fidelity, successive_halving
from lossevo.evaluation.models import Params, build_module, init_params, stacked_forward
from lossevo.evaluation.noise import corrupt_inputs, corrupt_labels, corrupt_targets
from lossevo.evaluation.racing import Racing, race
from lossevo.evaluation.sharpness import top_hessian_eigenvalue
from lossevo.evaluation.statistics import fitness_vector, summarize, with_worst_env, worst_fitness
from lossevo.evaluation.tasks import EnvKind, Task
from lossevo.evaluation.training import Group, SchemeContext, TrainingScheme, train_models
from lossevo.symbolic.kinds import TaskKind

__all__ = [
    "MAX_MODELS",
    "SPLITS",
    "Candidate",
    "Evaluation",
    "environment_sets",
    "evaluate",
    "evaluate_many",
    "prepare_candidate",
    "resolve_device",
    "run_round",
]

SPLITS = ("validation", "test")

# Models trained together in one batch (candidates × instances). On a 2-core CPU, batches of
# 16 models ran a 32-candidate × 4-instance population in 66.5 s against 84.6 s for one batch
# of 128 (cache-resident working set); a GPU wants all the parallelism it can get.
MAX_MODELS = {"cpu": 16, "cuda": 512}
_EVAL_CHUNK = 64  # models attacked/scored at once (bounds memory of adversarial inputs)

PerInstance = dict[str, dict[str, np.ndarray]]


@dataclass(frozen=True)
class Evaluation:
    """Result for one candidate. `metrics` names: see lossevo.evaluation.statistics. `seconds` is
    the candidate's share of the wall time of the batches it was trained in; `trainings` counts
    the model trainings spent on it (instances, fewer when raced out or rejected early) and
    `model_epochs` their epochs; `fidelity` is the share of the epochs its scores come from
    (below 1.0: stopped at a low rung of multi-fidelity evaluation, see
    lossevo.evaluation.fidelity)."""

    loss: str
    metrics: dict[str, float]
    fitness: tuple[float, ...]
    per_instance: dict[str, dict[str, list[float]]]
    seconds: float
    trainings: int
    rejected: str | None = None
    raced_out: bool = False
    instances: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    split: str = "validation"
    fidelity: float = 1.0
    model_epochs: int = 0


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class Candidate:
    """One loss on its way through evaluation: its text, its per-sample function (None when
    rejected, with the reason), and the per-instance scores filled in as rounds train it."""

    text: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None
    rejected: str | None = None
    per_instance: dict[int, dict[str, dict[str, float]]] = field(default_factory=dict)
    seconds: float = 0.0
    stopped: dict[int, int] = field(default_factory=dict)  # instance -> epoch kept


def prepare_candidate(loss: Any, kind: TaskKind) -> Candidate:
    """Turn a loss (expression text, SymbolicLoss or per-sample callable) into a Candidate;
    probes run here, so a hopeless expression is rejected before any model trains."""
    from lossevo.symbolic.loss import SymbolicLoss
    from lossevo.symbolic.probes import check_expression

    if isinstance(loss, SymbolicLoss):
        if loss.kind != kind:
            return Candidate(loss.expression, None,
                             f"loss kind {str(loss.kind)!r} != task {str(kind)!r}")
        text = loss.expression
    elif isinstance(loss, str):
        text = loss
    elif callable(loss):  # a per-sample callable (outputs, targets) -> (n,), e.g. a baseline
        return Candidate(repr(loss), loss)
    else:
        return Candidate(repr(loss), None, f"not a loss: {type(loss).__name__}")
    try:
        reasons = check_expression(text, kind)
        if reasons:
            return Candidate(text, None, "probe: " + "; ".join(reasons))
        return Candidate(text, SymbolicLoss(text, kind=kind, reduction="none"))
    except Exception as exc:  # invalid text (ValueError) or a probe that crashed
        return Candidate(text, None, f"invalid: {type(exc).__name__}: {exc}")


def _instance_seeds(seed: int, k: int) -> tuple[int, int, int]:
    noise, init, order = np.random.SeedSequence(seed, spawn_key=(k,)).generate_state(3)
    return int(noise), int(init), int(order)


def _scheme_seed(seed: int, k: int) -> int:
    """Seed of a training scheme's randomness (mixup draws, PGD starts) in instance k."""
    return int(np.random.SeedSequence(seed, spawn_key=(k, 1)).generate_state(1)[0])


@functools.lru_cache(maxsize=64)
def _instance_data(task: Task, seed: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Training (x, y) of instance k: its own label/target and input corruption."""
    data = load_dataset(task)
    rng = np.random.default_rng(_instance_seeds(seed, k)[0])
    if task.kind is TaskKind.REGRESSION:
        y = corrupt_targets(data.y_train, task.noise, rng)
    else:
        y = corrupt_labels(data.x_train, data.y_train, data.n_classes, task.noise, rng)
    x = corrupt_inputs(data.x_train, task.noise.input_sigma, rng)
    return x, y


@functools.lru_cache(maxsize=16)
def _split_arrays(task: Task, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) that a split is scored on. Validation: corrupted like training (labels or
    targets, and inputs), with its own seed stream, except the first `trusted_fraction`
    (the split is already shuffled) that keeps clean labels."""
    data = load_dataset(task)
    if split == "test":
        return data.x_test, data.y_test
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(10**6 + 1,)))
    if task.kind is TaskKind.REGRESSION:
        y = corrupt_targets(data.y_val, task.noise, rng).astype(np.float32)
    else:
        y = corrupt_labels(data.x_val, data.y_val, data.n_classes, task.noise, rng)
    x = corrupt_inputs(data.x_val, task.noise.input_sigma, rng)
    trusted = round(task.validation.trusted_fraction * len(y))
    y[:trusted] = data.y_val[:trusted]
    return x, y


@functools.lru_cache(maxsize=16)
def environment_sets(task: Task, seed: int, split: str
                     ) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """(x, y) of each environment of `task` on `split`, as an evaluation with `seed` scores
    them (adversarial ones unattacked: attacks are per model). Cached; do not mutate."""
    x, y = _split_arrays(task, seed, split)
    shape = load_dataset(task).image_shape
    return tuple(
        shifted_set(env, x, y, shape, np.random.default_rng(
            np.random.SeedSequence(seed, spawn_key=(10**6, i))))
        for i, env in enumerate(task.environments)
    )


def _target_scale(data: Dataset) -> tuple[float, float]:
    """Regression targets are trained standardized by the clean signal's mean and std."""
    return float(data.y_train.mean()), float(data.y_train.std())


def _score(
    task: Task, module: torch.nn.Module, params: Params, seed: int, device: torch.device,
    split: str,
) -> PerInstance:
    """{metric: {env: values (M,)}} of the trained stacked models."""
    data = load_dataset(task)
    n_models = next(iter(params.values())).shape[0]
    out: PerInstance = {m: {} for m in (("r2", "mse") if task.kind is TaskKind.REGRESSION
                                        else ("accuracy",))}
    loc, scale = _target_scale(data)
    envs = environment_sets(task, seed, split)
    for env, (x_np, y_np) in zip(task.environments, envs, strict=True):
        x = torch.as_tensor(x_np, device=device)
        y = torch.as_tensor(y_np, device=device)
        chunks = []
        for lo in range(0, n_models, _EVAL_CHUNK):
            part = {k: v[lo:lo + _EVAL_CHUNK] for k, v in params.items()}
            if env.kind in (EnvKind.FGSM, EnvKind.PGD):
                adv = adversarial_inputs(module, part, x, y, env, data.clip)
                with torch.no_grad():
                    chunks.append(stacked_forward(module, part, adv, shared=False))
            else:
                with torch.no_grad():
                    chunks.append(stacked_forward(module, part, x, shared=True))
        outputs = torch.cat(chunks)
        if task.kind is TaskKind.REGRESSION:
            pred = outputs.squeeze(-1).double() * scale + loc
            mse = ((pred - y.double()) ** 2).mean(1)
            out["mse"][env.name] = mse.cpu().numpy()
            out["r2"][env.name] = (1.0 - mse / y.double().var(unbiased=False)).cpu().numpy()
        else:
            acc = (outputs.argmax(-1) == y).double().mean(1)
            out["accuracy"][env.name] = acc.cpu().numpy()
    if task.sharpness:  # on (up to) 512 clean training samples, shared by all models
        x_tr = torch.as_tensor(data.x_train[:512], device=device)
        y_np = data.y_train[:512]
        if task.kind is TaskKind.REGRESSION:
            y_np = ((y_np - loc) / scale).astype(np.float32)
        y_tr = torch.as_tensor(y_np, device=device)
        out["sharpness"] = {"train": torch.cat([
            top_hessian_eigenvalue(module, {k: v[lo:lo + _EVAL_CHUNK] for k, v in params.items()},
                                   x_tr, y_tr)
            for lo in range(0, n_models, _EVAL_CHUNK)]).cpu().numpy()}
    return out


def _train_batch(
    task: Task, cands: Sequence[Candidate], instance_ids: Sequence[int], seed: int,
    device: torch.device, scheme: TrainingScheme | None, split: str,
    early_stopping: bool = False,
) -> None:
    """Train every (candidate, instance) pair together; store per-instance scores."""
    data = load_dataset(task)
    kind = task.kind
    n_out = 1 if kind is TaskKind.REGRESSION else data.n_classes
    module = build_module(task.model, data.n_features, n_out)
    seeds = [_instance_seeds(seed, k) for k in instance_ids]
    k_count = len(instance_ids)
    inst = [_instance_data(task, seed, k) for k in instance_ids]
    shared_x = task.noise.input_sigma == 0
    x_np = data.x_train if shared_x else np.stack([xi for xi, _ in inst])
    y_np = np.stack([yi for _, yi in inst])
    if kind is TaskKind.REGRESSION:
        loc, scale = _target_scale(data)
        y_np = ((y_np - loc) / scale).astype(np.float32)
    rows = np.tile(np.arange(k_count), len(cands))  # model m = candidate m // K, instance m % K
    x = torch.as_tensor(x_np if shared_x else x_np[rows], device=device)
    y = torch.as_tensor(y_np[rows], device=device)
    params = init_params(module, [seeds[r][1] for r in rows], device)
    groups = [Group(c.fn, i * k_count, (i + 1) * k_count) for i, c in enumerate(cands)]
    started = time.perf_counter()
    state = None
    if scheme is not None:
        ctx = SchemeContext(x, y, shared_x, n_out, tuple(
            _scheme_seed(seed, instance_ids[r]) for r in rows), task.budget, task)
        try:
            state = scheme.init_state(ctx)
        except Exception as exc:  # the scheme cannot run here: no candidate can
            for c in cands:
                c.rejected = f"scheme {scheme!r} raised {type(exc).__name__}: {exc}"
            return
    stopper = None
    if early_stopping:
        x_val, y_val = _split_arrays(task, seed, "validation")
        if kind is TaskKind.REGRESSION:
            y_val = ((y_val - loc) / scale).astype(np.float32)
        stopper = EarlyStopper(module, params, torch.as_tensor(x_val, device=device),
                               torch.as_tensor(y_val, device=device), kind is TaskKind.REGRESSION)
    result = train_models(module, params, x, y, groups, task.budget,
                          [seeds[r][2] for r in rows], shared_x, scheme, state,
                          on_epoch=stopper)
    trained = result.params if stopper is None else stopper.best
    alive = [i for i, f in enumerate(result.failures) if f is None]
    scores: PerInstance = {}
    if alive:
        keep = torch.as_tensor([i * k_count + j for i in alive for j in range(k_count)],
                               device=device)
        scores = _score(task, module, {k: v[keep] for k, v in trained.items()},
                        seed, device, split)
    share = (time.perf_counter() - started) / len(cands)
    for i, c in enumerate(cands):
        c.seconds += share
        if result.failures[i] is not None:
            c.rejected = result.failures[i]
            continue
        pos = alive.index(i)
        for j, k in enumerate(instance_ids):
            if stopper is not None:
                c.stopped[k] = int(stopper.epoch[i * k_count + j])
            c.per_instance[k] = {
                metric: {env: float(v[pos * k_count + j]) for env, v in envs.items()}
                for metric, envs in scores.items()
            }


def run_round(task: Task, cands: Sequence[Candidate], instance_ids: Sequence[int],
              seed: int, device: torch.device, scheme: TrainingScheme | None = None,
              split: str = "validation", early_stopping: bool = False) -> None:
    """Train the unrejected candidates on the given instances, in batches of at most
    MAX_MODELS models, storing each instance's scores on its Candidate."""
    todo = [c for c in cands if c.rejected is None]
    per_batch = max(1, MAX_MODELS.get(device.type, 64) // max(1, len(instance_ids)))
    for lo in range(0, len(todo), per_batch):
        _train_batch(task, todo[lo:lo + per_batch], instance_ids, seed, device, scheme, split,
                     early_stopping)


def _per_instance_arrays(c: Candidate) -> PerInstance:
    ks = sorted(c.per_instance)
    first = c.per_instance[ks[0]]
    return {m: {env: np.array([c.per_instance[k][m][env] for k in ks]) for env in envs}
            for m, envs in first.items()}


def _finish(task: Task, c: Candidate, trainings: int, raced_out: bool,
            split: str) -> Evaluation:
    spec = task.fitness_spec
    spent = trainings * task.budget.epochs
    if c.rejected is not None or not c.per_instance:
        return Evaluation(c.text, {}, worst_fitness(spec), {}, c.seconds, trainings,
                          c.rejected or "not trained", raced_out, len(c.per_instance),
                          split=split, model_epochs=spent)
    per = with_worst_env(_per_instance_arrays(c))
    metrics = summarize(per)
    listed = {m: {e: v.tolist() for e, v in envs.items()} for m, envs in per.items()}
    extra = {"stopped_epoch": [c.stopped[k] for k in sorted(c.stopped)]} if c.stopped else {}
    return Evaluation(c.text, metrics, fitness_vector(metrics, spec), listed, c.seconds,
                      trainings, None, raced_out, len(c.per_instance), extra, split,
                      model_epochs=spent)


def evaluate_many(
    losses: Sequence[Any], task: Task, *, instances: int = 8, seed: int = 0,
    racing: Racing | None = None, device: str | torch.device | None = None,
    scheme: TrainingScheme | None = None, split: str = "validation",
    early_stopping: bool = False, fidelity: Fidelity | None = None,
) -> list[Evaluation]:
    """Evaluate a population; all its candidates × instances train in shared batches.

    `losses`: expression strings, SymbolicLoss modules, or per-sample callables
    (outputs, targets) -> (n,). With `racing`, weak candidates stop early (see
    lossevo.evaluation.racing); their Evaluation has `raced_out=True` and statistics over the
    instances they had. `scheme` (see lossevo.baselines.schemes) trains each candidate with that
    scheme around its loss; where it does not apply to the task, every candidate is rejected with
    the reason. `split`: where scores come from — "validation" for every choice, "test" for reports.
    `early_stopping`: each model keeps its best epoch by clean accuracy on the (noisy)
    validation split (lossevo.evaluation.early_stopping); `extra["stopped_epoch"]` lists them.
    `fidelity`: successive halving over the epochs (lossevo.evaluation.fidelity), racing inside each
    rung; a candidate's Evaluation is from the last rung it reached (`fidelity` < 1.0 when
    it stopped early), with `seconds`, `trainings` and `model_epochs` summed over its rungs
    and `extra["rung_fitness"]` its fitness at each of them.
    """
    if isinstance(instances, bool) or not isinstance(instances, int) or instances < 1:
        raise ValueError(f"instances = {instances!r}; allowed: an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed = {seed!r}; allowed: an integer >= 0")
    if split not in SPLITS:
        raise ValueError(f"split = {split!r}; allowed: {', '.join(SPLITS)}")
    epochs = None if fidelity is None else fidelity.epochs(task.budget.epochs)
    dev = resolve_device(device)
    cands = [prepare_candidate(loss, task.kind) for loss in losses]
    why_not = None if scheme is None else scheme.applies_to(task)
    for c in cands:
        if why_not is not None and c.rejected is None:
            c.rejected = why_not
    opts = {"instances": instances, "seed": seed, "racing": racing, "device": dev,
            "scheme": scheme, "split": split, "early_stopping": early_stopping}
    if fidelity is None or epochs is None:
        return _evaluate_prepared(cands, task, **opts)
    return _by_rungs(cands, task, fidelity, epochs, opts)


def _evaluate_prepared(
    cands: list[Candidate], task: Task, *, instances: int, seed: int, racing: Racing | None,
    device: torch.device, scheme: TrainingScheme | None, split: str, early_stopping: bool,
) -> list[Evaluation]:
    valid = [i for i, c in enumerate(cands) if c.rejected is None]
    if racing is None:
        run_round(task, [cands[i] for i in valid], list(range(instances)), seed, device,
                  scheme, split, early_stopping)
        return [_finish(task, c, instances if i in valid else 0, False, split)
                for i, c in enumerate(cands)]

    def train_some(idx: list[int], instance_ids: list[int]) -> list[int]:
        run_round(task, [cands[i] for i in idx], instance_ids, seed, device, scheme, split,
                  early_stopping)
        return [i for i in idx if cands[i].rejected is None]

    def score(i: int) -> float:
        return _finish(task, cands[i], 0, False, split).fitness[0]

    outcome = race(valid, instances, racing, train_some, score)
    return [_finish(task, c, outcome.trainings.get(i, 0), i in outcome.raced_out, split)
            for i, c in enumerate(cands)]


def _by_rungs(cands: list[Candidate], task: Task, fidelity: Fidelity, epochs: list[int],
              opts: dict[str, Any]) -> list[Evaluation]:
    """Successive halving: each rung trains its candidates afresh on `task` with that rung's
    epochs (see lossevo.evaluation.fidelity for why afresh); probes ran once, before the first
    rung."""
    last: dict[int, Evaluation] = {}
    spent: dict[int, list[Evaluation]] = {}

    def run_rung(r: int, idx: list[int]) -> list[int]:
        rung_task = task if r == len(epochs) - 1 else task.with_overrides(
            budget={"epochs": epochs[r]})
        fresh = [Candidate(cands[i].text, cands[i].fn, cands[i].rejected) for i in idx]
        evals = _evaluate_prepared(fresh, rung_task, **opts)
        for i, ev in zip(idx, evals, strict=True):
            last[i] = dataclasses.replace(ev, fidelity=fidelity.rungs[r])
            spent.setdefault(i, []).append(ev)
        return [i for i, ev in zip(idx, evals, strict=True) if ev.rejected is None]

    def score(i: int) -> tuple[float, ...]:  # raced out inside the rung: after the rest
        return (float(not last[i].raced_out), *last[i].fitness)

    successive_halving(range(len(cands)), fidelity, run_rung, score)
    return [dataclasses.replace(
        last[i], seconds=sum(e.seconds for e in spent[i]),
        trainings=sum(e.trainings for e in spent[i]),
        model_epochs=sum(e.model_epochs for e in spent[i]),
        extra={**last[i].extra, "rung_fitness": [list(e.fitness) for e in spent[i]]})
        for i in range(len(cands))]


def evaluate(
    loss: Any, task: Task, *, instances: int = 8, seed: int = 0,
    device: str | torch.device | None = None, scheme: TrainingScheme | None = None,
    split: str = "validation", early_stopping: bool = False,
) -> Evaluation:
    """Evaluate one candidate on `instances` instances (see evaluate_many)."""
    return evaluate_many([loss], task, instances=instances, seed=seed, device=device,
                         scheme=scheme, split=split, early_stopping=early_stopping)[0]
