"""Shared fixtures: a small dataset the project makes itself, and a runner for upstream's command-line tools."""

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


def train(outdir, data, *extra, grid=4):
    """A short CPU training run; returns its run directory. Its image grids are grid x grid (None: upstream's size):
    upstream's 32 x 32 grids cost as much as a short run's training."""
    grid_args = ['--grid', grid] if grid is not None else []
    run_upstream('train.py', '--outdir', outdir, '--data', data, '--cfg', 'cpu', '--metrics', 'none', '--workers', 1,
                 *grid_args, *extra)
    (run_dir,) = [p for p in Path(outdir).iterdir() if p.is_dir()]
    return run_dir


def read_stats(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / 'stats.jsonl').read_text().splitlines()]
