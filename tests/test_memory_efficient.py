"""Memory-efficient FC-DenseNet: the same gradients and statistics, half the saved activations."""

import pytest
import torch

from seglab.models import build


def _pair(name="fc_densenet56"):
    torch.manual_seed(0)
    plain = build(name, num_classes=3)
    lean = build(name, num_classes=3, memory_efficient=True)
    lean.load_state_dict(plain.state_dict())
    return plain.train(), lean.train()


def _step(model, x, y):
    torch.manual_seed(1)  # the same dropout masks in both
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach()


def test_gradients_and_running_statistics_equal_the_plain_model():
    plain, lean = _pair()
    x, y = torch.randn(2, 3, 32, 48), torch.randint(0, 3, (2, 32, 48))
    a, b = _step(plain, x, y), _step(lean, x, y)
    torch.testing.assert_close(a, b)
    for (name, p), q in zip(plain.named_parameters(), lean.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)
    for (name, s), t in zip(plain.state_dict().items(), lean.state_dict().values(), strict=True):
        torch.testing.assert_close(s, t, rtol=1e-5, atol=1e-6, msg=name)  # updated exactly once
    assert int(lean.state_dict()["down_blocks.0.layers.0.0.num_batches_tracked"]) == 1
    plain.eval(), lean.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(x), lean(x), rtol=1e-4, atol=1e-5)


def _saved_bytes(model, x) -> int:
    """Bytes of the tensors autograd keeps for the backward pass."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum().backward()
    return total


@pytest.mark.parametrize(
    "name", ["fc_densenet56", pytest.param("fc_densenet103", marks=pytest.mark.slow)]
)
def test_saves_at_most_half_the_activations(name):
    plain, lean = _pair(name)
    x = torch.randn(1, 3, 64, 64)
    full, small = _saved_bytes(plain, x), _saved_bytes(lean, x)
    assert small <= 0.5 * full, (small, full)
