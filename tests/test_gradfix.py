"""The gradfix custom ops as patched for PyTorch >= 1.10, against autograd on the stock ops."""

import torch

from torch_utils.ops import conv2d_gradfix, grid_sample_gradfix
from training.augment import AugmentPipe


def test_conv2d_custom_op_matches_stock_to_second_order():
    torch.manual_seed(0)
    for transpose in [False, True]:
        x = torch.randn(2, 4, 7, 7, dtype=torch.float64, requires_grad=True)
        w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True) if transpose else torch.randn(3, 4, 3, 3, dtype=torch.float64, requires_grad=True)
        op = conv2d_gradfix._conv2d_gradfix(transpose=transpose, weight_shape=w.shape, stride=2, padding=1,
                                            output_padding=1 if transpose else 0, dilation=1, groups=1)
        stock = (lambda a, b: torch.nn.functional.conv_transpose2d(a, b, stride=2, padding=1, output_padding=1)) if transpose \
            else (lambda a, b: torch.nn.functional.conv2d(a, b, stride=2, padding=1))
        assert torch.allclose(op.apply(x, w, None), stock(x, w))
        assert torch.autograd.gradcheck(lambda a, b: op.apply(a, b, None), (x, w))
        assert torch.autograd.gradgradcheck(lambda a, b: op.apply(a, b, None), (x, w))


def test_grid_sample_custom_op_is_used_and_supports_double_backward():
    grid_sample_gradfix.enabled = True
    assert grid_sample_gradfix._should_use_custom_op()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    grid = torch.rand(2, 8, 8, 2, dtype=torch.float64) * 2 - 1
    assert torch.autograd.gradcheck(grid_sample_gradfix.grid_sample, (x, grid))
    assert torch.autograd.gradgradcheck(grid_sample_gradfix.grid_sample, (x, grid))


def test_r1_through_ada_bgc_pipe_reaches_the_discriminator():
    """R1's double backward through ADA's geometric ops: the case that broke on PyTorch >= 1.11."""
    torch.manual_seed(0)
    grid_sample_gradfix.enabled = True
    pipe = AugmentPipe(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
                       brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
    pipe.p.fill_(1.0)
    critic = torch.nn.Conv2d(3, 1, 3)
    real = torch.randn(4, 3, 16, 16, requires_grad=True)
    score = critic(pipe(real)).sum()
    (grad,) = torch.autograd.grad(score, real, create_graph=True)
    grad.square().sum().backward()
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0
