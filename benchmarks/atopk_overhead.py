"""Cost of ATop-k's loss (plugins.atopk.Loss) against upstream's StyleGAN2Loss: sec/kimg of accumulate_gradients
over the training loop's phases, same networks, data and seed (target: ratio <= 1.02).

    python benchmarks/atopk_overhead.py [--resolution 16] [--batch 4] [--batch-gpu 4] [--minibatches 32]
                                        [--repeats 5] [--loss-kwargs '{"mode": "fixed", "k": 2}'] [--device cpu]

Each minibatch runs the phases as upstream's training loop schedules them with lazy regularisation (Gmain every
minibatch, Greg every 4th, Dmain every minibatch, Dreg every 16th; gain = the phase's interval), each over
batch / batch_gpu rounds, with the phase's module alone requiring gradients and its gradients zeroed first.
Optimizer steps are left out: only the loss differs between the two. The two losses alternate minibatch by
minibatch, which one goes first drawn at random (the regularisation minibatches are every 4th), over `repeats`
timed passes of `minibatches` minibatches after one warm-up pass; the medians of the per-pass totals are compared,
by wall clock and, on the CPU, by process CPU time (less disturbed by other load on a shared machine).
"""

import json
import pathlib
import random
import statistics
import sys
import time

import click
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / 'stylegan2_ada')]

from training.loss import StyleGAN2Loss  # noqa: E402
from training.networks import Discriminator, Generator  # noqa: E402

from plugins.atopk import Loss as ATopkLoss  # noqa: E402

PHASES = [('Gmain', 'G', 1), ('Greg', 'G', 4), ('Dmain', 'D', 1), ('Dreg', 'D', 16)]


def build_networks(resolution, channel_base, channel_max, z_dim, device, seed):
    torch.manual_seed(seed)
    common = dict(channel_base=channel_base, channel_max=channel_max, num_fp16_res=0, conv_clamp=None)
    G = Generator(z_dim=z_dim, c_dim=0, w_dim=z_dim, img_resolution=resolution, img_channels=3,
                  mapping_kwargs=dict(num_layers=2), synthesis_kwargs=common).to(device)
    D = Discriminator(c_dim=0, img_resolution=resolution, img_channels=3, **common).to(device)
    return G, D


def make_data(minibatches, batch, batch_gpu, resolution, z_dim, device, seed):
    generator = torch.Generator().manual_seed(seed)
    data = []
    for _ in range(minibatches):
        real = (torch.rand([batch, 3, resolution, resolution], generator=generator) * 2 - 1).to(device)
        zs = [torch.randn([batch, z_dim], generator=generator).to(device) for _ in PHASES]
        c = torch.zeros([batch, 0], device=device)
        data.append((real.split(batch_gpu), c.split(batch_gpu), [z.split(batch_gpu) for z in zs], c.split(batch_gpu)))
    return data


def run_minibatch(loss, modules, minibatch, batch_idx, device):
    """Run the training loop's phase schedule for one minibatch; returns (wall seconds, CPU seconds)."""
    real, real_c, phase_zs, gen_c = minibatch
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    for (phase, module_name, interval), zs in zip(PHASES, phase_zs):
        if batch_idx % interval != 0:
            continue
        module = modules[module_name]
        for other in modules.values():
            other.requires_grad_(other is module)
        module.zero_grad(set_to_none=True)
        for round_index in range(len(real)):
            loss.accumulate_gradients(phase=phase, real_img=real[round_index], real_c=real_c[round_index],
                                      gen_z=zs[round_index], gen_c=gen_c[round_index],
                                      sync=round_index == len(real) - 1, gain=interval)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


@click.command()
@click.option('--resolution', type=int, default=16, show_default=True)
@click.option('--batch', type=click.IntRange(min=1), default=4, show_default=True)
@click.option('--batch-gpu', 'batch_gpu', type=click.IntRange(min=1), default=None, help='Chunk size [default: batch].')
@click.option('--minibatches', type=click.IntRange(min=1), default=32, show_default=True,
              help='Minibatches per timed pass (a multiple of 16 covers every phase).')
@click.option('--repeats', type=click.IntRange(min=1), default=5, show_default=True)
@click.option('--channel-base', 'channel_base', type=int, default=1024, show_default=True)
@click.option('--channel-max', 'channel_max', type=int, default=64, show_default=True)
@click.option('--z-dim', 'z_dim', type=int, default=64, show_default=True)
@click.option('--loss-kwargs', 'loss_kwargs', default='{}', show_default=True,
              help='plugins.atopk.Loss options (JSON).')
@click.option('--device', default='cpu', show_default=True)
@click.option('--threads', type=click.IntRange(min=1), default=1, show_default=True, help='CPU threads for torch.')
@click.option('--seed', type=int, default=0, show_default=True)
def main(resolution, batch, batch_gpu, minibatches, repeats, channel_base, channel_max, z_dim, loss_kwargs, device,
         threads, seed):
    """Print sec/kimg of upstream's StyleGAN2Loss and of plugins.atopk.Loss, and their ratio."""
    torch.set_num_threads(threads)
    device = torch.device(device)
    batch_gpu = batch_gpu or batch
    if batch % batch_gpu:
        raise click.BadParameter(f'batch {batch} is not a multiple of batch_gpu {batch_gpu}', param_hint='--batch-gpu')
    options = json.loads(loss_kwargs)
    ATopkLoss.check_options(**options)
    G, D = build_networks(resolution, channel_base, channel_max, z_dim, device, seed)
    modules = {'G': G, 'D': D}
    common = dict(device=device, G_mapping=G.mapping, G_synthesis=G.synthesis, D=D,
                  r1_gamma=0.0002 * resolution ** 2 / batch)  # as train.py's 'auto' and 'cpu' configs
    losses = {'StyleGAN2Loss': StyleGAN2Loss(**common), 'atopk.Loss': ATopkLoss(**common, **options)}
    data = make_data(minibatches, batch, batch_gpu, resolution, z_dim, device, seed)
    print(f'{resolution}x{resolution}, batch {batch} in chunks of {batch_gpu}, {minibatches} minibatches x {repeats} '
          f'repeats, device {device}, {threads} thread(s), atopk options {options or "{} (adaptive)"}')

    # Interleaved minibatch by minibatch (order alternating), so that changes in the machine's load hit both alike.
    times = {name: {'wall': [], 'cpu': []} for name in losses}
    order_draws = random.Random(seed)
    for repeat in range(repeats + 1):
        totals = {name: [0.0, 0.0] for name in losses}
        for offset, minibatch in enumerate(data):
            batch_idx = repeat * minibatches + offset
            names = list(losses) if order_draws.random() < 0.5 else list(reversed(list(losses)))
            for name in names:
                torch.manual_seed(seed + batch_idx)  # the same style-mixing and noise draws for both losses
                wall, cpu = run_minibatch(losses[name], modules, minibatch, batch_idx, device)
                totals[name][0] += wall
                totals[name][1] += cpu
        if repeat > 0:  # the first pass is a warm-up
            for name, (wall, cpu) in totals.items():
                times[name]['wall'].append(wall)
                times[name]['cpu'].append(cpu)

    kimg = minibatches * batch / 1000
    clocks = ['wall', 'cpu'] if device.type == 'cpu' else ['wall']
    for name in losses:
        fields = [f'{clock} {statistics.median(times[name][clock]) / kimg:8.2f} sec/kimg' for clock in clocks]
        print(f'{name:<14}' + '   '.join(fields))
    atopk = losses['atopk.Loss']
    print(f'atopk state after the run: k {atopk.k}, p {atopk.p_host:.4f}, minibatches {atopk.minibatches}')
    for clock in clocks:
        ratios = [a / b for a, b in zip(times['atopk.Loss'][clock], times['StyleGAN2Loss'][clock])]
        ratio = statistics.median(times['atopk.Loss'][clock]) / statistics.median(times['StyleGAN2Loss'][clock])
        print(f'ratio atopk / upstream ({clock}): {ratio:.3f}x of medians; per-repeat pairs '
              f'{", ".join(f"{r:.3f}" for r in ratios)} (target <= 1.02)')


if __name__ == '__main__':
    main()
