"""Cost of ATop-k's loss (plugins.atopk.Loss) against upstream's StyleGAN2Loss: sec/kimg of accumulate_gradients
over the training loop's phases, same networks, data and seed (target: ratio <= 1.02).

    python benchmarks/atopk_overhead.py [--resolution 16] [--batch 4] [--batch-gpu 4] [--minibatches 32]
                                        [--repeats 5] [--loss-kwargs '{"mode": "fixed", "k": 2}'] [--device cpu]

The two-method case of benchmarks/compare.py (whose docstring describes the timing: the training loop's phase
schedule, the losses taking turns minibatch by minibatch, medians of per-pass totals by wall clock and CPU time),
plus ATop-k's state after the run and the per-repeat ratios.
"""

import json
import pathlib
import statistics
import sys

import click
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks.compare import BASELINE, Config, benchmark, describe, format_table, make_setup, setup_options  # noqa: E402
from plugins.atopk import Loss as ATopkLoss  # noqa: E402


@click.command()
@click.option('--loss-kwargs', 'loss_kwargs', default='{}', show_default=True,
              help='plugins.atopk.Loss options (JSON).')
@setup_options
def main(loss_kwargs, repeats, **setup_kwargs):
    """Print sec/kimg of upstream's StyleGAN2Loss and of plugins.atopk.Loss, and their ratio."""
    setup = make_setup(**setup_kwargs)
    options = json.loads(loss_kwargs)
    ATopkLoss.check_options(**options)
    configs = [Config('StyleGAN2Loss', BASELINE, {}), Config('atopk.Loss', 'plugins.atopk.Loss', options)]
    print(describe(setup, repeats) + f', atopk options {options or "{} (adaptive)"}')
    results, unavailable, losses = benchmark(configs, setup, repeats, memory=False)
    if unavailable:
        raise click.ClickException('; '.join(f'{name}: {error}' for name, error in unavailable.items()))
    for line in format_table(configs, results, unavailable, torch.device(setup.device).type):
        print(line)
    loss = losses['atopk.Loss']
    atopk = loss.methods['atopk']
    print(f'atopk state after the run: k {atopk.k}, p {atopk.p_host:.4f}, minibatches {loss.tracker.minibatches}')
    for clock in [clock for clock in ('wall', 'cpu') if clock in results['atopk.Loss']]:
        passes = {name: results[name]['passes'][clock] for name in results}
        ratios = [a / b for a, b in zip(passes['atopk.Loss'], passes['StyleGAN2Loss'])]
        ratio = statistics.median(passes['atopk.Loss']) / statistics.median(passes['StyleGAN2Loss'])
        print(f'ratio atopk / upstream ({clock}): {ratio:.3f}x of medians; per-repeat pairs '
              f'{", ".join(f"{r:.3f}" for r in ratios)} (target <= 1.02)')


if __name__ == '__main__':
    main()
