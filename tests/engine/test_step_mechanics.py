"""Trainer step mechanics: clipping, accumulation, L1 penalty, EMA, mixing, and exact resume of all of them."""

from __future__ import annotations

import copy
import io
from typing import Any, Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainlab.engine.callbacks import Callback
from trainlab.engine.ema import WeightEMA
from trainlab.engine.mixing import Mixing, cutmix, mixup
from trainlab.engine.step import StepRecipe, mixed_loss
from trainlab.engine.trainer import LoopSettings, Trainer
from trainlab.optim import L1Penalty


class ListLoader:
    """The trainer's loader protocol over fixed batches (same order every epoch)."""

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.batches = batches
        self.num_examples = sum(len(y) for _, y in batches)

    def __len__(self) -> int:
        return len(self.batches)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        yield from self.batches[start:]


class ConstantSchedule:
    def __init__(self) -> None:
        self.steps = 0

    def step(self) -> None:
        self.steps += 1

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.steps = data["steps"]


class StopAfter(Callback):
    def __init__(self, batches: int) -> None:
        self.batches = batches

    def on_batch_end(self, trainer: Any, state: Any) -> None:
        if state.step == self.batches:
            state.stop("test stop")


def _data(n: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=generator), torch.randint(0, 3, (n,), generator=generator)


def _trainer(batches: list, epochs: int = 1, momentum: float = 0.0, **recipe: Any) -> Trainer:
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=momentum)
    return Trainer(model, ListLoader(batches), None, optimizer, ConstantSchedule(), nn.CrossEntropyLoss(),
                   LoopSettings(task="classification", epochs=epochs, device=torch.device("cpu"),
                                recipe=StepRecipe(**recipe)))


def _split(x: torch.Tensor, y: torch.Tensor, size: int) -> list:
    return list(zip(x.split(size), y.split(size)))


def test_accumulating_small_batches_equals_one_big_batch() -> None:
    x, y = _data()
    big = _trainer([(x, y)])
    big.fit()
    small = _trainer(_split(x, y, 8), accumulate=4)
    small.fit()
    assert small.schedule.steps == big.schedule.steps == 1
    for a, b in zip(small.model.parameters(), big.model.parameters()):
        torch.testing.assert_close(a, b)


def test_short_last_accumulation_group_is_averaged_over_its_own_batches() -> None:
    x, y = _data(40)
    trainer = _trainer(_split(x, y, 8), accumulate=2)  # groups of 2, 2, 1 batches
    trainer.fit()
    reference = _trainer([(x[:16], y[:16]), (x[16:32], y[16:32]), (x[32:], y[32:])])
    reference.fit()
    assert trainer.schedule.steps == 3
    for a, b in zip(trainer.model.parameters(), reference.model.parameters()):
        torch.testing.assert_close(a, b)


def test_clipping_bounds_the_global_norm_and_each_value() -> None:
    params = [nn.Parameter(torch.zeros(10)), nn.Parameter(torch.zeros(3, 3))]
    for p in params:
        p.grad = torch.randn_like(p) * 100
    StepRecipe(clip_grad_norm=1.0).clip(params)
    assert torch.cat([p.grad.flatten() for p in params]).norm().item() == pytest.approx(1.0, rel=1e-4)
    for p in params:
        p.grad = torch.randn_like(p) * 100
    StepRecipe(clip_grad_value=0.5).clip(params)
    assert max(p.grad.abs().max().item() for p in params) <= 0.5


def test_trainer_applies_clipping_before_the_update() -> None:
    x, y = _data()
    trainer = _trainer([(x * 1000, y)], clip_grad_norm=0.01)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.fit()
    step = torch.cat([(p - b).flatten() for p, b in zip(trainer.model.parameters(), before)])
    assert step.norm().item() == pytest.approx(0.1 * 0.01, rel=1e-4)  # lr × clipped norm


def test_l1_penalty_enters_the_gradient() -> None:
    x, y = _data()
    trainer = _trainer([(x, y)])
    trainer.recipe = StepRecipe(penalty=L1Penalty(trainer.model, 0.05))
    reference = copy.deepcopy(trainer.model)
    trainer.fit()
    (F.cross_entropy(reference(x), y) + 0.05 * reference.weight.abs().sum()).backward()
    for trained, ref in zip(trainer.model.parameters(), reference.parameters()):
        torch.testing.assert_close(trained, (ref - 0.1 * ref.grad).detach())


def test_ema_update_formula() -> None:
    model = nn.Linear(2, 1)
    ema = WeightEMA(model, decay=0.9)
    average = model.weight.detach().clone()
    for t in range(30):
        with torch.no_grad():
            model.weight.add_(1.0)
        decay = min(0.9, (1 + t) / (10 + t))
        average = decay * average + (1 - decay) * model.weight.detach()
        ema.update(model)
    torch.testing.assert_close(ema.module.weight, average)
    assert ema.current_decay() == pytest.approx(min(0.9, 31 / 40))


def test_evaluation_uses_the_ema_weights() -> None:
    x, y = _data()
    trainer = _trainer(_split(x, y, 8), epochs=2, ema=0.5)
    trainer.fit()
    loader = ListLoader([(x, y)])
    expected = F.cross_entropy(trainer.ema.module(x), y).item()
    assert trainer.evaluate(loader)["test_loss"] == pytest.approx(expected)
    assert expected != pytest.approx(F.cross_entropy(trainer.model(x), y).item())


def _roundtrip(data: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(data, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_resume_inside_an_accumulation_group_with_ema_is_exact() -> None:
    x, y = _data(48)
    batches = _split(x, y, 8)
    recipe = dict(accumulate=2, ema=0.9, clip_grad_norm=1.0, mixing=Mixing(mixup=0.4))
    whole = _trainer(batches, epochs=2, momentum=0.9, **recipe)
    whole.fit()
    part = _trainer(batches, epochs=2, momentum=0.9, **recipe)
    part.callbacks = {"stop": StopAfter(9)}  # stops mid-epoch 2, inside a group
    part.fit()
    saved = _roundtrip({"model": part.model.state_dict(), "state": part.state_dict()})
    assert saved["state"]["accumulated_grads"] is not None and saved["state"]["ema"]["updates"] == 4
    resumed = _trainer(batches, epochs=2, momentum=0.9, **recipe)
    resumed.model.load_state_dict(saved["model"])
    resumed.load_state_dict(saved["state"])
    resumed.fit()
    for a, b in zip(resumed.model.parameters(), whole.model.parameters()):
        torch.testing.assert_close(a, b)
    for a, b in zip(resumed.ema.module.parameters(), whole.ema.module.parameters()):
        torch.testing.assert_close(a, b)


def test_mixup_blends_inputs_and_labels_in_the_same_proportion() -> None:
    x, y = _data(8)
    perm = torch.tensor([3, 2, 1, 0, 7, 6, 5, 4])
    torch.testing.assert_close(mixup(x, perm, 0.7), 0.7 * x + 0.3 * x[perm])
    output = torch.randn(8, 3)
    soft = 0.7 * F.one_hot(y, 3).float() + 0.3 * F.one_hot(y[perm], 3).float()
    expected = F.cross_entropy(output, soft)
    assert mixed_loss(nn.CrossEntropyLoss(), output, y, y[perm], 0.7).item() == pytest.approx(expected.item())


def test_mixing_draws_a_dominant_label_and_respects_probability() -> None:
    torch.manual_seed(0)
    x, y = _data(16)
    mixed, y_a, y_b, lam = Mixing(mixup=1.0)(x, y)
    assert 0.5 <= lam <= 1.0 and torch.equal(y_a, y) and sorted(y_b.tolist()) == sorted(y.tolist())
    assert Mixing(mixup=1.0, prob=0.0)(x, y) is None
    assert Mixing()(x, y) is None


def test_cutmix_pastes_a_box_and_reports_the_kept_fraction() -> None:
    torch.manual_seed(0)
    x = torch.zeros(2, 1, 8, 8)
    x[1] = 1.0
    mixed, kept = cutmix(x, torch.tensor([1, 0]), lam=0.75)
    assert (mixed[0] == 0).float().mean().item() == pytest.approx(kept)
    assert 0.5 <= kept < 1.0
    with pytest.raises(ValueError, match="image batches"):
        cutmix(torch.zeros(4, 3), torch.arange(4), 0.5)
