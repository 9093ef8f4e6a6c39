"""End-to-end differential harness: a released fork's own training loop against the project's, from one set of
starting networks, data and random state, minibatch by minibatch; and both loops' cost, interleaved.

    python scripts/compare_released.py --fork DIR --fork-args 'ARGS' --project-args 'ARGS'
        [--minibatches 32] [--tick 4] [--override JSON] [--fork-override JSON] [--project-override JSON]
        [--adapter NAME] [--no-transfer] [--out DIR]
    python scripts/compare_released.py --time ... [--repeats 5] [--warmup 4]

DIR is a checkout of the fork (edited to run on the CPU where it must: docs/released-forks.md says how); each side
runs its own train.py (the fork's, and upstream's through the patches with the project's plugins), with ARGS as on
its command line (`--outdir` and `--gpus 1` are added). The training loop's options are then overridden alike on
both sides: --override (a JSON object merged into them, e.g. smaller networks for the CPU), no metrics, no
snapshots, a tick every --tick minibatches, and a stop at the start of minibatch --minibatches; --fork-override and
--project-override are merged into one side's only (an option the fork names differently, e.g. DeceiveD's
apa_kimg for ADA's ada_kimg).

Comparison. At the first minibatch's data fetch the fork's G, D, G_ema, augment pipe, the adapter's extra state and
the global torch, NumPy and Python random states are copied into the project's run (unless --no-transfer): both
then start from the same state, whatever order their setup drew random numbers in (the report says whether the
states were already equal before the copy). Each side records, in order, every value given to
training_stats.report (timing and resources aside), tagged with the minibatch and training phase, and at the start
of each minibatch the digests of every network, optimizer, augment pipe and adapter tensor and of the random
states. The report names the first quantity that differs: the earliest minibatch, the first report of a name both
sides report in that minibatch's order, or the first state tensor, with both values. Exit status 0: equal bit for
bit; 1: a difference; 2: a usage error.

Timing (--time). Both sides run at once, in lockstep: the harness lets one side run one minibatch while the other
waits, then the other side the same minibatch, the first side alternating, so that each minibatch of the project
is timed right beside the fork's same minibatch and the machine's drifts hit both alike. A minibatch's time runs
from its data fetch to the next, by the wall clock and by the process's CPU time; nothing is recorded. Over
minibatches --warmup to --minibatches of --repeats such runs, the report gives each side's seconds per minibatch,
the ratio of their totals and the median of the per-minibatch ratios. Give a large --tick: ticks are rare in real
runs.

Adapters name state a side keeps outside G, D, G_ema and the augment pipe, under names both sides share:
ADAPTERS below.
"""

import contextlib
import functools
import hashlib
import json
import os
import pickle
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
SKIPPED_STATS = ('Timing/', 'Resources/')  # wall-clock figures, never equal


def _insgen_fork(frame):
    return {'D_ema': frame['D_ema'], 'DHead': frame['DHead'], 'GHead': frame['GHead']}


def _insgen_project(frame):
    insgen = frame['loss'].methods['insgen']
    return {'D_ema': insgen.D_momentum, 'DHead': insgen.heads['real'], 'GHead': insgen.heads['fake']}


def _diffusion_fork(frame):
    import torch
    diffusion = frame['diffusion']  # its p is a Python float, its table a NumPy array: compared, not transferred
    return {'augment_pipe.p': torch.tensor(diffusion.p, dtype=torch.float64),
            'augment_pipe.table': torch.from_numpy(diffusion.t_epl)}


ADAPTERS = {  # name: (the fork's extra state, the project's), each {shared name: module or tensor} from the loop's locals
    'none': (lambda frame: {}, lambda frame: {}),
    'insgen': (_insgen_fork, _insgen_project),
    'diffusion': (_diffusion_fork, lambda frame: {}),  # the project's pipe is the loop's augment_pipe
}


class StopHarness(BaseException):
    """Ends a side's training loop at the start of the last minibatch (BaseException: no loop catches it)."""


# ------------------------------------------------------------------------------------------------------------------
# One side, run in its own process: `--side` below.

def _deep_merge(base, override):
    """A copy of the dict `base` (of its type: the loops read EasyDict attributes) with `override` merged in."""
    merged = type(base)(base)
    for key, value in override.items():
        merged[key] = _deep_merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def _tensors(prefix, obj):
    """{name: tensor} of a module's state_dict, a tensor, or None."""
    import torch
    if obj is None:
        return {}
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    module = getattr(obj, 'module', obj)  # DistributedDataParallel
    return {f'{prefix}.{name}': tensor for name, tensor in module.state_dict().items()}


def _optimizer_tensors(phases):
    import torch
    tensors = {}
    for phase in phases:
        for index, state in phase.opt.state_dict()['state'].items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f'opt.{phase.name[0]}.{index}.{key}'] = value
    return tensors


def _random_states():
    import numpy as np
    import torch
    return {'torch': torch.get_rng_state(), 'numpy': np.random.get_state(), 'python': random.getstate()}


def _digest(tensor):
    """(sha1 of the bytes, dtype, shape, float64 sum): equality, and a magnitude to show when two differ."""
    tensor = tensor.detach().cpu().contiguous()
    return hashlib.sha1(tensor.numpy().tobytes()).hexdigest(), str(tensor.dtype), list(tensor.shape), float(tensor.double().sum())


def _state_digest(state):
    """A random generator's state (a tensor, or NumPy's or Python's state tuple) as a digest of the same form."""
    if hasattr(state, 'numpy'):
        return _digest(state)
    return hashlib.sha1(pickle.dumps(state)).hexdigest(), type(state).__name__, [], 0.0


class Recorder:
    """Hooks one side's training loop: reports, phases, per-minibatch state, the start-state transfer and the stop."""

    def __init__(self, options):
        self.options = options
        self.minibatch = -1
        self.phase = 'setup'
        self.reports = []  # (minibatch, phase, name, values)
        self.states = []  # per minibatch start: {name: digest}
        self.times = []  # (wall clock, process CPU time) of each minibatch, with --time
        self.before_transfer = None
        self.not_transferred = []  # the project's state entries the fork's start state has no equal for
        self.extras = ADAPTERS[options['adapter']][0 if options['role'] == 'fork' else 1]

    def report(self, name, value):
        import numpy as np
        import torch
        if not name.startswith(SKIPPED_STATS):
            values = value.detach().double().cpu().numpy().ravel() if isinstance(value, torch.Tensor) else \
                np.asarray(value, dtype=np.float64).ravel()
            if values.size:
                self.reports.append((self.minibatch, self.phase, name, values.copy()))

    def wrap_loss(self, loss):
        accumulate = loss.accumulate_gradients

        def accumulate_gradients(phase, *args, **kwargs):
            self.phase = phase
            result = accumulate(phase, *args, **kwargs)
            self.phase = 'loop'  # ADA's adjustment, the tick
            return result
        loss.accumulate_gradients = accumulate_gradients

    def state(self, frame):
        tensors = {}
        for name in ('G', 'D', 'G_ema', 'augment_pipe'):
            tensors.update(_tensors(name, frame.get(name)))
        tensors.update(_optimizer_tensors(frame['phases']))
        if hasattr(frame['loss'], 'pl_mean'):
            tensors['loss.pl_mean'] = frame['loss'].pl_mean
        for name, obj in self.extras(frame).items():
            tensors.update(_tensors(name, obj))
        return tensors

    def digests(self, frame):
        digests = {name: _digest(tensor) for name, tensor in self.state(frame).items()}
        digests.update({f'random.{name}': _state_digest(state) for name, state in _random_states().items()
                        if name != 'python'})  # unseeded by upstream: differs between processes, used by none
        return digests

    def transfer(self, frame):
        """Fork: write the start state. Project: read it into this run (tensors by shared name, random states)."""
        import torch
        path = self.options['start_state']
        if self.options['role'] == 'fork':
            state = {name: tensor.detach().cpu().clone() for name, tensor in self.state(frame).items()}
            with open(path, 'wb') as f:
                pickle.dump({'tensors': state, 'random': _random_states()}, f)
            return
        with open(path, 'rb') as f:
            saved = pickle.load(f)
        mine = self.state(frame)
        self.not_transferred = [name for name, tensor in mine.items() if name not in saved['tensors']
                                or saved['tensors'][name].shape != tensor.shape]
        with torch.no_grad():
            for name, tensor in mine.items():
                if name not in self.not_transferred:
                    tensor.copy_(saved['tensors'][name])
        import numpy as np
        torch.set_rng_state(saved['random']['torch'])
        np.random.set_state(saved['random']['numpy'])
        random.setstate(saved['random']['python'])

    def take_turn(self):
        """--time: time the minibatch just run, tell the harness, and wait for this side's next turn."""
        clocks = (time.perf_counter(), time.process_time())
        if self.minibatch > 0:
            self.times.append(tuple(now - then for now, then in zip(clocks, self.started)))
        os.write(self.options['baton'][1], b'd')
        if self.minibatch < self.options['minibatches'] and os.read(self.options['baton'][0], 1) != b'g':
            raise StopHarness  # the harness is gone
        self.started = (time.perf_counter(), time.process_time())

    def minibatch_start(self, frame):
        """Called at every data fetch of the training loop, i.e. at the start of each minibatch."""
        self.minibatch += 1
        self.phase = 'start'
        if self.options['timing']:
            self.take_turn()
            if self.minibatch == self.options['minibatches']:
                raise StopHarness
            return
        if self.minibatch == 0:
            self.wrap_loss(frame['loss'])
            self.before_transfer = self.digests(frame)
            if self.options['start_state'] is not None:
                self.transfer(frame)
        self.states.append(self.digests(frame))
        if self.minibatch == self.options['minibatches']:
            raise StopHarness

    def result(self):
        return dict(reports=self.reports, states=self.states, before_transfer=self.before_transfer, times=self.times,
                    not_transferred=self.not_transferred)


def run_side(options, train_args):
    """Run the side's train.py with the harness's hooks; return the Recorder's result."""
    sys.path.insert(0, options['root'])
    import torch
    import train
    from torch_utils import training_stats
    from training import training_loop

    recorder = Recorder(options)
    report = training_stats.report

    def recording_report(name, value):
        recorder.report(name, value)
        return report(name, value)
    if not options['timing']:
        training_stats.report = recording_report  # report0 calls it too

    iterate = torch.utils.data.DataLoader.__iter__

    class Fetching:
        def __init__(self, iterator):
            self.iterator = iterator

        def __next__(self):
            recorder.minibatch_start(sys._getframe(1).f_locals)  # the training loop's frame
            return next(self.iterator)
    torch.utils.data.DataLoader.__iter__ = lambda loader: Fetching(iterate(loader))

    loop = training_loop.training_loop

    @functools.wraps(loop)  # train.py may read the loop's signature
    def overridden_loop(**kwargs):
        kwargs = _deep_merge(kwargs, options['override'])
        kwargs.update(metrics=[], image_snapshot_ticks=None, network_snapshot_ticks=None, total_kimg=1e9,
                      kimg_per_tick=options['tick'] * kwargs['batch_size'] / 1000)
        return loop(**kwargs)
    training_loop.training_loop = overridden_loop

    try:
        train.main(train_args, standalone_mode=False)
    except StopHarness:
        return recorder.result()
    raise RuntimeError(f'{options["role"]}: the training loop ended before minibatch {options["minibatches"]}')


# ------------------------------------------------------------------------------------------------------------------
# The harness: run both sides, compare.

class Side:
    """One side's process: its command, its log, its recorded result, and with --time the pipes of its turns."""

    def __init__(self, role, root, train_args, settings, workdir, start_state=None, timing=False):
        self.role, self.out = role, Path(workdir) / f'{role}-{time.monotonic_ns()}.pkl'
        self.log = Path(workdir) / f'{role}-{time.monotonic_ns()}.log'
        go, done = (os.pipe(), os.pipe()) if timing else ((None, None), (None, None))
        options = dict(settings, role=role, root=str(root), start_state=start_state, timing=timing, baton=[go[0], done[1]])
        args = [*train_args, '--outdir', str(Path(workdir) / f'{role}-runs'), '--gpus', '1']
        self.command = [sys.executable, __file__, '--side', json.dumps(options), '--side-out', str(self.out), '--', *args]
        from scripts import children
        with open(self.log, 'w') as log:
            self.process = children.popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            pass_fds=[fd for fd in (go[0], done[1]) if fd is not None])
        for fd in (go[0], done[1]):
            if fd is not None:
                os.close(fd)
        self.go, self.done = go[1], done[0]

    def wait(self):
        """--time: until the side has finished its setup or its minibatch."""
        if os.read(self.done, 1) != b'd':
            self.result()  # it ended: raises with its log
            raise click.ClickException(f'the {self.role} side ended before its last minibatch:\n{self.log.read_text()[-6000:]}')

    def turn(self):
        """--time: let the side run its next minibatch, and wait until it has."""
        os.write(self.go, b'g')
        self.wait()

    def result(self):
        if self.process.wait() != 0:
            raise click.ClickException(f'the {self.role} side failed (python {shlex.join(self.command[1:])}):\n'
                                       f'{self.log.read_text()[-6000:]}')
        with open(self.out, 'rb') as f:
            return pickle.load(f)


def launch(*args, **kwargs):
    """Run one side to its end; returns its recorded result."""
    return Side(*args, **kwargs).result()


def time_in_lockstep(sides, side_settings, workdir):
    """Both sides' (wall, CPU) seconds per minibatch, run one minibatch at a time each, the first alternating."""
    running = {role: Side(role, *sides[role], side_settings[role], workdir, timing=True) for role in sides}
    for side in running.values():
        side.wait()  # set up, at the first data fetch
    for minibatch in range(side_settings['fork']['minibatches']):
        for role in (('fork', 'project') if minibatch % 2 == 0 else ('project', 'fork')):
            running[role].turn()
    return {role: side.result()['times'] for role, side in running.items()}


def _show(values):
    import numpy as np
    return np.array2string(values[:8], precision=9, separator=', ') + (f' ... ({values.size} values)' if values.size > 8 else '')


def first_difference(fork, project):
    """(minibatch, description) of the first difference, or None; plus the names only one side reports."""
    import numpy as np
    fork_names = {name for _, _, name, _ in fork['reports']}
    project_names = {name for _, _, name, _ in project['reports']}
    shared = fork_names & project_names
    minibatches = len(fork['states'])
    for minibatch in range(minibatches):
        a, b = fork['states'][minibatch], project['states'][minibatch]
        for name in a:
            if name in b and a[name][:3] != b[name][:3]:
                return minibatch, (f'{name} at the start of minibatch {minibatch}: {a[name][1]} {a[name][2]}, sum '
                                   f'{a[name][3]!r} (fork) against {b[name][1]} {b[name][2]}, sum {b[name][3]!r} (project)')
        ours = [r for r in fork['reports'] if r[0] == minibatch and r[2] in shared]
        theirs = [r for r in project['reports'] if r[0] == minibatch and r[2] in shared]
        for index, (x, y) in enumerate(zip(ours, theirs)):
            if x[2] != y[2]:
                return minibatch, (f'report {index} of minibatch {minibatch}: the fork reports {x[2]} (phase {x[1]}), '
                                   f'the project {y[2]} (phase {y[1]})')
            if x[3].shape != y[3].shape or not np.array_equal(x[3], y[3], equal_nan=True):
                return minibatch, (f'{x[2]} in minibatch {minibatch}, phase {x[1]} (project: {y[1]}): '
                                   f'{_show(x[3])} (fork) against {_show(y[3])} (project)')
        if len(ours) != len(theirs):
            return minibatch, f'minibatch {minibatch}: the fork makes {len(ours)} shared reports, the project {len(theirs)}'
    return None


def compare_report(fork, project, transferred):
    lines = []
    fork_names = sorted({name for _, _, name, _ in fork['reports']})
    project_names = sorted({name for _, _, name, _ in project['reports']})
    before = [name for name in fork['before_transfer'] if name in project['before_transfer']
              and fork['before_transfer'][name][:3] != project['before_transfer'][name][:3]]
    only_fork = [name for name in fork['before_transfer'] if name not in project['before_transfer']]
    only_project = [name for name in project['before_transfer'] if name not in fork['before_transfer']]
    lines.append('start: ' + ('equal before any transfer' if not before else
                              f'{len(before)} of {len(fork["before_transfer"])} state entries differed before the '
                              f'transfer ({", ".join(before[:8])}{", ..." if len(before) > 8 else ""})'
                              + ('; the fork\'s were copied in' if transferred else '')))
    if transferred and project['not_transferred']:
        names = project['not_transferred']
        lines.append(f'not transferred (no entry of that name and shape in the fork\'s start state): {names[:6]}'
                     f'{"..." if len(names) > 6 else ""}')
    if only_fork or only_project:
        lines.append(f'state on one side only (not compared): fork {only_fork[:6]}{"..." if len(only_fork) > 6 else ""}; '
                     f'project {only_project[:6]}{"..." if len(only_project) > 6 else ""}')
    shared = set(fork_names) & set(project_names)
    count = sum(1 for r in fork['reports'] if r[2] in shared)
    lines.append(f'compared: {len(fork["states"]) - 1} minibatches, {count} reports of {len(shared)} quantities, '
                 f'{len(fork["states"][0])} state entries at the start of each minibatch')
    lines.append(f'reported by the fork only: {", ".join(n for n in fork_names if n not in shared) or "-"}')
    lines.append(f'reported by the project only: {", ".join(n for n in project_names if n not in shared) or "-"}')
    difference = first_difference(fork, project)
    lines.append('result: equal bit for bit' if difference is None else f'result: first difference: {difference[1]}')
    return lines, difference


def timing_report(runs, settings):
    """runs: per repeat, {role: [(wall, cpu) per minibatch]}."""
    lines = []
    for clock, label in ((0, 'wall'), (1, 'cpu')):
        pairs = [(run['fork'][m][clock], run['project'][m][clock]) for run in runs
                 for m in range(settings['warmup'], settings['minibatches'])]
        fork, project = (sum(pair[i] for pair in pairs) / len(pairs) for i in (0, 1))
        median = statistics.median(b / a for a, b in pairs)
        lines.append(f'{label}: fork {fork:.4f} s, project {project:.4f} s per minibatch over {len(pairs)} minibatch '
                     f'pairs ({len(runs)} runs); ratio project / fork: {project / fork:.3f} (total), {median:.3f} '
                     f'(median of the minibatch pairs)')
    return lines


def run(sides, side_settings, workdir, timing, repeats, transfer, lines, out):
    """Run the comparison or the timing, print the report (and write it to out/report.txt); the exit status."""
    if timing:
        runs = [time_in_lockstep(sides, side_settings, workdir) for _ in range(repeats)]
        lines += timing_report(runs, side_settings['fork'])
        status = 0
    else:
        start_state = str(workdir / 'start_state.pkl') if transfer else None
        fork = launch('fork', *sides['fork'], side_settings['fork'], workdir, start_state=start_state)
        project = launch('project', *sides['project'], side_settings['project'], workdir, start_state=start_state)
        report_lines, difference = compare_report(fork, project, transfer)
        lines += report_lines
        status = 0 if difference is None else 1
    text = '\n'.join(lines)
    print(text)
    if out:
        (workdir / 'report.txt').write_text(text + '\n')
    return status


@click.command(context_settings=dict(ignore_unknown_options=True))
@click.option('--fork', 'fork_dir', type=click.Path(exists=True, file_okay=False), help="The fork's checkout (its train.py)")
@click.option('--fork-args', default='', help="The fork's train.py options, as one shell-quoted string")
@click.option('--project-args', default='', help="The project's train.py options, as one shell-quoted string")
@click.option('--minibatches', type=click.IntRange(1), default=32, show_default=True, help='Minibatches to compare or time')
@click.option('--tick', type=click.IntRange(1), default=4, show_default=True, help='A tick every this many minibatches')
@click.option('--override', default='{}', help='JSON object merged into both training loops\' options')
@click.option('--fork-override', default='{}', help="JSON object merged into the fork's training loop options only")
@click.option('--project-override', default='{}', help="JSON object merged into the project's training loop options only")
@click.option('--adapter', type=click.Choice(sorted(ADAPTERS)), default='none', show_default=True)
@click.option('--transfer/--no-transfer', default=True, show_default=True, help="Copy the fork's start state into the project's run")
@click.option('--time', 'timing', is_flag=True, help='Time both loops, interleaved, instead of comparing them')
@click.option('--repeats', type=click.IntRange(1), default=5, show_default=True, help='--time: runs per side')
@click.option('--warmup', type=click.IntRange(0), default=4, show_default=True, help='--time: minibatches before the clock starts')
@click.option('--out', type=click.Path(file_okay=False), help='Keep the run folders and write report.txt here')
@click.option('--side', hidden=True)
@click.option('--side-out', hidden=True)
@click.argument('side_args', nargs=-1, type=click.UNPROCESSED)
def main(fork_dir, fork_args, project_args, minibatches, tick, override, fork_override, project_override, adapter,
         transfer, timing, repeats, warmup, out, side, side_out, side_args):
    """Compare a released fork's training loop with the project's, or time both (see the module docstring)."""
    if side is not None:
        result = run_side(json.loads(side), list(side_args))
        with open(side_out, 'wb') as f:
            pickle.dump(result, f)
        return
    if fork_dir is None:
        raise click.UsageError('--fork DIR is required')
    if not (Path(fork_dir) / 'train.py').is_file():
        raise click.UsageError(f'--fork {fork_dir}: no train.py there; give the checkout of a StyleGAN2-ADA fork')
    overrides = {}
    for name, text in (('override', override), ('fork-override', fork_override), ('project-override', project_override)):
        try:
            overrides[name] = json.loads(text)
        except json.JSONDecodeError as err:
            raise click.UsageError(f'--{name} is not JSON: {err}') from err
        if not isinstance(overrides[name], dict):
            raise click.UsageError(f'--{name} must be a JSON object, got {overrides[name]!r}')
    if timing and warmup >= minibatches:
        raise click.UsageError(f'--warmup {warmup} must be below --minibatches {minibatches}')
    settings = dict(minibatches=minibatches, tick=tick, adapter=adapter, warmup=warmup)
    sides = {'fork': (Path(fork_dir).resolve(), shlex.split(fork_args)),
             'project': (ROOT / 'stylegan2_ada', shlex.split(project_args))}
    side_settings = {role: dict(settings, override=_deep_merge(overrides['override'], overrides[f'{role}-override']))
                     for role in sides}
    with contextlib.ExitStack() as stack:
        workdir = Path(out) if out else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix='compare_released-')))
        workdir.mkdir(parents=True, exist_ok=True)
        status = run(sides, side_settings, workdir, timing, repeats, transfer, [
            f'fork: {sides["fork"][0]} train.py {fork_args}', f'project: stylegan2_ada/train.py {project_args}',
            f'override: {override}; fork only: {fork_override}; project only: {project_override}',
            f'a tick every {tick} minibatches; adapter {adapter}'], out)
    sys.exit(status)


if __name__ == '__main__':
    main()
