"""The GPU study in one command, for a machine with one CUDA GPU (README.md, "The GPU study"): at most --minutes
(default 9) of wall time, everything under --outdir, with OUTDIR/summary.md:

  1. scripts/check_cuda_ops.py: upstream's CUDA ops built and checked against its reference ops;
  2. benchmarks/compare.py --device cuda --fp16: every loss method's cost against StyleGAN2 + ADA, with
     upstream's mixed precision as the papers train (64x64, batch 16);
  3. scripts/study.py --cfg low_shot (the papers' released low-shot config, batch 4): the CPU study's
     configurations and the backbones', --jobs processes side by side on the one GPU, --kimg each, fid5k_full
     (ATop-k's protocol) at the end of each run against the first 5,000 Fashion-MNIST training images.

    python scripts/gpu_study.py --prepare --outdir runs/gpu-study   # on any machine: the datasets
    python scripts/gpu_study.py --outdir runs/gpu-study             # on the GPU machine

The device machine reaches no network, so the datasets are built beforehand (--prepare) and carried with the
working tree. Each step gets a share of the time and is stopped at it; the study starts only runs whose estimate
(its CPU defaults times --estimate-scale until it has measured runs) fits. --tiny runs the same three steps on
the CPU in seconds on synthetic data (the ops check then reports a CPU build), as the tests do.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / 'stylegan2_ada')]

from scripts import children  # noqa: E402
from scripts.lowshot import build_datasets, fetch_source, find_source  # noqa: E402
from scripts.study import BACKBONE_CONFIGS, DEFAULT_CONFIGS  # noqa: E402

METHODS = ['baseline=training.loss.StyleGAN2Loss', 'atopk=plugins.atopk.Loss', 'anda=plugins.anda.Loss',
           'diggan=plugins.diggan.Loss', 'diggan-lazy=plugins.diggan.Loss:{"cadence": "lazy", "wrt": "before"}',
           'apa=plugins.apa.Loss', 'lecam=plugins.lecam.Loss',
           'insgen=plugins.insgen.Loss:{"real_queue_size": 10, "fake_queue_size": 10}']
SHARES = {'ops': 0.15, 'benchmark': 0.2}  # of the minutes; the study gets the rest but a margin
MARGIN_SECONDS = 20


def step(name, command, timeout, log):
    """Run one step with a time limit; returns its summary entry."""
    print(f'[{name}] + {shlex.join(command)}', flush=True)
    started = time.time()
    with open(log, 'w') as out:
        process = children.popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # with its children: the study's training processes
            process.wait()
            rc = 'stopped at its time limit'
    tail = Path(log).read_text(errors='replace').splitlines()[-25:]
    return dict(name=name, command=shlex.join(command), status=rc, seconds=round(time.time() - started),
                limit=round(timeout), tail=tail)


def write_summary(outdir, entries, tiny):
    lines = ['# GPU study: summary', '', f'Machine: {machine()}.' + (' Tiny mode on the CPU.' if tiny else ''), '']
    for entry in entries:
        ok = 'ok' if entry['status'] == 0 else f'status {entry["status"]}'
        lines += [f'## {entry["name"]}: {ok}, {entry["seconds"]} s of {entry["limit"]} s', '',
                  f'    {entry["command"]}', '', '```', *entry['tail'], '```', '']
    tables = outdir / 'study' / 'tables.md'
    if tables.is_file():
        lines += ['## Study tables', '', *tables.read_text().splitlines()[2:]]
    (outdir / 'summary.md').write_text('\n'.join(lines) + '\n')


def machine():
    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'
    return f'PyTorch {torch.__version__}, {gpu}'


def datasets(outdir, tiny):
    """(training zip, reference zip) under OUTDIR/data: Fashion-MNIST's, or in tiny mode 16 synthetic images."""
    data = outdir / 'data'
    if tiny:
        path = data / 'primitives-ps-16.zip'
        if not path.is_file():
            data.mkdir(parents=True, exist_ok=True)
            children.run([sys.executable, '-m', 'plugins.primitives', '--outdir', str(path), '--count', '16',
                            '--resolution', '16', '--synth', 'primitives-ps', '--seed', '0', '--workers', '1'],
                           cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        return path, path
    ready = data / 'fmnist100-32.zip', data / 'fmnist-full-32.zip'
    if all(path.is_file() for path in ready):  # built beforehand (--prepare) and carried
        return ready
    return build_datasets(find_source(None, outdir / 'cache') or fetch_source(outdir / 'cache'), data, 100, 32, 0,
                          5000)


@click.command()
@click.option('--outdir', type=click.Path(file_okay=False), default=str(ROOT / 'runs' / 'gpu-study'),
              show_default=True)
@click.option('--minutes', type=click.FloatRange(min=1), default=9, show_default=True, help='Wall-time budget.')
@click.option('--kimg', type=click.FloatRange(min=0, min_open=True), default=10, show_default=True,
              help='Length of each study run.')
@click.option('--seeds', default='0,1', show_default=True)
@click.option('--jobs', type=click.IntRange(min=1), default=12, show_default=True,
              help='Study runs side by side on the GPU.')
@click.option('--estimate-scale', type=click.FloatRange(min=0, min_open=True), default=0.3, show_default=True,
              help="The study's estimates against its CPU defaults (a guess until the first GPU run is measured).")
@click.option('--prepare', is_flag=True, help='Only build the datasets (needs apt-get or Fashion-MNIST).')
@click.option('--tiny', is_flag=True, help='The three steps on the CPU in seconds, on synthetic data.')
def main(outdir, minutes, kimg, seeds, jobs, estimate_scale, prepare, tiny):
    """The GPU study (see the module docstring)."""
    started = time.time()
    outdir = Path(outdir).resolve()
    train_zip, reference_zip = datasets(outdir, tiny)
    if prepare:
        print(f'datasets ready: {train_zip}, {reference_zip}; carry {outdir / "data"} to the GPU machine')
        return
    outdir.mkdir(parents=True, exist_ok=True)
    budget = minutes * 60
    device = 'cpu' if tiny else 'cuda'
    python = sys.executable
    entries = [step('CUDA ops', [python, 'scripts/check_cuda_ops.py'], SHARES['ops'] * budget, outdir / 'ops.log')]
    size = ['--resolution', '16', '--batch', '4', '--minibatches', '2', '--repeats', '1', '--channel-max', '16',
            '--no-memory'] if tiny else ['--resolution', '64', '--batch', '16', '--minibatches', '32', '--repeats', '3',
                      '--channel-max', '256']
    methods = [arg for method in (METHODS[:2] if tiny else METHODS) for arg in ('--method', method)]
    entries.append(step('benchmark', [python, 'benchmarks/compare.py', '--device', device, '--fp16', '--aug', 'ada',
                                      *methods, *size], SHARES['benchmark'] * budget, outdir / 'benchmark.log'))
    left = budget - (time.time() - started) - MARGIN_SECONDS
    configs = ['atopk'] if tiny else [*DEFAULT_CONFIGS, *BACKBONE_CONFIGS]
    study = [python, 'scripts/study.py', '--outdir', str(outdir / 'runs'), '--results', str(outdir / 'study'),
             '--cfg', 'cpu' if tiny else 'low_shot', '--kimg', '0.02' if tiny else f'{kimg:g}', '--seeds', seeds,
             '--configs', ','.join(configs), '--jobs', str(jobs), '--hours', f'{max(left, 1) / 3600:.4f}',
             '--metric', 'none' if tiny else 'fid5k_full', '--metric-points', '1', '--curve-points', '2',
             '--snap-kimg', '0.1' if tiny else f'{kimg / 2:g}', '--estimate-scale', f'{estimate_scale:g}',
             '--data', str(train_zip), '--reference', str(reference_zip)]
    entries.append(step('study', study, max(left, 1), outdir / 'study.log'))
    write_summary(outdir, entries, tiny)
    (outdir / 'summary.json').write_text(json.dumps(entries, indent=2))
    print(f'summary: {outdir / "summary.md"} ({time.time() - started:.0f} s)')
    failed = [entry['name'] for entry in entries if entry['status'] != 0 and not (tiny and entry['name'] == 'CUDA ops')]
    if failed:
        sys.exit(f'failed: {", ".join(failed)} (logs in {outdir})')


if __name__ == '__main__':
    main()
