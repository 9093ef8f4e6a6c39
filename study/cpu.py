"""The CPU study (docs/studies.md, "The CPU study"): each paper's mechanism on 100 Fashion-MNIST images, several seeds,
time-compressed, resumable, its small results kept in the repository.

    python -m study.cpu --outdir runs/study-cpu --results docs/study-cpu [--kimg 40] [--seeds 0,1,2]
                        [--configs NAME,...] [--jobs 2] [--hours 2.5] [--metric fid1k_full] [--commit]
                        [--data ZIP --reference ZIP] [--dry-run]

Every configuration trains with upstream's train.py (`--cfg cpu`, batch 4) through the patches. Time compression:
every adaptive speed is the run length / 4, the papers' 500 of 2000 kimg: ADA's through --ada-kimg, the plugins'
heuristic through speed_kimg. CONFIGS lists the configurations; `finetune` starts from one Primitives-PS
pretraining run (on the endless fresh-draw stream, shared by the seeds) and is compared with `diffaugment`, the
same fine-tuning from scratch.

Before the first run starts, train.py --dry-run checks every configuration's options (also with --dry-run). Each run
is a pipeline: train (snapshots every --snap-kimg), the metric on the snapshots at the METRIC points, the probes of
every snapshot (study/probes.py), then its small results (training_options.json, command.json,
stats.jsonl.gz, metric-*.jsonl, probes.jsonl, the last fakes, done.json) go to RESULTS/runs/<config>-seed<seed>/ and
the figures and report (study/report.py) are redrawn; with --commit they are committed. --jobs pipelines run
side by side (one thread each). A pipeline starts only when its estimated time fits in what is left of --hours, so
every invocation ends with whole runs; a later one (on any machine with the repository) skips the runs RESULTS
already holds with the same command, and reuses finished training and metrics under --outdir. Snapshots stay under
--outdir, uncommitted. The pretraining and the fine-tunings are recorded with the pretrained snapshot's sha256:
should a later invocation train the pretraining again (another machine) and get another snapshot, the fine-tunings
recorded from the old one are trained again, so that all seeds share one.
"""

import contextlib
import gzip
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import click

from plugins.methods import METHODS, method_class, preset
from scripts import children
from scripts.dry_run import check_runs
from scripts.fashion_mnist import build_datasets, fetch_source, find_source
from scripts.results import ResultsError, field, read_json_object, read_jsonl, snapshot_kimg
from study.runs import check_metrics, evaluated_snapshots, finished_run, parse_seeds

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_CONFIGS = ('stylegan2', 'ada', 'diffaugment', 'atopk', 'worstk', 'linear-topk', 'anda', 'diggan', 'finetune')
BACKBONE_CONFIGS = (*(name for name in METHODS if name not in DEFAULT_CONFIGS), 'diffusion-gan',
                    'diffusion-anda')  # on request (--configs)
CONFIGS = DEFAULT_CONFIGS + BACKBONE_CONFIGS
PRETRAIN = 'pretrain'
CURVE_CONFIGS = ('diffaugment', 'finetune')  # Primitives-PS's FID against kimg: the metric at every curve point
# sec/kimg on one core of the CI machine (the pilot's, with two processes side by side), until this study has its own
SEC_PER_KIMG = {'stylegan2': 24, 'ada': 36, 'diffaugment': 30, 'atopk': 25, 'worstk': 25, 'linear-topk': 25,
                'anda': 40, 'diggan': 60, 'finetune': 30, PRETRAIN: 35, 'apa': 37, 'lecam': 36, 'insgen': 72,
                'diffusion-gan': 30, 'diffusion-anda': 34}
TICK_KIMG = {'cpu': 0.1}  # train.py's tick length by --cfg; 4 kimg for the others
SEC_PER_METRIC = 400  # fid1k_full: 1,000 generated images through Inception on one core
SEC_PER_PROBE = 10
SYNTHETIC_DATASET_CLASS = 'plugins.primitives.dataset.SyntheticDataset'
PRETRAINED_SHA_FILE = 'pretrained.sha256'  # beside a fine-tuning's command.json under --outdir


def config_args(name, kimg, pretrained=None):
    """train.py options of a configuration, with every adaptive speed at kimg / 4."""
    speed = f'{kimg / 4:g}'
    noaug = ['--aug', 'noaug']
    ada = ['--aug', 'ada', '--ada-kimg', speed]
    diffaugment = ['--aug', 'plugins.diffaug.AugmentPipe']
    diffusion = ['--aug', 'plugins.diffusion.AugmentPipe', '--target', '0.6', '--ada-kimg', speed,
                 '--D-class', 'plugins.diffusion.Discriminator']

    def loss(class_name, **options):
        return ['--loss', class_name, '--loss-kwargs', json.dumps(options)]

    def method(method_name, **options):  # a registered method's preset, on its papers' augmentation
        cls = method_class(method_name)
        facts = {'ada_target': 0.6 if cls.aug == 'ada' else None}  # --aug ada adapts p to train.py's default target
        adapts = cls.reads_p({**cls.option_defaults(), **options}, facts) == 'heuristic'
        speed = {'speed_kimg': kimg / 4} if adapts else {}
        return {'noaug': noaug, 'ada': ada}[cls.aug] + loss(preset(method_name), **options, **speed)
    return {
        'stylegan2': noaug,
        'ada': ada,
        'diffaugment': diffaugment,
        **{method_name: method(method_name) for method_name in METHODS},
        'worstk': method('atopk', mode='worst'),
        'linear-topk': method('atopk', mode='linear'),
        'finetune': diffaugment + ['--resume', pretrained or '{PRETRAINED}'],
        PRETRAIN: diffaugment,
        'diffusion-gan': diffusion,
        'diffusion-anda': diffusion + loss('plugins.anda.Loss'),
    }[name]


class Study:
    """The runs of one invocation and the pipeline of each (see the module docstring)."""

    def __init__(self, outdir, results, cfg, kimg, pretrain_kimg, snap_kimg, metric, metric_points, curve_points,
                 train_zip, reference_zip, resolution, hours, commit, dry_run, estimate_scale=1.0, grid=None):
        self.outdir, self.results, self.cfg = Path(outdir), Path(results), cfg
        self.kimg, self.pretrain_kimg, self.snap_kimg = kimg, pretrain_kimg, snap_kimg
        self.metric, self.metric_points, self.curve_points = metric, metric_points, curve_points
        self.train_zip, self.reference_zip, self.resolution = Path(train_zip), Path(reference_zip), resolution
        self.deadline = time.time() + hours * 3600
        self.commit, self.dry_run, self.estimate_scale = commit, dry_run, estimate_scale
        self.grid = grid  # train.py's --grid, or None for upstream's grid size
        self.lock = threading.Lock()
        self.pretrained = None  # the pretraining's last snapshot, once it exists
        self.pretrained_sha = None  # and its sha256: every fine-tuning recorded must start from the same one
        self.reference_lock = threading.Lock()  # the first metric computes the reference's statistics; the rest
        self.reference_cached = False           # wait for it, and then read them from upstream's cache
        self.pretrain_done = threading.Event()

    # ------------------------------------------------------------------------------------------------------------
    # Commands.

    def command(self, name, seed):
        """The train.py command of a run (a list of strings, from the repository root)."""
        kimg = self.pretrain_kimg if name == PRETRAIN else self.kimg
        data = [f'synth:primitives-ps?res={self.resolution}&seed=0', '--data-class', SYNTHETIC_DATASET_CLASS] \
            if name == PRETRAIN else [str(self.train_zip)]
        snap = max(1, round(self.snap_kimg / TICK_KIMG.get(self.cfg, 4)))
        return [sys.executable, 'stylegan2_ada/train.py', '--outdir', str(self.run_outdir(name, seed)), '--data',
                *data, '--cfg', self.cfg, '--kimg', f'{kimg:g}', '--seed', str(seed), '--snap', str(snap),
                '--metrics', 'none', '--workers', '1', *(['--grid', str(self.grid)] if self.grid else []),
                *config_args(name, kimg, self.pretrained)]

    def check_commands(self, names, seeds):
        """Let train.py --dry-run check each configuration's options (with the largest seed), all in one process, before
        the first run starts, so that one the data cannot take is a usage error, not a failure hours in. A
        fine-tuning is checked without its --resume: the pretrained snapshot does not exist yet, and it holds the
        pretraining's networks."""
        seed = max(seeds)
        checks = []
        for name in ([PRETRAIN] if 'finetune' in names else []) + names:
            command = self.command(name, seed)
            if '--resume' in command:
                del command[command.index('--resume'):command.index('--resume') + 2]
            checks.append((f'{name} seed {seed}', self.run_outdir(name, seed), command[4:]))
        print(f"Checking each configuration's options with a dry run of its training command ({len(checks)})",
              flush=True)
        check_runs(checks)

    def portable(self, command):
        """The command as recorded: the interpreter and paths under --outdir written machine-independently, and the
        pretrained snapshot as the pretraining's length (the pretraining is recorded with its own command)."""
        command = [Path(command[0]).name, *command[1:]]
        if '--resume' in command:
            command[command.index('--resume') + 1] = f'{{PRETRAINED: {self.pretrain_kimg:g} kimg}}'
        return [arg.replace(str(self.outdir), '{OUTDIR}') for arg in command]

    def run_outdir(self, name, seed):
        return self.outdir / 'runs' / f'{name}-seed{seed}'

    def result_dir(self, name, seed):
        return self.results / 'runs' / f'{name}-seed{seed}'

    def measured(self, name):
        """The metric and its points of a run, as recorded beside its command."""
        kimg = self.pretrain_kimg if name == PRETRAIN else self.kimg
        return {'name': self.metric, 'kimg': self.points(name, kimg) if self.metric else []}

    def recorded(self, name, seed):
        """Whether RESULTS holds this run, made by the same command and measured alike (the pretraining and the
        fine-tunings: also from the same pretrained snapshot as this invocation's, or else the recorded one)."""
        done = self.result_dir(name, seed) / 'done.json'
        if not done.is_file():
            return False
        done = read_json_object(done)
        same_snapshot = name not in (PRETRAIN, 'finetune') or done.get('pretrained_sha256') == self.pretraining_sha()
        return done.get('command') == self.portable(self.command(name, seed)) and done.get('metric') == \
            self.measured(name) and same_snapshot

    def pretraining_sha(self):
        """sha256 of the pretrained snapshot: this invocation's, else the recorded pretraining's (or None)."""
        done = self.result_dir(PRETRAIN, 0) / 'done.json'
        if self.pretrained_sha is None and done.is_file():
            return read_json_object(done).get('pretrained_sha256')
        return self.pretrained_sha

    # ------------------------------------------------------------------------------------------------------------
    # Estimates and the budget.

    def estimate(self, name, trained):
        """Seconds a run's pipeline takes (without the training when `trained`): this study's own mean when it
        has finished runs of the config, else the defaults."""
        measured = [field(path, None, read_json_object(path), 'seconds')
                    for path in self.results.glob(f'runs/{name}-seed*/done.json')]
        if measured:
            return sum(sum(v for k, v in entry.items() if k != 'train' or not trained)
                       for entry in measured) / len(measured)
        kimg = self.pretrain_kimg if name == PRETRAIN else self.kimg
        points = len(self.points(name, kimg)) if self.metric else 0
        return self.estimate_scale * (SEC_PER_KIMG[name] * kimg * (not trained) + SEC_PER_METRIC * points +
                                      SEC_PER_PROBE * (kimg / self.snap_kimg + 1))

    def points(self, name, kimg):
        """The kimg of the snapshots whose metric is computed."""
        every = self.curve_points if name in CURVE_CONFIGS else self.metric_points
        return [kimg * (index + 1) / every for index in range(every)] if name != PRETRAIN else []

    # ------------------------------------------------------------------------------------------------------------
    # The pipeline.

    def say(self, text):
        with self.lock:
            print(f'[{time.strftime("%H:%M:%S")}] {text}', flush=True)

    def execute(self, command, log):
        self.say('+ ' + shlex.join(command))
        if self.dry_run:
            return
        with open(log, 'a') as out:
            env = dict(os.environ, OMP_NUM_THREADS='1')
            children.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env, check=True)

    def pipeline(self, name, seed):
        """Train, evaluate and probe one run, then record its results; returns False when it did not start."""
        if name == 'finetune':  # when the pretraining runs, recorded fine-tunings must share its snapshot
            self.pretrain_done.wait()
        if self.recorded(name, seed) and name != PRETRAIN:  # the fine-tuning needs the pretraining's snapshot here
            self.say(f'{name} seed {seed}: already in {self.result_dir(name, seed)}')
            return True
        if name == 'finetune':
            if self.pretrained is None:
                self.say(f'{name} seed {seed}: no pretrained snapshot (the pretraining did not run); left for later')
                return False
        command = self.command(name, seed)
        run_outdir = self.run_outdir(name, seed)
        run_dir = self.finished(name, seed, run_outdir, command)
        estimate = self.estimate(name, trained=run_dir is not None)
        if time.time() + estimate > self.deadline:
            self.say(f'{name} seed {seed}: about {estimate / 60:.0f} min, more than is left; left for a later '
                     'invocation')
            return False
        seconds = {}
        started = time.time()
        if run_dir is not None:  # trained by an earlier invocation: its own training time
            number, last = read_jsonl(run_dir / 'stats.jsonl')[-1]
            seconds['train'] = field(run_dir / 'stats.jsonl', number, last, 'Timing/total_sec', 'mean')
        else:
            if not self.dry_run:
                shutil.rmtree(run_outdir, ignore_errors=True)  # an interrupted earlier attempt
                run_outdir.mkdir(parents=True)
                (run_outdir / 'command.json').write_text(json.dumps(self.portable(command)))
                if name == 'finetune':
                    (run_outdir / PRETRAINED_SHA_FILE).write_text(self.pretrained_sha)
            self.execute(command, self.outdir / f'{name}-seed{seed}.log')
            run_dir = finished_run(run_outdir, self.portable(command)) if not self.dry_run else run_outdir / 'RUN'
            if run_dir is None:
                raise click.ClickException(f'{run_outdir}: training ended without a finished run')
            seconds['train'] = time.time() - started
        if name == PRETRAIN:
            self.pretrained = str(max(run_dir.glob('network-snapshot-*.pkl'))) if not self.dry_run else 'PRETRAINED'
            recorded_sha = self.pretraining_sha()
            self.pretrained_sha = file_sha256(self.pretrained) if not self.dry_run else None
            if self.recorded(name, seed):
                return True
            if recorded_sha is not None and not self.dry_run:
                self.say(f'the pretrained snapshot (sha256 {self.pretrained_sha[:12]}) is not the recorded one '
                         f'({recorded_sha[:12]}): recording it, and training the fine-tunings of the other again')
        started = time.time()
        for snapshot in self.metric_snapshots(name, run_dir):
            evaluate = [sys.executable, 'stylegan2_ada/calc_metrics.py', '--metrics', self.metric, '--data',
                        str(self.reference_zip), '--network', str(snapshot)]
            with self.reference_lock if not self.reference_cached else contextlib.nullcontext():
                self.execute(evaluate, self.outdir / f'{name}-seed{seed}.log')
                self.reference_cached = True
        seconds['metrics'] = time.time() - started
        started = time.time()
        if name != PRETRAIN:
            self.execute([sys.executable, '-m', 'study.probes', '--run', str(run_dir), '--data',
                          str(self.train_zip), '--reference', str(self.reference_zip)],
                         self.outdir / f'{name}-seed{seed}.log')
        seconds['probes'] = time.time() - started
        if not self.dry_run:
            self.record(name, seed, run_dir, command, seconds)
        return True

    def finished(self, name, seed, run_outdir, command):
        """The run directory this command finished under --outdir, or None (also when what is there was made by
        another command: it is trained again)."""
        if self.dry_run:
            return None
        try:
            run_dir = finished_run(run_outdir, self.portable(command))
        except click.ClickException:
            self.say(f'{name} seed {seed}: {run_outdir} holds a run of another command; training it again')
            return None
        marker = run_outdir / PRETRAINED_SHA_FILE
        if run_dir is not None and name == 'finetune' and (
                not marker.is_file() or marker.read_text() != self.pretrained_sha):
            self.say(f'{name} seed {seed}: {run_outdir} was fine-tuned from another pretrained snapshot; training '
                     'it again')
            return None
        return run_dir

    def metric_snapshots(self, name, run_dir):
        """The snapshots at the metric points that have no metric row yet."""
        if not self.metric:
            return []
        kimg = self.pretrain_kimg if name == PRETRAIN else self.kimg
        if self.dry_run:
            return [run_dir / f'network-snapshot-<kimg {point:g}>.pkl' for point in self.points(name, kimg)]
        done = evaluated_snapshots(run_dir, self.metric)
        snapshots = {snapshot_kimg(path): path for path in run_dir.glob('network-snapshot-*.pkl')}
        wanted = [min(snapshots, key=lambda k, point=point: abs(k - point)) for point in self.points(name, kimg)]
        return [snapshots[k] for k in sorted(set(wanted)) if snapshots[k].name not in done]

    def record(self, name, seed, run_dir, command, seconds):
        """Copy the run's small results to RESULTS, redraw the report, and commit when asked."""
        target = self.result_dir(name, seed)
        with self.lock:
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            for pattern in ('training_options.json', 'metric-*.jsonl', 'probes.jsonl', 'fakes-final.png'):
                for path in run_dir.glob(pattern):
                    shutil.copy2(path, target / path.name)
            (target / 'stats.jsonl.gz').write_bytes(gzip.compress((run_dir / 'stats.jsonl').read_bytes(), mtime=0))
            done = dict(command=self.portable(command), metric=self.measured(name),
                        seconds={k: round(v) for k, v in seconds.items()},
                        finished=time.strftime('%Y-%m-%d %H:%M:%S'), machine=machine_description())
            if name in (PRETRAIN, 'finetune'):
                done['pretrained_sha256'] = self.pretrained_sha
            (target / 'done.tmp').write_text(json.dumps(done, indent=2) + '\n')
            (target / 'done.tmp').replace(target / 'done.json')  # whole or absent: it marks the run recorded
            children.run([sys.executable, '-m', 'study.report', '--results', str(self.results), '--metric',
                            self.metric or 'none'], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            if self.commit:
                children.run(['git', 'add', str(self.results)], cwd=ROOT, check=True)
                children.run(['git', 'commit', '-q', '-m', f'CPU study: {name} seed {seed}', '--', str(self.results)],
                               cwd=ROOT, check=True)
        self.say(f'{name} seed {seed}: done in {sum(seconds.values()) / 60:.0f} min; results in {target}')


def file_sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def machine_description(cpuinfo=None):
    """The CPU type and core count: float results (and so the pretrained snapshot's sha256) repeat bit for bit on
    one CPU type, not across types (docs/study-cpu/README.md)."""
    if cpuinfo is None:
        path = Path('/proc/cpuinfo')
        cpuinfo = path.read_text() if path.is_file() else ''
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(':')
        fields.setdefault(key.strip(), value.strip())
    flags = fields.get('flags', '').split()
    vector = 'AVX-512' if 'avx512f' in flags else 'AVX2' if 'avx2' in flags else 'no AVX2'
    cpu = fields.get('model name', 'unknown CPU')
    if 'cpu family' in fields:
        cpu += f' (family {fields["cpu family"]} model {fields.get("model", "?")}, {vector})'
    return f'{cpu}, {os.cpu_count()} cores'


def next_index(queue, pretrained):
    """The queue entry a free pipeline takes: the first one, except that a fine-tuning waits for the pretraining,
    so while that runs the first other entry is taken (a core does not idle behind it)."""
    return next((index for index, (name, _) in enumerate(queue) if name != 'finetune' or pretrained), 0)


def schedule(study, names, seeds, jobs):
    """Run the pipelines `jobs` at a time: every configuration's first seed, then the second, ...; the
    pretraining first among them, as the fine-tuning waits for it."""
    queue = [(name, seed) for seed in seeds for name in names]
    if any(name == 'finetune' and not study.recorded(name, seed) for name, seed in queue):
        queue.insert(0, (PRETRAIN, 0))
    else:
        study.pretrain_done.set()
    errors, finished, total = [], [], len(queue)
    queue_lock = threading.Lock()

    def worker():
        while True:
            with queue_lock:
                if not queue or errors:
                    return
                name, seed = queue.pop(next_index(queue, study.pretrain_done.is_set()))
            try:
                if study.pipeline(name, seed):
                    finished.append((name, seed))
            except Exception as err:  # noqa: BLE001 - any failure ends the invocation, reported
                errors.append(f'{name} seed {seed}: {type(err).__name__}: {err}')
            finally:
                if name == PRETRAIN:
                    study.pretrain_done.set()
    threads = [threading.Thread(target=worker) for _ in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise click.ClickException('; '.join(errors) + f' (logs under {study.outdir})')
    return finished, total


@click.command()
@click.option('--outdir', type=click.Path(file_okay=False), default=str(ROOT / 'runs' / 'study-cpu'),
              show_default=True, help='Runs, snapshots and logs (not committed).')
@click.option('--results', type=click.Path(file_okay=False), default=str(ROOT / 'docs' / 'study-cpu'),
              show_default=True, help='The small results, figures and report (committed).')
@click.option('--kimg', type=click.FloatRange(min=0, min_open=True), default=40, show_default=True,
              help='Length of every run (the pilot chose 40).')
@click.option('--pretrain-kimg', type=click.FloatRange(min=0, min_open=True), default=None,
              help='Length of the Primitives-PS pretraining [default: --kimg].')
@click.option('--seeds', default='0,1,2', show_default=True)
@click.option('--configs', default=','.join(DEFAULT_CONFIGS), show_default=True,
              help=f'Comma-separated configurations, also of {", ".join(BACKBONE_CONFIGS)}.')
@click.option('--cfg', default='cpu', show_default=True, help="train.py's --cfg (low_shot on a GPU).")
@click.option('--snap-kimg', type=click.FloatRange(min=0.1), default=4, show_default=True,
              help='Snapshot interval (each one probed).')
@click.option('--metric', default='fid1k_full', show_default=True, help="calc_metrics.py's metric, or none.")
@click.option('--metric-points', type=click.IntRange(min=1), default=2, show_default=True,
              help='Metric at this many evenly spaced snapshots of a run (2: half-way and the end).')
@click.option('--curve-points', type=click.IntRange(min=1), default=5, show_default=True,
              help="The same for Primitives-PS's fine-tuning and its scratch baseline (its FID curve).")
@click.option('--jobs', type=click.IntRange(min=1), default=2, show_default=True, help='Pipelines side by side.')
@click.option('--hours', type=click.FloatRange(min=0, min_open=True), default=2.5, show_default=True,
              help='Start no pipeline that would not end within this time.')
@click.option('--data', 'data', type=click.Path(dir_okay=False), default=None,
              help='Training zip [default: 100 Fashion-MNIST images, built by scripts/fashion_mnist.py].')
@click.option('--reference', type=click.Path(dir_okay=False), default=None,
              help='Metric reference zip [default: the first 5,000 Fashion-MNIST training images].')
@click.option('--estimate-scale', type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="The default estimates' factor until this study has measured runs (below 1 on a GPU).")
@click.option('--grid', type=click.IntRange(min=1), default=None,
              help="train.py's --grid: snapshot image grids of at most N x N [default: upstream's size].")
@click.option('--commit', is_flag=True, help='git commit RESULTS after each finished run.')
@click.option('--dry-run', is_flag=True, help='Print the plan and the commands; run nothing.')
def main(outdir, results, kimg, pretrain_kimg, seeds, configs, cfg, snap_kimg, metric, metric_points, curve_points,
         jobs, hours, data, reference, estimate_scale, grid, commit, dry_run):
    """The CPU study (see the module docstring)."""
    seeds = parse_seeds(seeds)
    names = [name.strip() for name in configs.split(',') if name.strip()]
    unknown = [name for name in names if name not in CONFIGS]
    if unknown or not names or len(set(names)) < len(names):
        problem = f'{unknown[0]!r} is not a configuration' if unknown else 'none given' if not names else \
            'a configuration given twice'
        raise click.BadParameter(f'{problem}; the configurations are {", ".join(CONFIGS)}', param_hint='--configs')
    metric = None if metric.lower() == 'none' else metric
    if metric:
        check_metrics([metric])
    if (data is None) != (reference is None):
        raise click.BadParameter('give both --data and --reference, or neither', param_hint='--data')
    for option, path in (('--data', data), ('--reference', reference)):
        if path is not None and not Path(path).is_file():
            raise click.BadParameter(f'{path}: no such file', param_hint=option)
    outdir, results = Path(outdir).resolve(), Path(results).resolve()
    if data is None:
        data, reference = outdir / 'data' / 'fmnist100-32.zip', outdir / 'data' / 'fmnist-full-32.zip'
        if not dry_run:
            source = find_source(None, outdir / 'cache') or fetch_source(outdir / 'cache')
            data, reference = build_datasets(source, outdir / 'data', 100, 32, 0, 5000)
    from training.dataset import ImageFolderDataset
    resolution = ImageFolderDataset(str(data)).resolution if Path(data).is_file() else 32
    study = Study(outdir, results, cfg, kimg, pretrain_kimg or kimg, snap_kimg, metric, metric_points, curve_points,
                  Path(data).resolve(), Path(reference).resolve(), resolution, hours, commit, dry_run, estimate_scale,
                  grid)
    runs = len(names) * len(seeds) + ('finetune' in names)
    print(f'Plan: {runs} runs ({", ".join(names)} x seeds {", ".join(map(str, seeds))}'
          f'{" + one pretraining" if "finetune" in names else ""}), {kimg:g} kimg each, adaptive speeds '
          f'{kimg / 4:g} kimg; {metric or "no metric"} against {Path(reference).name}; {jobs} side by side for at '
          f'most {hours:g} h; results in {results}', flush=True)
    if Path(data).is_file():
        study.check_commands(names, seeds)
    else:
        print('train.py --dry-run checks skipped: the datasets do not exist yet (a run that is not --dry-run builds '
              'them first)')
    try:
        finished, total = schedule(study, names, seeds, jobs)
    except ResultsError as err:
        raise click.ClickException(str(err)) from None
    left = total - len(finished)
    print(f'{len(finished)} of {total} runs done{f", {left} left for a later invocation" if left else ""}.')


if __name__ == '__main__':
    main()
