"""The GPU study in one command, sized to the machine it will meet: one GPU, 16 cores, a 64 GiB disk, no network,
a working tree of at most 64 MiB in, at most 8 files of at most 16 MiB out (study/returned_files.py), at most
10 minutes a command (docs/gpu-study.md).

    python -m study.gpu --prepare                    # here: build the datasets into runs/gpu-study/data
    python -m study.gpu --plan                       # here: what will run, travel, take and come back; refuses
                                                     # a plan over any limit
    python3 -m study.gpu --outdir $OUT               # there: the study (the device tool's command)
    python -m study.score_samples --returned DIR ... # here again: the FIDs of the returned samples

Steps, each stopped at its time: (1) scripts/check_cuda_ops.py builds upstream's CUDA ops (training then loads the
build) and checks them against the reference ops; (2) benchmarks/compare.py times every loss method against
StyleGAN2 + ADA at the study's own resolution, batch and widths with upstream's mixed precision; (3) the study:
each configuration of `configs()` (study/cpu.py's, every adaptive speed at a quarter of the run) trains with
train.py --cfg low_shot --cuda-ops require, all side by side on the GPU, for the length that step (2)'s measured
sec/kimg fits into the time left (their sum, as if the GPU ran one process at a time, times TRAINING_OVER_LOSS for
what the benchmark leaves out), with TICKS ticks and a snapshot at each; beside each training,
study/probes.py --device cuda --follow probes every snapshot as it is written and keeps SAMPLES images of
the last one. The Inception network of the FID (83 MiB) cannot travel, so the FID is computed afterwards, here,
from those samples (fid1k_full, the CPU study's protocol). After each step, and every PACK_SECONDS during the
study, OUTDIR is rewritten whole: summary.md, results.json (per step; per run every tick's stats and every
snapshot's probes), logs.tar.gz, samples-<i>.npz. --tiny runs the same on the CPU in seconds on synthetic data.
"""

import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from benchmarks.compare import registered_methods
from plugins.methods import METHODS
from scripts import children
from scripts.results import read_jsonl
from study import returned_files
from study.cpu import config_args

ROOT = Path(__file__).resolve().parent.parent

DATA_DIR = ROOT / 'runs' / 'gpu-study' / 'data'
CARRY = ('stylegan2_ada', 'runs/gpu-study/data')  # ignored paths the command needs: the patched submodule, the data
# The machine's own Python, which finds the project and upstream through PYTHONPATH.
DEVICE_COMMAND = 'PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$PWD/stylegan2_ada python3 -m study.gpu --outdir $OUT'
COMMAND_SECONDS, COMMAND_CHARS, CARRY_BYTES, DISK_BYTES = 600, 2000, 64 * 2 ** 20, 64 * 2 ** 30
# Seconds: the limits of the first two steps (the study gets what is left of --minutes), then the allowances for
# train.py's start (imports, networks, the ops' load, the first snapshot), for probing the last snapshots after the
# trainings end, and for the last packing; tiny mode's on the CPU.
SECONDS = dict(ops=150, benchmark=90, startup=45, final_probes=30, pack=20)
TINY_SECONDS = dict(ops=10, benchmark=20, startup=15, final_probes=10, pack=5)
TRAINING_OVER_LOSS = 1.5  # a training minibatch (optimizer steps, EMA, data, stats) over the benchmark's
TICKS = 4
DEFAULT_MINUTES = 9
SAMPLES = 1000  # a run's, for fid1k_full
PACK_SECONDS, POLL_SECONDS = 30, 3
TINY = dict(configs=('ada', 'atopk'), minutes=1.5, max_kimg=0.1, benchmark=[
    '--resolution', '16', '--batch', '4', '--minibatches', '2', '--repeats', '1', '--channel-max', '16',
    '--no-memory'])
BENCHMARK_SIZE = ['--resolution', '32', '--batch', '4', '--channel-base', '32768', '--channel-max', '512',
                  '--z-dim', '512', '--minibatches', '16', '--repeats', '2']  # low_shot's networks at 32x32


class Study:
    """One invocation: its steps, its records, and OUTDIR rewritten after each."""

    def __init__(self, outdir, workdir, minutes, seeds, tiny):
        self.outdir, self.workdir, self.seeds, self.tiny = outdir, workdir, seeds, tiny
        self.started = time.time()
        self.seconds = TINY_SECONDS if tiny else SECONDS
        self.deadline = self.started + minutes * 60 - self.seconds['pack']
        self.device = 'cpu' if tiny else 'cuda'
        self.train_zip, self.reference_zip = datasets(workdir, tiny)
        self.results = dict(machine=machine(), tiny=tiny, steps=[], runs={})
        self.samples, self.last_pack = {}, 0

    def runs(self):
        return run_names(self.seeds, self.tiny)

    def logs(self):
        return sorted(self.workdir.glob('*.log'))

    # ------------------------------------------------------------------------------------------------------------

    def step(self, name, key, command):
        """Run a step's command until it ends or its limit; record it and rewrite OUTDIR."""
        limit = min(self.seconds[key], self.deadline - time.time())
        log = self.workdir / f'{name.replace(" ", "-")}.log'
        print(f'[{name}] + {shlex.join(command)}', flush=True)
        started = time.time()
        with open(log, 'w') as out:
            process = children.popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                status = process.wait(timeout=max(limit, 1))
            except subprocess.TimeoutExpired:
                stop(process)
                status = 'stopped at its time limit'
        self.results['steps'].append(dict(name=name, command=shlex.join(command), status=status,
                                          seconds=round(time.time() - started), limit=round(limit),
                                          tail=log.read_text(errors='replace').splitlines()[-25:]))
        self.pack(force=True)
        return status

    def benchmark(self):
        """Step 2; returns its measured wall sec/kimg per method (empty when it failed)."""
        path = self.workdir / 'benchmark.json'
        methods = [arg for method in (registered_methods()[:2] if self.tiny else registered_methods())
                   for arg in ('--method', method)]
        size = TINY['benchmark'] if self.tiny else BENCHMARK_SIZE
        self.step('benchmark', 'benchmark', [sys.executable, 'benchmarks/compare.py', '--device', self.device, '--fp16',
                                             '--aug', 'ada', *methods, *size, '--json', str(path)])
        if not path.is_file():
            return {}
        measured = json.loads(path.read_text())
        self.results['benchmark'] = measured
        return {name: result['wall'] for name, result in measured['results'].items()}

    def study(self, sec_per_kimg):
        """Step 3 (see the module docstring)."""
        started = time.time()
        record = dict(name='study', status=0, seconds=0, limit=round(self.deadline - started))
        self.results['steps'].append(record)
        kimg = self.run_length(sec_per_kimg, self.deadline - started)
        record['kimg'] = kimg
        if kimg is None:
            record['status'] = 'not started: the benchmark measured nothing to size the runs from'
        elif kimg < 4 * 0.004 * TICKS:
            record['status'] = f'not started: {kimg:g} kimg fit, less than {TICKS} ticks of 4 minibatches'
        if record['status'] != 0:
            self.pack(force=True)
            return record['status']
        trainings = {run: self.start_training(run, kimg) for run in self.runs()}
        probes, train_deadline = {}, self.deadline - self.seconds['final_probes']
        while True:
            for run, process in trainings.items():
                run_dir = self.run_dir(run)
                if run not in probes and run_dir is not None:
                    probes[run] = self.start_probes(run, run_dir)
                if process.poll() is None and time.time() > train_deadline:
                    stop(process)
                if process.poll() is not None:
                    (self.workdir / f'{run}.ended').touch()
            self.update_runs(trainings, probes)
            self.pack()
            if all(process.poll() is not None for process in [*trainings.values(), *probes.values()]):
                break
            if time.time() > self.deadline:
                for process in probes.values():
                    stop(process)
            time.sleep(POLL_SECONDS)
        self.update_runs(trainings, probes)
        record['seconds'] = round(time.time() - started)
        failed = [run for run, process in trainings.items() if process.returncode not in (0, -signal.SIGTERM)]
        record['status'] = f'failed: {", ".join(failed)}' if failed else 0
        self.pack(force=True)
        return record['status']

    def run_length(self, sec_per_kimg, seconds):
        """kimg of every run: what the measured sec/kimg fit into the time (two significant digits, down)."""
        baseline = sec_per_kimg.get('baseline')
        if baseline is None:
            return None
        total = sum(TRAINING_OVER_LOSS * sec_per_kimg.get(name.split('-seed')[0], baseline) for name in self.runs())
        kimg = max(seconds - self.seconds['startup'] - self.seconds['final_probes'], 0) / total
        self.results['estimate'] = dict(sec_per_kimg=sec_per_kimg, side_by_side_sec_per_kimg=round(total, 3),
                                        seconds=round(seconds), kimg=kimg)
        if kimg <= 0:
            return 0.0
        unit = 10 ** (math.floor(math.log10(kimg)) - 1)
        kimg = math.floor(kimg / unit) * unit
        return float(f'{min(kimg, TINY["max_kimg"]) if self.tiny else kimg:.2g}')  # tiny: ends before its time

    def train_command(self, run, kimg):
        name, seed = run.split('-seed')
        return [sys.executable, 'stylegan2_ada/train.py', '--outdir', str(self.workdir / run), '--data',
                str(self.train_zip), '--cfg', 'cpu' if self.tiny else 'low_shot', '--kimg', f'{kimg:g}', '--tick',
                f'{kimg / TICKS:g}', '--snap', '1', '--seed', seed, '--metrics', 'none', '--workers', '1',
                '--cuda-ops', 'auto' if self.tiny else 'require', *(['--grid', '4'] if self.tiny else []),
                *config_args(name, kimg)]  # tiny: the full fakes grid would cost a CPU more than the training

    def start_training(self, run, kimg):
        shutil.rmtree(self.workdir / run, ignore_errors=True)  # an earlier invocation's, with its end marker
        (self.workdir / f'{run}.ended').unlink(missing_ok=True)
        command = self.train_command(run, kimg)
        self.results['runs'][run] = dict(command=shlex.join(command).replace(str(self.workdir), '{WORK}'),
                                         started=round(time.time() - self.started))
        return spawn(command, self.workdir / f'{run}.log')

    def start_probes(self, run, run_dir):
        return spawn([sys.executable, '-m', 'study.probes', '--run', str(run_dir), '--data', str(self.train_zip),
                      '--reference', str(self.reference_zip), '--device', self.device, '--samples', str(SAMPLES),
                      '--follow', str(self.workdir / f'{run}.ended'), '--delete-probed'],
                     self.workdir / f'{run}-probes.log')

    def run_dir(self, run):
        found = sorted((self.workdir / run).glob('*/training_options.json'))
        return found[-1].parent if found else None

    def update_runs(self, trainings, probes):
        """Every run's ticks (stats.jsonl: each stat's mean), probes and samples so far, and its status."""
        for run, process in trainings.items():
            entry, run_dir = self.results['runs'][run], self.run_dir(run)
            entry['status'] = 'training' if process.poll() is None else 'finished' if process.returncode == 0 else \
                'stopped at the deadline' if process.returncode == -signal.SIGTERM else f'failed ({process.returncode})'
            if run in probes:
                entry['probes_status'] = 'probing' if probes[run].poll() is None else probes[run].returncode
            if run_dir is None:
                continue
            entry['ticks'] = [tick_record(row) for _, row in read_rows(run_dir / 'stats.jsonl')]
            entry['probes'] = [row for _, row in read_rows(run_dir / 'probes.jsonl')]  # a row being written: left out
            if (run_dir / 'samples.npz').is_file():
                self.samples[run] = run_dir / 'samples.npz'

    def pack(self, force=False):
        if force or time.time() - self.last_pack > PACK_SECONDS:
            self.results['seconds'] = round(time.time() - self.started)
            returned_files.pack(self.outdir, summary(self.results), self.results, self.logs(), self.samples,
                                sample_groups(self.runs(), self.tiny))
            self.last_pack = time.time()


def tick_record(row):
    """A stats.jsonl row as {stat: mean}, but for the non-finite gradient counts (patch 0019) their sum over the
    tick, the number of entries that nan_to_num replaced."""
    return {key: value['mean'] * (value['num'] if key.startswith('Gradients/nonfinite/') else 1)
            for key, value in row.items() if isinstance(value, dict) and value.get('num')}


def read_rows(path):
    return read_jsonl(path) if path.is_file() else []


def configs():
    """The study's configurations: each baseline, and each registered method alone."""
    return ('stylegan2', 'ada', 'diffaugment', *METHODS, 'diffusion-gan')


def run_names(seeds, tiny):
    """'<configuration>-seed<seed>' of every run, seed by seed."""
    return [f'{name}-seed{seed}' for seed in seeds for name in (TINY['configs'] if tiny else configs())]


def spawn(command, log):
    with open(log, 'w') as out:
        return children.popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                              env=dict(os.environ, OMP_NUM_THREADS='1'))


def stop(process):
    """SIGTERM to the process and its children (train.py writes no half file), then wait."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    process.wait()


def sample_bytes(tiny):
    resolution = 16 if tiny else 32
    return SAMPLES * 3 * resolution * resolution


def sample_groups(runs, tiny):
    return returned_files.sample_files({run: sample_bytes(tiny) for run in runs})


def machine():
    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'
    return f'Python {sys.version.split()[0]}, PyTorch {torch.__version__}, {gpu}, {os.cpu_count()} cores'


def datasets(workdir, tiny):
    """(training zip, reference zip): Fashion-MNIST's from --prepare, or in tiny mode 16 synthetic images."""
    if tiny:
        path = workdir / 'primitives-ps-16.zip'
        if not path.is_file():
            workdir.mkdir(parents=True, exist_ok=True)
            children.run([sys.executable, '-m', 'plugins.primitives', '--outdir', str(path), '--count', '16',
                          '--resolution', '16', '--synth', 'primitives-ps', '--seed', '0', '--workers', '1'],
                         cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        return path, path
    ready = DATA_DIR / 'fmnist100-32.zip', DATA_DIR / 'fmnist-full-32.zip'
    missing = [str(path) for path in ready if not path.is_file()]
    if missing:
        raise click.ClickException(f'{", ".join(missing)}: missing; run `python -m study.gpu --prepare` here '
                                   f'and carry {CARRY[1]}')
    return ready


def summary(results):
    """summary.md: each step, the benchmark, and a line per run (what it reached, its last probes)."""
    tiny = ' Tiny mode on the CPU.' if results['tiny'] else ''
    lines = ['# GPU study: summary', '', f'{results["machine"]}.{tiny}',
             f'{results.get("seconds", 0)} s so far.', '']
    for step in results['steps']:
        ok = 'ok' if step['status'] == 0 else f'status {step["status"]}'
        lines += [f'## {step["name"]}: {ok}, {step["seconds"]} s of {step["limit"]} s', '']
        if 'command' in step:
            lines += [f'    {step["command"]}', '', '```', *step['tail'], '```', '']
    if 'estimate' in results:
        estimate = results['estimate']
        lines += [f'Study length: {estimate["kimg"]:.3g} kimg fit {estimate["seconds"]} s at '
                  f'{estimate["side_by_side_sec_per_kimg"]:g} sec/kimg side by side (benchmark x '
                  f'{TRAINING_OVER_LOSS:g}, summed).', '']
    if results['runs']:
        lines += ['| run | status | kimg | sec/kimg (last tick) | non-finite gradients | real / fake score | '
                  'jigsaw / rotation leak |', '| --- | --- | --- | --- | --- | --- | --- |']
        for run, entry in results['runs'].items():
            tick = entry.get('ticks', [{}])[-1] if entry.get('ticks') else {}
            probe = entry.get('probes', [{}])[-1] if entry.get('probes') else {}
            nonfinite = sum(value for row in entry.get('ticks', []) for key, value in row.items()
                            if key.startswith('Gradients/nonfinite/'))
            nan = math.nan
            lines.append(f'| {run} | {entry.get("status", "?")} | {tick.get("Progress/kimg", nan):.3g} | '
                         f'{tick.get("Timing/sec_per_kimg", nan):.3g} | {nonfinite:g} | '
                         f'{probe.get("real_score", nan):.3g} / {probe.get("fake_score", nan):.3g} | '
                         f'{probe.get("jigsaw_rate", nan):.3g} / {probe.get("rotation_rate", nan):.3g} |')
    return '\n'.join(lines) + '\n'


# ----------------------------------------------------------------------------------------------------------------
# The plan: what will run, travel, take and come back, checked against the machine's limits without running.

RETURNED_CAPS = {'summary.md': 2 ** 20, 'results.json': 4 * 2 ** 20, 'logs.tar.gz': 4 * 2 ** 20}  # bounds: KiB a run


def plan(minutes, seeds, tiny, workdir):
    """(lines to print, problems): the steps' times, the runs, the carry, the disk and the returned files."""
    problems, lines = [], []
    seconds, limits = minutes * 60, TINY_SECONDS if tiny else SECONDS
    study_seconds = seconds - limits['pack'] - limits['ops'] - limits['benchmark']
    lines += [f'Time: {seconds:.0f} s in all: CUDA ops at most {limits["ops"]} s, benchmark at most '
              f'{limits["benchmark"]} s, the study what is left (at least {study_seconds:.0f} s: '
              f'{limits["startup"]} s to start, a length that the benchmark\'s sec/kimg fit, {limits["final_probes"]} '
              f's for the last probes), {limits["pack"]} s to pack.']
    if seconds > COMMAND_SECONDS - 30 and not tiny:
        problems.append(f'--minutes {minutes:g}: {seconds:.0f} s leave less than 30 s of the command\'s '
                        f'{COMMAND_SECONDS} s for the start of Python and the copies')
    if study_seconds < limits['startup'] + limits['final_probes'] + 10:
        problems.append(f'--minutes {minutes:g}: {study_seconds:.0f} s for the study, too little to train')
    runs = run_names(seeds, tiny)
    lines += [f'Runs: {len(runs)} side by side ({", ".join(runs)}), each --cfg {"cpu" if tiny else "low_shot"}, '
              f'{TICKS} ticks and a snapshot at each, {SAMPLES} samples of its last snapshot.']
    carry = carried_bytes()
    lines += [f'Carry: {", ".join(CARRY)}; with the tracked files {carry / 2 ** 20:.1f} MiB of '
              f'{CARRY_BYTES // 2 ** 20} MiB.']
    if carry > CARRY_BYTES:
        problems.append(f'the working tree and carry are {carry / 2 ** 20:.1f} MiB, over {CARRY_BYTES // 2 ** 20} MiB')
    snapshot = snapshot_bytes(datasets(workdir, tiny)[0], tiny)
    disk = len(runs) * (2 * snapshot + 2 * sample_bytes(tiny))
    worst = len(runs) * (TICKS + 1) * snapshot
    lines += [f'Disk: snapshots of about {snapshot / 2 ** 20:.0f} MiB (networks and Adam moments), each deleted once '
              f'probed and no longer the last: {disk / 2 ** 30:.1f} GiB for the {len(runs)} runs, of '
              f'{DISK_BYTES // 2 ** 30} GiB ({worst / 2 ** 30:.1f} GiB if the probes fell behind entirely).']
    if disk > DISK_BYTES / 2:  # the system, the image and PyTorch's share the disk
        problems.append(f'the runs need {disk / 2 ** 30:.1f} GiB, over half of the {DISK_BYTES // 2 ** 30} GiB disk')
    try:
        groups = sample_groups(runs, tiny)
    except ValueError as err:
        groups, problems = [], problems + [str(err)]
    files = dict(RETURNED_CAPS, **{f'samples-{index}.npz': sum(sample_bytes(tiny) + returned_files.NPZ_OVERHEAD_BYTES
                                                                 for _ in group) for index, group in enumerate(groups)})
    lines += ['Returned (at most, from $OUT): ' + ', '.join(f'{name} {size / 2 ** 20:.1f} MiB'
                                                           for name, size in files.items())]
    problems += returned_files.layout_problems(files)
    command = device_command(minutes, seeds)
    lines += [f'Device call: run(command={command!r}, carry={list(CARRY)}, timeout_s={COMMAND_SECONDS})']
    if len(command) > COMMAND_CHARS:
        problems.append(f'the command has {len(command)} characters, over {COMMAND_CHARS}')
    return lines, problems


def device_command(minutes, seeds):
    return DEVICE_COMMAND + (f' --minutes {minutes:g}' if minutes != DEFAULT_MINUTES else '') + \
        (f' --seeds {",".join(map(str, seeds))}' if seeds != [0] else '')


def carried_bytes():
    """Bytes of what travels: the tracked and untracked-not-ignored files, and the carried paths."""
    listed = children.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=ROOT,
                          capture_output=True, check=True).stdout.decode().split('\0')
    paths = [ROOT / name for name in listed if name] + [path for carried in CARRY
                                                       for path in (ROOT / carried).rglob('*')]
    return sum(path.stat().st_size for path in paths if path.is_file() and not path.is_symlink())


def snapshot_bytes(train_zip, tiny):
    """A snapshot's size from the networks train.py would build (parameters and buffers of G, G_ema and D, Adam's
    two moments of G and D), 4 bytes a number, a quarter more for the rest (augment pipe, a loss's own state)."""
    import dnnlib
    from scripts.dry_run import dry_run
    code, output = dry_run(['--outdir', '/nonexistent', '--data', str(train_zip),
                            '--cfg', 'cpu' if tiny else 'low_shot'])
    if code != 0:
        raise click.ClickException(f'train.py --dry-run failed:\n{output[-2000:]}')
    options = output[output.index('Training options:'):output.index('Output directory:')]
    options = json.loads(options[options.index('{'):])
    common = dict(c_dim=0, img_resolution=options['training_set_kwargs']['resolution'], img_channels=3)
    G = dnnlib.util.construct_class_by_name(**options['G_kwargs'], **common)
    D = dnnlib.util.construct_class_by_name(**options['D_kwargs'], **common)
    numbers = lambda tensors: sum(tensor.numel() for tensor in tensors)  # noqa: E731
    weights = numbers([*G.parameters(), *G.buffers()]) * 2 + numbers([*D.parameters(), *D.buffers()])
    moments = 2 * numbers([*G.parameters(), *D.parameters()])
    return int(1.25 * 4 * (weights + moments))


def prepare():
    from scripts.fashion_mnist import build_datasets, fetch_source, find_source
    cache = DATA_DIR.parent / 'cache'
    return build_datasets(find_source(None, cache) or fetch_source(cache), DATA_DIR, 100, 32, 0, 5000)


@click.command()
@click.option('--outdir', type=click.Path(file_okay=False), default=None,
              help="What comes back: the device's $OUT (empty, or holding only this study's files).")
@click.option('--workdir', type=click.Path(file_okay=False), default='/tmp/gpu-study', show_default=True,
              help='Runs, snapshots and logs (they do not come back).')
@click.option('--minutes', type=click.FloatRange(min=1), default=None, help='Wall time [default: 9, tiny: 4].')
@click.option('--seeds', default='0', show_default=True, help='Comma-separated seeds of every configuration.')
@click.option('--prepare', 'only_prepare', is_flag=True, help='Only build the datasets (needs Fashion-MNIST).')
@click.option('--plan', 'only_plan', is_flag=True, help='Print the plan, check it against the limits, run nothing.')
@click.option('--tiny', is_flag=True, help='The same steps on the CPU in seconds, on synthetic data.')
def main(outdir, workdir, minutes, seeds, only_prepare, only_plan, tiny):
    """The GPU study (see the module docstring)."""
    from study.runs import parse_seeds
    seeds = parse_seeds(seeds)
    minutes = minutes or (TINY['minutes'] if tiny else DEFAULT_MINUTES)
    if only_prepare:
        train_zip, reference_zip = prepare()
        print(f'datasets ready: {train_zip}, {reference_zip}; carry {CARRY[1]}')
        return
    workdir = Path(workdir).resolve()
    lines, problems = plan(minutes, seeds, tiny, workdir)
    print('\n'.join(lines))
    if problems:
        raise click.ClickException('the plan breaks the limits:\n  ' + '\n  '.join(problems))
    if only_plan:
        return
    if outdir is None:
        raise click.UsageError('give --outdir (on the device: $OUT)')
    outdir = Path(outdir).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    foreign = [name for name in returned_files.returned_layout(outdir) if name not in RETURNED_CAPS and
               not name.startswith('samples-')]
    if foreign:
        raise click.UsageError(f'{outdir} holds other files ({", ".join(foreign[:3])}); they would count against '
                               f'the {returned_files.MAX_FILES} files that come back')
    workdir.mkdir(parents=True, exist_ok=True)
    study = Study(outdir, workdir, minutes, seeds, tiny)
    ops = study.step('CUDA ops', 'ops', [sys.executable, 'scripts/check_cuda_ops.py'])
    if ops != 0 and not tiny:  # --cuda-ops require would refuse every run
        sys.exit(f'the CUDA ops did not build: see {outdir / "summary.md"}')
    measured = study.benchmark()
    status = study.study(measured)
    print(f'summary: {outdir / "summary.md"} ({time.time() - study.started:.0f} s)')
    problems = returned_files.layout_problems(returned_files.returned_layout(outdir))
    if problems or status != 0:
        sys.exit('; '.join(problems + ([f'study: {status}'] if status != 0 else [])))


if __name__ == '__main__':
    main()
