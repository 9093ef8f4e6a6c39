"""benchmarks/fp16_ranges.py: the hooks record the largest first- and second-order gradient through FP16 blocks,
against values computed by hand, and nothing through blocks that stay FP32."""

import torch

from benchmarks.fp16_ranges import BackwardRanges


class Block(torch.nn.Module):
    def __init__(self, use_fp16):
        super().__init__()
        self.use_fp16 = use_fp16
        self.weight = torch.nn.Parameter(torch.tensor([1.0, -3.0, 2.0]))

    def forward(self, x):
        return x * self.weight


def test_largest_gradients_of_a_penalty_on_a_gradient_through_an_fp16_block():
    torch.manual_seed(0)
    block, head = Block(use_fp16=True), torch.nn.Parameter(torch.tensor([0.5, 4.0, -1.0]))
    ranges = BackwardRanges(block)
    x = torch.randn(3, requires_grad=True)
    y = (block(x) * head).sum()
    g, = torch.autograd.grad(y, x, create_graph=True)  # g = head * w: what flows back through the block is head
    assert ranges.largest['first'] == 4.0
    (5 * g.square().sum()).backward()  # R1's form; d/d(head as a gradient) = 10 * head * w ** 2
    expected = (10 * head * block.weight ** 2).abs().max().item()
    assert ranges.largest['second'] == expected == 360.0
    ranges.reset()
    assert ranges.largest == {'first': 0.0, 'second': 0.0}


def test_blocks_that_stay_fp32_are_not_watched():
    block = Block(use_fp16=False)
    ranges = BackwardRanges(block)
    (block(torch.ones(3, requires_grad=True)) * 1e6).sum().backward()
    assert ranges.largest == {'first': 0.0, 'second': 0.0} and ranges.handles == []
