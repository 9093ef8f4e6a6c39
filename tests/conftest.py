"""Shared fixtures: a small dataset the project makes itself, and runners for upstream's command-line tools."""

import contextlib
import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope='session')
def dataset16(tmp_path_factory):
    """16 Primitives images at 16x16 in upstream's zip layout."""
    from plugins.primitives.writer import write_dataset
    path = tmp_path_factory.mktemp('data') / 'primitives16.zip'
    write_dataset(str(path), synth='primitives', count=16, resolution=16, seed=0, workers=1, progress=False)
    return path


def run_upstream(script, *args, check=True, timeout=900):
    """Run one of upstream's scripts (patched) from the repository root, as a user would."""
    result = subprocess.run([sys.executable, str(ROOT / 'stylegan2_ada' / script), *map(str, args)],
                            cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f'{script} {" ".join(map(str, args))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}')
    return result


@contextlib.contextmanager
def as_a_new_process():
    """Run upstream's train.py main in this process as it runs in a fresh one: no statistics from an earlier run,
    DataLoader workers that get the dataset and worker init as spawn gives them (see forked_workers_as_spawned),
    and the global flags and random state it sets put back afterwards for the tests that follow."""
    import multiprocessing

    import numpy as np
    import torch
    from torch_utils import training_stats
    from torch_utils.ops import conv2d_gradfix, grid_sample_gradfix
    flags = conv2d_gradfix.enabled, grid_sample_gradfix.enabled
    random_state = torch.get_rng_state(), np.random.get_state()
    set_start_method, start_method = torch.multiprocessing.set_start_method, multiprocessing.get_start_method(True)
    training_stats._counters.clear()
    training_stats._cumulative.clear()
    training_stats._sync_called = False
    torch.multiprocessing.set_start_method = lambda method: set_start_method('fork', force=True)
    try:
        with forked_workers_as_spawned():
            yield
    finally:
        set_start_method(start_method, force=True)
        torch.multiprocessing.set_start_method = set_start_method
        conv2d_gradfix.enabled, grid_sample_gradfix.enabled = flags
        torch.set_rng_state(random_state[0])
        np.random.set_state(random_state[1])


@contextlib.contextmanager
def forked_workers_as_spawned():
    """DataLoader workers forked, not spawned: a spawned worker imports torch again, about 1.8 s of each short run.
    Each forked worker still gets what a spawned one gets, the dataset and its worker init through pickle: its own
    zip handle (a forked copy would share the file offset with the training process) and a check that they pickle.
    Subprocess tests (test_launch.py, test_same_seed_as_upstream.py) run the spawned path itself."""
    import pickle

    from torch.utils.data._utils import worker
    worker_loop = worker._worker_loop

    def as_if_unpickled(*args, **kwargs):
        bound = inspect.signature(worker_loop).bind(*args, **kwargs)
        for name in ('dataset', 'init_fn'):
            bound.arguments[name] = pickle.loads(pickle.dumps(bound.arguments[name]))
        return worker_loop(*bound.args, **bound.kwargs)
    worker._worker_loop = as_if_unpickled
    try:
        yield
    finally:
        worker._worker_loop = worker_loop


def invoke_tool(script, *args):
    """One of upstream's scripts (patched) with these arguments, in this process through its click command (importing
    torch and upstream in a new process costs more than most checks): its exit code and output. An exception it does
    not turn into a message is raised. The exit paths of a real process are tested through run_upstream."""
    import click
    from click.testing import CliRunner
    module = importlib.import_module(Path(script).stem)
    (command,) = [value for value in vars(module).values() if isinstance(value, click.Command)]
    with as_a_new_process():
        result = CliRunner().invoke(command, list(map(str, args)), catch_exceptions=False)
    return result.exit_code, result.output


def invoke_train(*args):
    """upstream's train.py with these arguments, in this process: its exit code and output."""
    return invoke_tool('train.py', *args)


def run_train(*args):
    """invoke_train that raises with the output unless train.py exits 0; returns the output."""
    exit_code, output = invoke_train(*args)
    if exit_code != 0:
        raise AssertionError(f'train.py {" ".join(map(str, args))} exited {exit_code}:\n{output[-3000:]}')
    return output


def train(outdir, data, *extra, grid=4):
    """A short CPU training run; returns its run directory. Its image grids are grid x grid (None: upstream's size):
    upstream's 32 x 32 grids cost as much as a short run's training."""
    grid_args = ['--grid', grid] if grid is not None else []
    run_train('--outdir', outdir, '--data', data, '--cfg', 'cpu', '--metrics', 'none', '--workers', 1, *grid_args, *extra)
    (run_dir,) = [p for p in Path(outdir).iterdir() if p.is_dir()]
    return run_dir


def assert_same(a, b, path='state'):
    """Nested dicts/lists/tuples of tensors, arrays and plain values are equal, bit for bit."""
    import numpy as np
    import torch
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same(a[key], b[key], f'{path}/{key}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for index, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f'{path}[{index}]')
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), path
    else:
        assert a == b, path


def read_stats(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / 'stats.jsonl').read_text().splitlines()]
