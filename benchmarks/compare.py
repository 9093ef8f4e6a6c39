"""Cost of each method's loss (and augment pipe) against upstream's StyleGAN2Loss: sec/kimg of accumulate_gradients
over the training loop's phases and peak memory, same networks, data, seed and configuration, in one process.

    python benchmarks/compare.py [--method NAME=LOSS_CLASS[:JSON_KWARGS] ...] [--aug noaug|ada|CLASS ...]
                                 [--resolution 16] [--batch 4] [--batch-gpu 4] [--minibatches 32] [--repeats 5]
                                 [--p P] [--device cpu|cuda] [--D-class CLASS] [--memory/--no-memory]
                                 [--json PATH]

Without --method, the methods are `default_methods()`; the first one is the baseline of the ratios. Every class is
imported and its options checked before anything runs (a usage error otherwise); a configuration that a method
refuses by its own checks (a ValueError: InsGen without an augment pipe) is reported as 'refused: <reason>', one
that still cannot be built as 'not available: <error>' and the exit status is then 1. Every (aug, method) pair is one
configuration: --aug noaug (default), ada (upstream's AugmentPipe 'bgc' with p held at --p, default 0.5: ADA's
adjustment of p lives in the training loop, not in the loss) or an augment pipe class (p = --p, default 1 as in
train.py).

Timing. Each minibatch runs the phases as upstream's training loop schedules them with lazy regularisation
(Gmain every minibatch, Greg every 4th, Dmain every minibatch, Dreg every 16th; gain = the phase's interval), each
over batch / batch_gpu rounds, with the phase's module alone requiring gradients and its gradients zeroed first.
Optimizer steps are left out: only the loss differs between configurations. The configurations take turns
minibatch by minibatch, in an order shuffled afresh for each minibatch (the regularisation minibatches are every
4th), over `repeats` timed passes of `minibatches` minibatches after one warm-up pass, so that changes in the
machine's load hit all alike; the medians of the per-pass totals are compared, by wall clock and, on the CPU, by
process CPU time too (less disturbed by other load on a shared machine).

Memory. CUDA: the highest torch.cuda.max_memory_allocated over the configuration's minibatches (peak reset before
each), networks and data included (the same for all). CPU: the growth of the peak resident set size (Linux
VmHWM, reset through /proc/self/clear_refs after setup) of a fresh process that builds the same networks and
data and runs one pass of the configuration alone; a fresh process because the C allocator keeps freed memory,
so in-process the configurations would hide each other's peaks.
"""

import dataclasses
import importlib
import json
import math
import multiprocessing
import pathlib
import random
import statistics
import sys
import time

import click
import torch

from plugins.common.method import run_facts_for
from plugins.methods import METHODS, preset
from torch_utils.ops import conv2d_gradfix, grid_sample_gradfix
from training.networks import Discriminator, Generator

ROOT = pathlib.Path(__file__).resolve().parents[1]

PHASES = [('Gmain', 'G', 1), ('Greg', 'G', 4), ('Dmain', 'D', 1), ('Dreg', 'D', 16)]
BASELINE = 'training.loss.StyleGAN2Loss'
VARIANTS = ('anda-weighted=plugins.anda.Loss:{"estimator": "weighted"}',  # the paper's forms that cost more
            'diggan-lazy=plugins.diggan.Loss:{"cadence": "lazy", "wrt": "before"}')
TRAINING_SET_SIZE = 100  # the run fact a loss may ask for (InsGen's queues): the low-shot papers' 100-shot sets
UPSTREAM_PIPE = 'training.augment.AugmentPipe'
BGC = dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1, lumaflip=1,
           hue=1, saturation=1)   # train.py's --augpipe bgc, which --aug ada uses by default


def build_networks(resolution, channel_base, channel_max, z_dim, device, seed, d_class=None, fp16=False):
    torch.manual_seed(seed)
    common = dict(channel_base=channel_base, channel_max=channel_max, num_fp16_res=4 if fp16 else 0,
                  conv_clamp=256 if fp16 else None)  # --fp16: upstream's mixed precision (FP32 on a CPU)
    G = Generator(z_dim=z_dim, c_dim=0, w_dim=z_dim, img_resolution=resolution, img_channels=3,
                  mapping_kwargs=dict(num_layers=2), synthesis_kwargs=common).to(device)
    D = (import_class(d_class) if d_class else Discriminator)(c_dim=0, img_resolution=resolution, img_channels=3,
                                                              **common).to(device)
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


def time_interleaved(losses, modules, data, repeats, seed, device, on_minibatch=None):
    """Time `losses` ({name: loss}) taking turns minibatch by minibatch (see the module docstring).

    Returns {name: {'wall': [per-pass seconds], 'cpu': [...]}} over the `repeats` passes after the warm-up pass.
    `on_minibatch(name)`, when given, is called around each loss's minibatch as a context manager."""
    times = {name: {'wall': [], 'cpu': []} for name in losses}
    order_draws = random.Random(seed)
    minibatches = len(data)
    for repeat in range(repeats + 1):
        totals = {name: [0.0, 0.0] for name in losses}
        for offset, minibatch in enumerate(data):
            batch_idx = repeat * minibatches + offset
            names = list(losses)
            order_draws.shuffle(names)
            for name in names:
                torch.manual_seed(seed + batch_idx)  # the same style-mixing and noise draws for every loss
                if on_minibatch is None:
                    wall, cpu = run_minibatch(losses[name], modules, minibatch, batch_idx, device)
                else:
                    with on_minibatch(name):
                        wall, cpu = run_minibatch(losses[name], modules, minibatch, batch_idx, device)
                totals[name][0] += wall
                totals[name][1] += cpu
        if repeat > 0:  # the first pass is a warm-up
            for name, (wall, cpu) in totals.items():
                times[name]['wall'].append(wall)
                times[name]['cpu'].append(cpu)
    return times


def r1_gamma(resolution, batch):
    return 0.0002 * resolution ** 2 / batch  # as train.py's 'auto' and 'cpu' configs


@dataclasses.dataclass(frozen=True)
class Config:
    """One benchmarked configuration: a loss class with options and an augmentation."""
    name: str
    loss_class: str
    loss_kwargs: dict
    aug: str = 'noaug'
    p: float = None


def parse_method(spec):
    """'NAME=LOSS_CLASS[:JSON_KWARGS]' -> (name, class path, kwargs)."""
    name, sep, rest = spec.partition('=')
    class_name, _, kwargs_text = rest.partition(':')
    if not sep or not name or not class_name:
        raise click.BadParameter(f'{spec!r} is not NAME=LOSS_CLASS[:JSON_KWARGS]', param_hint='--method')
    try:
        kwargs = json.loads(kwargs_text) if kwargs_text else {}
    except json.JSONDecodeError as err:
        raise click.BadParameter(f'{spec!r}: options are not JSON ({err})', param_hint='--method') from None
    if not isinstance(kwargs, dict):
        raise click.BadParameter(f'{spec!r}: options must be a JSON object', param_hint='--method')
    return name, class_name, kwargs


def import_class(class_name):
    module_name, _, attr = class_name.rpartition('.')
    if not module_name:
        raise ImportError(f'{class_name!r} is not a dotted class path')
    return getattr(importlib.import_module(module_name), attr)


def build_augment_pipe(aug, p, device):
    """None for noaug; otherwise the pipe as the training loop builds it, with p set."""
    if aug == 'noaug':
        return None
    if aug == 'ada':
        pipe, default_p = import_class(UPSTREAM_PIPE)(**BGC), 0.5
    else:
        pipe, default_p = import_class(aug)(), 1.0
    pipe = pipe.train().requires_grad_(False).to(device)
    pipe.p.copy_(torch.as_tensor(default_p if p is None else p))
    return pipe


def build_loss(config, G, D, device, resolution, batch, seed=0, gamma=None):
    """The configuration's loss as the training loop builds it; R1's gamma by train.py's heuristic unless given."""
    cls = import_class(config.loss_class)
    if hasattr(cls, 'check_options'):
        cls.check_options(**config.loss_kwargs)
    return cls(device=device, G_mapping=G.mapping, G_synthesis=G.synthesis, D=D,
               augment_pipe=build_augment_pipe(config.aug, config.p, device),
               r1_gamma=r1_gamma(resolution, batch) if gamma is None else gamma, **run_facts(cls, seed, batch),
               **config.loss_kwargs)


def run_facts(cls, seed, batch):
    """The facts about the run that train.py passes a loss whose constructor asks for them by name (patch 0010)."""
    return run_facts_for(cls, dict(random_seed=seed, training_set_size=TRAINING_SET_SIZE, batch_size=batch))


@dataclasses.dataclass(frozen=True)
class Setup:
    """What every configuration shares."""
    resolution: int
    batch: int
    batch_gpu: int
    minibatches: int
    channel_base: int
    channel_max: int
    z_dim: int
    device: str
    threads: int
    seed: int
    d_class: str = None  # a discriminator class in place of upstream's, for every configuration
    fp16: bool = False  # FP16 in the 4 highest resolutions, as the papers train

    def networks_and_data(self):
        device = torch.device(self.device)
        G, D = build_networks(self.resolution, self.channel_base, self.channel_max, self.z_dim, device, self.seed,
                              self.d_class, self.fp16)
        data = make_data(self.minibatches, self.batch, self.batch_gpu, self.resolution, self.z_dim, device, self.seed)
        return G, D, data


def build_losses(configs, setup, G, D):
    """({name: loss}, {name: 'refused: reason' or 'not available: ExceptionType: message'}) for the configurations
    that could or could not be built."""
    losses, unavailable = {}, {}
    for config in configs:
        try:
            losses[config.name] = build_loss(config, G, D, torch.device(setup.device), setup.resolution, setup.batch,
                                             setup.seed)
        except ValueError as err:  # the method's own check of this configuration
            unavailable[config.name] = f'refused: {err}'
        except Exception as err:  # noqa: BLE001 - any failure to import or build is reported, not fatal
            unavailable[config.name] = f'not available: {type(err).__name__}: {err}'
    return losses, unavailable


def _vm_kib(field):
    for line in pathlib.Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1])
    raise RuntimeError(f'no {field} in /proc/self/status')


def _cpu_peak_child(setup, config, connection):
    """In a fresh process: growth of the peak RSS (MiB) over one pass of `config`'s minibatches."""
    try:
        torch.set_num_threads(setup.threads)
        G, D, data = setup.networks_and_data()
        losses, unavailable = build_losses([config], setup, G, D)
        if unavailable:
            raise RuntimeError(unavailable[config.name])
        pathlib.Path('/proc/self/clear_refs').write_text('5')  # VmHWM := VmRSS
        start = _vm_kib('VmRSS')
        for batch_idx, minibatch in enumerate(data):
            torch.manual_seed(setup.seed + batch_idx)
            run_minibatch(losses[config.name], {'G': G, 'D': D}, minibatch, batch_idx, torch.device(setup.device))
        connection.send((_vm_kib('VmHWM') - start) / 1024)
    except Exception as err:  # noqa: BLE001 - sent to the parent, which prints it
        connection.send(f'{type(err).__name__}: {err}')


def cpu_peak_mib(setup, config):
    """Peak RSS growth (MiB) of `config` in a fresh process, or an error message."""
    context = multiprocessing.get_context('spawn')
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_cpu_peak_child, args=(setup, config, sender))
    process.start()
    sender.close()
    try:
        result = receiver.recv()
    except EOFError:
        process.join()
        return f'memory probe process died (exit code {process.exitcode})'
    process.join()
    return result


class CudaPeak:
    """Context-manager factory for time_interleaved: max of torch.cuda.max_memory_allocated per name (MiB)."""

    def __init__(self, device):
        self.device, self.peaks, self.name = device, {}, None

    def __call__(self, name):
        self.name = name
        return self

    def __enter__(self):
        torch.cuda.reset_peak_memory_stats(self.device)

    def __exit__(self, *exc):
        peak = torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        self.peaks[self.name] = max(self.peaks.get(self.name, 0.0), peak)


def benchmark(configs, setup, repeats, memory=True):
    """Time (and measure) the configurations; returns (results {name: dict}, unavailable {name: message},
    the losses {name: loss} after the run).

    A result holds 'wall' and, on the CPU, 'cpu': sec/kimg (median over passes), the ratios 'wall_ratio' and
    'cpu_ratio' to the first available configuration, and 'memory' (MiB, or an error message) when asked."""
    torch.set_num_threads(setup.threads)
    conv2d_gradfix.enabled = grid_sample_gradfix.enabled = True  # as training_loop.py: R1 through ADA's grid_sample
    device = torch.device(setup.device)                           # needs its double backward on PyTorch < 2.13
    G, D, data = setup.networks_and_data()
    losses, unavailable = build_losses(configs, setup, G, D)
    cuda_peak = CudaPeak(device) if memory and device.type == 'cuda' else None
    times = time_interleaved(losses, {'G': G, 'D': D}, data, repeats, setup.seed, device, on_minibatch=cuda_peak)
    kimg = setup.minibatches * setup.batch / 1000
    clocks = ['wall', 'cpu'] if device.type == 'cpu' else ['wall']
    results = {}
    for name in losses:
        results[name] = {clock: statistics.median(times[name][clock]) / kimg for clock in clocks}
        results[name]['passes'] = times[name]
    if results:
        baseline = results[next(iter(results))]
        for result in results.values():
            for clock in clocks:
                result[f'{clock}_ratio'] = result[clock] / baseline[clock]
    if memory:
        for config in configs:
            if config.name in results:
                results[config.name]['memory'] = cuda_peak.peaks[config.name] if cuda_peak else \
                    cpu_peak_mib(setup, config)
    return results, unavailable, losses


def format_table(configs, results, unavailable, device_type):
    """The printed table: a header, then one line per configuration in the given order."""
    clocks = ['wall', 'cpu'] if device_type == 'cpu' else ['wall']
    memory_title = 'peak MiB (CUDA allocated)' if device_type == 'cuda' else 'peak RSS growth MiB (fresh process)'
    width = max([len('method')] + [len(config.name) for config in configs])
    header = f'{"method":<{width}}  ' + '  '.join(f'{clock + " sec/kimg":>14} {"ratio":>6}' for clock in clocks)
    if any('memory' in result for result in results.values()):
        header += f'  {memory_title}'
    lines = [header]
    for config in configs:
        if config.name in unavailable:
            lines.append(f'{config.name:<{width}}  {unavailable[config.name]}')
            continue
        result = results[config.name]
        line = f'{config.name:<{width}}  ' + '  '.join(
            f'{result[clock]:14.2f} {result[clock + "_ratio"]:6.3f}' for clock in clocks)
        if 'memory' in result:
            memory = result['memory']
            line += f'  {memory:.1f}' if isinstance(memory, float) else f'  n/a ({memory})'
        lines.append(line)
    return lines


def setup_options(function):
    """The command-line options that make a Setup."""
    options = [
        click.option('--resolution', type=int, default=16, show_default=True, help='A power of two >= 4.'),
        click.option('--batch', type=click.IntRange(min=1), default=4, show_default=True),
        click.option('--batch-gpu', 'batch_gpu', type=click.IntRange(min=1), default=None,
                     help='Chunk size [default: batch].'),
        click.option('--minibatches', type=click.IntRange(min=1), default=32, show_default=True,
                     help='Minibatches per timed pass (a multiple of 16 covers every phase).'),
        click.option('--repeats', type=click.IntRange(min=1), default=5, show_default=True),
        click.option('--channel-base', 'channel_base', type=click.IntRange(min=1), default=1024, show_default=True),
        click.option('--channel-max', 'channel_max', type=click.IntRange(min=1), default=64, show_default=True),
        click.option('--z-dim', 'z_dim', type=click.IntRange(min=1), default=64, show_default=True),
        click.option('--device', default='cpu', show_default=True),
        click.option('--threads', type=click.IntRange(min=1), default=1, show_default=True,
                     help='CPU threads for torch.'),
        click.option('--seed', type=int, default=0, show_default=True),
        click.option('--D-class', 'd_class', default=None, metavar='CLASS',
                     help="A discriminator class for every configuration (plugins.diffusion.Discriminator for "
                          "Diffusion-GAN's pipe) [default: upstream's]."),
        click.option('--fp16', is_flag=True, help="Upstream's mixed precision (FP16 in the 4 highest resolutions, "
                     "conv_clamp 256), as the papers train; a CPU runs FP32 regardless."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def make_setup(resolution, batch, batch_gpu, minibatches, channel_base, channel_max, z_dim, device, threads, seed,
               d_class=None, fp16=False):
    batch_gpu = batch_gpu or batch
    if d_class is not None:
        try:
            import_class(d_class)
        except (ImportError, AttributeError) as err:
            raise click.BadParameter(f'{d_class}: {type(err).__name__}: {err}', param_hint='--D-class') from None
    if resolution < 4 or resolution & (resolution - 1):
        raise click.BadParameter(f'{resolution} is not a power of two >= 4', param_hint='--resolution')
    try:
        torch.device(device)
    except RuntimeError as err:
        raise click.BadParameter(f'{device!r}: {err}', param_hint='--device') from None
    if batch % batch_gpu:
        raise click.BadParameter(f'batch {batch} is not a multiple of batch_gpu {batch_gpu}', param_hint='--batch-gpu')
    if torch.device(device).type == 'cuda' and not torch.cuda.is_available():
        raise click.BadParameter(f'{device}: CUDA is not available in this PyTorch', param_hint='--device')
    return Setup(resolution, batch, batch_gpu, minibatches, channel_base, channel_max, z_dim, device, threads, seed,
                 d_class, fp16)


def registered_methods():
    """'NAME=CLASS' of the baseline and of every registered method's preset, in the registry's order."""
    return (f'baseline={BASELINE}', *(f'{name}={preset(name)}' for name in METHODS))


def default_methods():
    """The methods compared without --method: the registered ones and the VARIANTS."""
    return registered_methods() + VARIANTS


def describe(setup, repeats):
    return (f'{setup.resolution}x{setup.resolution}, batch {setup.batch} in chunks of {setup.batch_gpu}, '
            f'{setup.minibatches} minibatches x {repeats} repeats, device {setup.device}, {setup.threads} thread(s)'
            + (', FP16' if setup.fp16 else ''))


@click.command()
@click.option('--method', 'methods', multiple=True, metavar='NAME=LOSS_CLASS[:JSON]',
              help='A loss to compare (repeatable; the first is the baseline) [default: default_methods()].')
@click.option('--aug', 'augs', multiple=True, metavar='noaug|ada|CLASS',
              help='Augmentation for every method (repeatable: each one is a configuration) [default: noaug].')
@click.option('--p', type=click.FloatRange(0, 1), default=None,
              help='Augment probability [default: 0.5 for ada, 1 for a pipe class].')
@click.option('--memory/--no-memory', default=True, show_default=True, help='Measure peak memory too.')
@click.option('--json', 'json_path', type=click.Path(dir_okay=False), default=None,
              help='Also write the results here: {"setup": ..., "results": {name: ...}, "unavailable": {...}}.')
@setup_options
def main(methods, augs, p, memory, repeats, json_path, **setup_kwargs):
    """Print each method's sec/kimg, its ratio to the first method's, and its peak memory."""
    setup = make_setup(**setup_kwargs)
    methods = [parse_method(spec) for spec in (methods or default_methods())]
    augs = augs or ('noaug',)
    if len(set(augs)) < len(augs):
        raise click.BadParameter(f'an augmentation given twice: {", ".join(augs)}', param_hint='--aug')
    if p is not None and (not math.isfinite(p) or augs == ('noaug',)):
        problem = f'{p} is not a probability' if not math.isfinite(p) else \
            'sets the augment probability, but no --aug other than noaug is given'
        raise click.BadParameter(problem, param_hint='--p')
    names = [name for name, _, _ in methods]
    if len(set(names)) < len(names):
        raise click.BadParameter(f'method names must differ: {", ".join(names)}', param_hint='--method')
    check_classes(methods, augs)
    configs = [Config(name if len(augs) == 1 else f'{name}+{aug}', class_name, kwargs, aug, p)
               for aug in augs for name, class_name, kwargs in methods]
    print(describe(setup, repeats) + f', augmentation {", ".join(augs)}')
    results, unavailable, _ = benchmark(configs, setup, repeats, memory=memory)
    for line in format_table(configs, results, unavailable, torch.device(setup.device).type):
        print(line)
    if json_path is not None:  # for scripts that size their work from these figures (study/gpu.py)
        pathlib.Path(json_path).write_text(json.dumps(dict(setup=describe(setup, repeats), results=results,
                                                           unavailable=unavailable), indent=2))
    if configs[0].name in unavailable:
        raise click.ClickException(f'the baseline {configs[0].name} could not be built: {unavailable[configs[0].name]}')
    print(f'ratio: median per-pass time over that of {configs[0].name}')
    if any(message.startswith('not available') for message in unavailable.values()):
        sys.exit(1)


def check_classes(methods, augs):
    """Import every loss and pipe class and check the losses' options; a usage error naming the first bad one."""
    for aug in augs:
        if aug not in ('noaug', 'ada'):
            try:
                import_class(aug)
            except (ImportError, AttributeError) as err:
                raise click.BadParameter(f'{aug}: {type(err).__name__}: {err}', param_hint='--aug') from None
    for name, class_name, kwargs in methods:
        try:
            cls = import_class(class_name)
            if hasattr(cls, 'check_options'):
                cls.check_options(**kwargs)
        except (ImportError, AttributeError, ValueError, TypeError) as err:
            raise click.BadParameter(f'{name}={class_name}: {type(err).__name__}: {err}',
                                     param_hint='--method') from None


if __name__ == '__main__':
    main()
