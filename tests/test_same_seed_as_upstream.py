"""A plain run through the whole patch series equals pristine upstream's run with the same seed, bit for bit: the
patches change no random draw and no number of a baseline run (tests/pristine_upstream.py builds the pristine one)."""

import json
import pickle
import subprocess
import sys

import torch

from tests.conftest import read_stats, train
from tests.pristine_upstream import ROOT, build_tree

NOT_COMPARED = ('Timing/', 'Resources/', 'timestamp')  # wall-clock figures


def final_snapshot(run_dir):
    with open(max(run_dir.glob('network-snapshot-*.pkl')), 'rb') as f:
        return pickle.load(f)


def test_a_plain_run_equals_pristine_upstreams_bit_for_bit(tmp_path, dataset16):
    # ADA on (upstream's default), three ticks (0.1 kimg each), an R1 and a path-length pass in each.
    patched = train(tmp_path / 'patched', dataset16, '--kimg', 0.2, '--snap', 1, '--seed', 4, '--aug', 'ada')
    options = json.loads((patched / 'training_options.json').read_text())
    assert options['grid_max'] == 4 and options['ada_target'] == 0.6
    tree = build_tree(tmp_path / 'pristine_tree')
    pristine = tmp_path / 'pristine_run'
    result = subprocess.run([sys.executable, str(ROOT / 'tests' / 'pristine_upstream.py'), str(tree),
                             str(patched / 'training_options.json'), str(pristine)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    ticks, upstream_ticks = read_stats(patched), read_stats(pristine)
    assert len(ticks) == len(upstream_ticks) == 3
    for index, (ours, theirs) in enumerate(zip(ticks, upstream_ticks)):
        compared = {key for key in theirs if not key.startswith(NOT_COMPARED)}
        assert {'Loss/D/loss', 'Loss/r1_penalty', 'Loss/pl_penalty', 'Progress/augment'} <= compared
        assert {key: ours[key] for key in compared} == {key: theirs[key] for key in compared}, f'tick {index}'
    assert ticks[-1]['Progress/augment']['mean'] > 0  # p moved

    # Upstream names every snapshot of this sub-kimg run network-snapshot-000000.pkl: the last one is kept.
    ours, theirs = final_snapshot(patched), final_snapshot(pristine)
    for name in ['G', 'D', 'G_ema', 'augment_pipe']:
        a, b = ours[name].state_dict(), theirs[name].state_dict()
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f'{name}.{key} differs from pristine upstream'
