"""The training loss: chunked back-propagation (gradient caching) gives the unchunked gradients."""
from __future__ import annotations

import pytest
import torch

from kgrec.train.loop import loss_backward, ranking_loss, shared_softmax_grads


@pytest.mark.parametrize("shared", [True, False])
def test_chunked_loss_has_the_unchunked_gradients(shared):
    gen = torch.Generator().manual_seed(0)
    n_users, n_items, d, b, k = 30, 50, 8, 64, 16
    weight = torch.randn(d, d, generator=gen)
    users_x, items_x = torch.randn(n_users, d, generator=gen), torch.randn(n_items, d, generator=gen)
    users = torch.randint(0, n_users, (b,), generator=gen)
    pos = torch.randint(0, n_items, (b,), generator=gen)
    neg = torch.randint(0, n_items, (k,) if shared else (b, k), generator=gen)

    def grads(max_logits: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = weight.clone().requires_grad_()
        U = torch.nn.functional.normalize(users_x @ w, dim=1)  # a stand-in model: U, I depend on w
        I = torch.nn.functional.normalize(torch.tanh(items_x @ w), dim=1)
        value = loss_backward(U, I, users, pos, neg, "softmax", 0.2, share=0.5, max_logits=max_logits)
        return value, w.grad

    full_loss, full = grads(1 << 30)
    chunked_loss, chunked = grads(100)  # 6 examples per chunk: 11 chunks
    torch.testing.assert_close(chunked_loss, full_loss)
    torch.testing.assert_close(chunked, full)
    assert full.abs().sum() > 0


@pytest.mark.parametrize("temperature", [0.2, 0.01])
@pytest.mark.parametrize("full_catalog", [True, False])
def test_closed_form_softmax_matches_autograd(full_catalog, temperature):
    """The shared-negative softmax's hand-written gradients equal autograd's through ``ranking_loss``,
    including negatives that are an example's own positive, drawn once or twice; at τ = 0.01 the logits
    reach ±100, past ``SHIFT_FREE``, so the rows are shifted by their largest logit (``e^100`` would
    overflow float32's sums otherwise)."""
    gen = torch.Generator().manual_seed(1)
    n_items, d, b = 40, 6, 32
    u = torch.nn.functional.normalize(torch.randn(b, d, generator=gen), dim=1)
    items = torch.nn.functional.normalize(torch.randn(n_items, d, generator=gen), dim=1)
    pos = torch.randint(0, n_items, (b,), generator=gen)
    if full_catalog:
        neg = torch.arange(n_items)
    else:
        neg = torch.cat([pos[:5], pos[:2], torch.randint(0, n_items, (9,), generator=gen)])  # hits, duplicated
    weight = 0.5 / b
    value, g_u, g_p, g_n = shared_softmax_grads(u, items[pos], items[neg], pos, neg, temperature, weight)

    uu, pp, nn_ = (t.clone().requires_grad_() for t in (u, items[pos], items[neg]))
    expected = ranking_loss(uu, pp, nn_, pos, neg, "softmax", temperature) * 0.5
    expected.backward()
    torch.testing.assert_close(value, expected.detach())
    for got, want in ((g_u, uu.grad), (g_p, pp.grad), (g_n, nn_.grad)):
        torch.testing.assert_close(got, want)
    # bf16 products: the same loss and gradients to bf16's precision (8 bits: a logit of 100 at τ = 0.01
    # is off by up to 0.4 there, so only finiteness is checked at that temperature)
    value16, *grads16 = shared_softmax_grads(u, items[pos], items[neg], pos, neg, temperature, weight,
                                             low_precision=True)
    assert all(bool(t.isfinite().all()) for t in (value16, *grads16))
    if temperature < 0.05:
        return
    torch.testing.assert_close(value16, value, rtol=2e-2, atol=1e-3)
    for got, want in zip(grads16, (g_u, g_p, g_n)):
        torch.testing.assert_close(got, want, rtol=5e-2, atol=5e-3)


def test_an_epoch_takes_at_most_max_steps_steps():
    """A larger training set gets a larger batch (and a square-root-scaled learning rate) instead of more
    full-graph steps; small sets and an unbounded config keep their batch."""
    from dataclasses import replace

    from kgrec.config import OptimConfig
    from kgrec.train.loop import FullGraphBatches, scaled_to

    cfg = OptimConfig(batch_size=100, max_steps=8, lr=1e-3, negatives=4)
    assert scaled_to(cfg, 800) == cfg
    assert scaled_to(replace(cfg, max_steps=0), 10_000) == replace(cfg, max_steps=0)
    big = scaled_to(cfg, 3_201)
    assert big.batch_size == 401  # ceil(3201 / 8)
    assert big.lr == pytest.approx(1e-3 * (401 / 100) ** 0.5)
    users = torch.arange(3_201) % 50
    batches = list(FullGraphBatches((), users, users % 7, 7, None, big, torch.Generator().manual_seed(0)))
    assert len(batches) == 8 and sum(b.users.numel() for b in batches) == 3_201
    with pytest.raises(ValueError, match="max_steps"):
        scaled_to(replace(cfg, max_steps=-1), 10)


def test_auto_precision_is_bf16_on_cuda_and_on_cpus_with_native_bf16(monkeypatch):
    from kgrec.train import loop

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for native in (True, False):
        monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda native=native: native)
        assert loop.uses_bf16("auto", cpu) is native
        assert loop.uses_bf16("auto", cuda) and loop.uses_bf16("bf16", cpu) and not loop.uses_bf16("fp32", cuda)
    with pytest.raises(ValueError, match="unknown precision"):
        loop.uses_bf16("fp16", cpu)


def test_the_cached_gradients_are_released_before_the_models_backward_goes_on():
    """``loss_backward`` hands ``∂L/∂U`` to the model's backward without holding it to the end (at a million
    interactions that tensor is 0.1 GiB of the step's peak): by the time the gradient reaches a tensor
    upstream of ``U`` the cached one is gone, and the gradients are those of ``torch.autograd.backward``."""
    import weakref

    from kgrec.train.loop import _backward_once

    gen = torch.Generator().manual_seed(0)
    x, w0 = torch.randn(20, 6, generator=gen), torch.randn(6, 6, generator=gen)
    g_u, g_i = torch.randn(20, 6, generator=gen), torch.randn(20, 6, generator=gen)

    def run(backward) -> tuple[torch.Tensor, list[bool]]:
        w = w0.clone().requires_grad_()
        hidden = x @ w  # [20, 6], upstream of U
        U, I = torch.tanh(hidden), hidden * 2
        grads = [g_u.clone(), g_i.clone()]
        alive = weakref.ref(grads[0])
        seen: list[bool] = []
        hidden.register_hook(lambda g: seen.append(alive() is not None))
        backward(U, I, grads)
        return w.grad, seen

    ref, held = run(lambda U, I, grads: torch.autograd.backward([U, I], grads))
    got, released = run(_backward_once)
    torch.testing.assert_close(got, ref)
    assert held == [True]  # what torch.autograd.backward does: its arguments live to its end
    assert released == [False]
