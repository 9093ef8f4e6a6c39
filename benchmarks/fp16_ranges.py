"""How close each method's backward passes come to FP16's range in the networks' FP16 blocks, against upstream's own
R1 at the same point: an analysis of the ranges that runs on the CPU (which computes those blocks in FP32).

    python benchmarks/fp16_ranges.py [--method NAME=LOSS_CLASS[:JSON_KWARGS] ...] [--aug noaug|ada|CLASS]
                                     [--D-class CLASS] [--resolution 32] [--batch 4] [--minibatches 2]
                                     [--r1-gamma 10] [--seed 0] [--snapshot PKL] [--json PATH]

Networks as --cfg low_shot builds them (channel_base 32768, at most 512 channels, z and w 512, a 2-layer mapping,
FP16 in the 4 highest resolutions with conv_clamp 256), at initialisation. For each method every phase runs
(Gmain, Greg, Dmain, Dreg, each minibatch, gain = its interval as in the training loop); a hook on every output of
every block that runs in FP16 on a GPU records the largest |value| of what flows back through it: the gradient of
the phase's loss, and, for the penalties that differentiate a gradient (R1, DigGAN's), the gradient reaching the
gradients the first backward pass made. FP16 holds 65504 at most: the printed headroom is 65504 over the largest
value, and the ratio compares it with the baseline's (the first method's) largest value in the same phase. A GPU
run counts what actually overflowed (Gradients/nonfinite/<phase>, patch 0019); this says where it can.

--snapshot PKL starts every method from a trained snapshot's G and D instead (at its resolution; any training
config): the blocks that --cfg low_shot would run in FP16 (the 4 highest resolutions, from 8x8 up) are watched
whatever the snapshot's own precision.
"""

import copy
import json
import math
import pickle
from pathlib import Path

import click
import torch

from benchmarks.compare import (PHASES, registered_methods, Config, build_loss, build_networks,
                                make_data, parse_method)

ROOT = Path(__file__).resolve().parents[1]

FP16_MAX = 65504.0


class BackwardRanges:
    """Hooks on the outputs of the FP16 blocks that keep the largest |gradient| seen, first and second order."""

    def __init__(self, *networks):
        self.largest = {'first': 0.0, 'second': 0.0}
        self.handles = [block.register_forward_hook(self.on_output) for network in networks
                        for block in network.modules() if getattr(block, 'use_fp16', False)]

    def on_output(self, _block, _inputs, outputs):
        for tensor in outputs if isinstance(outputs, tuple) else (outputs,):
            if isinstance(tensor, torch.Tensor) and tensor.requires_grad:
                tensor.register_hook(self.on_gradient)

    def on_gradient(self, grad):
        self.keep('first', grad)
        if grad.requires_grad:  # a graph built to be differentiated again (create_graph): its own gradient next
            grad.register_hook(lambda second: self.keep('second', second))

    def keep(self, order, grad):
        self.largest[order] = max(self.largest[order], grad.detach().abs().max().item())

    def reset(self):
        self.largest = {'first': 0.0, 'second': 0.0}


def measure(spec, aug, d_class, resolution, batch, minibatches, r1_gamma, seed, snapshot=None):
    """{phase: {'first': largest |grad|, 'second': ...}} of one method (see the module docstring)."""
    name, class_name, kwargs = parse_method(spec)
    device = torch.device('cpu')
    if snapshot is None:
        G, D = build_networks(resolution, 32768, 512, 512, device, seed, d_class=d_class, fp16=True)
    else:
        G, D = (copy.deepcopy(snapshot[key]).train() for key in ('G', 'D'))
        resolution = G.img_resolution
        fp16_resolution = max(2 ** (int(math.log2(resolution)) + 1 - 4), 8)  # upstream's, for num_fp16_res 4
        for block in [*G.synthesis.children(), *D.children()]:
            if hasattr(block, 'use_fp16'):
                block.use_fp16 = block.resolution >= fp16_resolution  # on the CPU, computed in FP32 all the same
    data = make_data(minibatches, batch, batch, resolution, G.z_dim, device, seed)
    loss = build_loss(Config(name, class_name, kwargs, aug), G, D, device, resolution, batch, seed, gamma=r1_gamma)
    ranges = BackwardRanges(G, D)
    result = {phase: {'first': 0.0, 'second': 0.0} for phase, _, _ in PHASES}
    for index, (real, real_c, phase_zs, gen_c) in enumerate(data):
        torch.manual_seed(seed + index)
        for (phase, module_name, interval), zs in zip(PHASES, phase_zs):
            module = G if module_name == 'G' else D
            for other in (G, D):
                other.requires_grad_(other is module)
            module.zero_grad(set_to_none=True)
            ranges.reset()
            loss.accumulate_gradients(phase=phase, real_img=real[0], real_c=real_c[0], gen_z=zs[0], gen_c=gen_c[0],
                                      sync=True, gain=interval)
            for order in ('first', 'second'):
                result[phase][order] = max(result[phase][order], ranges.largest[order])
    return name, result


@click.command()
@click.option('--method', 'methods', multiple=True, metavar='NAME=LOSS_CLASS[:JSON]',
              help="A loss (repeatable; the first is the baseline) [default: upstream's and each registered method's].")
@click.option('--aug', default='ada', show_default=True, help='noaug, ada (p 0.5) or a pipe class (p 1).')
@click.option('--D-class', 'd_class', default=None, metavar='CLASS',
              help="A discriminator class (plugins.diffusion.Discriminator with Diffusion-GAN's pipe).")
@click.option('--resolution', type=int, default=32, show_default=True)
@click.option('--batch', type=click.IntRange(min=1), default=4, show_default=True)
@click.option('--minibatches', type=click.IntRange(min=1), default=2, show_default=True)
@click.option('--r1-gamma', type=float, default=10, show_default=True, help="low_shot's gamma.")
@click.option('--seed', type=int, default=0, show_default=True)
@click.option('--snapshot', 'snapshot_path', type=click.Path(dir_okay=False, exists=True), default=None,
              help="Start from this snapshot's G and D instead of new low_shot networks.")
@click.option('--json', 'json_path', type=click.Path(dir_okay=False), default=None, help='Also write the figures.')
def main(methods, aug, d_class, resolution, batch, minibatches, r1_gamma, seed, snapshot_path, json_path):
    """Print each method's largest backward values in the FP16 blocks (see the module docstring)."""
    torch.set_num_threads(1)
    snapshot = None
    if snapshot_path is not None:
        with open(snapshot_path, 'rb') as f:
            snapshot = pickle.load(f)
        resolution = snapshot['G'].img_resolution
    results = {}
    for spec in methods or registered_methods():
        name, results[name] = measure(spec, aug, d_class, resolution, batch, minibatches, r1_gamma, seed, snapshot)
        print(f'{name}: {json.dumps(results[name])}', flush=True)
    baseline = next(iter(results.values()))
    networks = f'the networks of {snapshot_path}' if snapshot_path else 'low_shot networks at initialisation'
    print(f'{resolution}x{resolution}, batch {batch}, {minibatches} minibatches, --aug {aug}'
          + (f', D {d_class}' if d_class else '') + f', R1 gamma {r1_gamma:g}, {networks}: largest |gradient| '
          f'through the FP16 blocks (headroom to 65504; x the baseline)')
    print(f'{"method":<10} {"phase":<6} {"first order":>30} {"second order":>30}')
    for name, phases in results.items():
        cells = []
        for phase, _, _ in PHASES:
            for order in ('first', 'second'):
                value, base = phases[phase][order], baseline[phase][order]
                headroom = f'{FP16_MAX / value:.3g}' if value else 'inf'
                ratio = f'x{value / base:.3g}' if base else '-'
                cells.append(f'{value:.3g} ({headroom}; {ratio})' if value else '-')
            print(f'{name:<10} {phase:<6} {cells[-2]:>30} {cells[-1]:>30}')
    if json_path is not None:
        Path(json_path).write_text(json.dumps(results, indent=2))


if __name__ == '__main__':
    main()
