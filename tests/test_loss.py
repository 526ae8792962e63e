"""The training loss: chunked back-propagation (gradient caching) gives the unchunked gradients."""
from __future__ import annotations

import pytest
import torch

from kgrec.train.loop import loss_backward


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
