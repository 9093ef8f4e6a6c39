"""Tests of plugins.diffaug.AugmentPipe (DiffAugment, Zhao et al. 2020, as upstream's augment pipe): gradients,
the meaning of p, options, pickling, and a real train.py run whose snapshot holds the pipe. The ops themselves are
tested in test_diffaug_ops.py."""

import json
import pickle
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch

from plugins.diffaug import AugmentPipe
from plugins.diffaug.ops import POLICY_OPS
from tests.conftest import ROOT, invoke_train, read_stats, run_upstream, train


def pipe_with(p=1.0, **options):
    pipe = AugmentPipe(**options)
    pipe.p.copy_(torch.as_tensor(p))
    return pipe


def seeded_call(pipe, seed):
    """pipe as a deterministic function of its input (the same draws at every call), for gradcheck."""
    def call(x):
        torch.manual_seed(seed)
        return pipe(x)
    return call


@pytest.mark.parametrize('p', [1.0, 0.5])
def test_gradients_through_the_pipe_match_finite_differences(p):
    # First order: G's gradient through the pipe; second order: R1's penalty backpropagated through its input
    # gradient, as upstream's Dreg phase does.
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    call = seeded_call(pipe_with(p), seed=1)
    assert torch.autograd.gradcheck(call, (x,))
    assert torch.autograd.gradgradcheck(lambda x: call(x).square(), (x,))


def constant_batch(count, value=0.3):
    return torch.full((count, 3, 8, 8), value)


def test_p_is_the_probability_of_each_entry_independently_per_image():
    # On a grey image `color` is a pure brightness shift (never exactly zero) and `cutout` writes exact zeros,
    # so each image shows which entries were drawn.
    x = constant_batch(4000)
    torch.manual_seed(3)
    out = pipe_with(0.4, policy='color,cutout')(x)
    cut = (out == 0).flatten(1).any(dim=1)
    colored = ((out != 0) & (out != 0.3)).flatten(1).any(dim=1)
    assert abs(colored.float().mean() - 0.4) < 0.03
    assert abs(cut.float().mean() - 0.4) < 0.03
    assert abs((colored & cut).float().mean() - 0.16) < 0.03
    untouched = ~colored & ~cut
    assert torch.equal(out[untouched], x[untouched])


def test_p_one_augments_every_image_and_p_zero_none():
    x = constant_batch(500)
    out = pipe_with(1.0, policy='color,cutout')(x)
    assert (out == 0).flatten(1).any(dim=1).all()
    assert ((out != 0) & (out != 0.3)).flatten(1).any(dim=1).all()
    assert torch.equal(pipe_with(0.0)(x), x)


def numbered_batch(count, size=16):
    """Positive single-channel images, so that zeros mark vacated or cut-out pixels."""
    return torch.arange(1.0, size * size + 1).reshape(1, 1, size, size).repeat(count, 1, 1, 1)


@pytest.mark.parametrize('ratio, largest_shift', [(0.125, 2), (0.25, 4)])
def test_translation_ratio_reaches_the_op(ratio, largest_shift):
    torch.manual_seed(4)
    out = pipe_with(policy='translation', translation_ratio=ratio)(numbered_batch(512))
    vacated_rows = (out[:, 0] == 0).all(dim=2).sum(dim=1)
    vacated_cols = (out[:, 0] == 0).all(dim=1).sum(dim=1)
    assert vacated_rows.max() == vacated_cols.max() == largest_shift


@pytest.mark.parametrize('ratio, side', [(0.5, 8), (0.25, 4)])
def test_cutout_ratio_reaches_the_op(ratio, side):
    torch.manual_seed(5)
    out = pipe_with(policy='cutout', cutout_ratio=ratio)(numbered_batch(512))
    zeroed = (out[:, 0] == 0).flatten(1).sum(dim=1)
    assert zeroed.max() == side * side


BAD_OPTIONS = [
    ({'policy': 'color,zoom,flip'}, "policy 'color,zoom,flip' has unknown entries ['zoom', 'flip']"),
    ({'policy': ' , '}, "policy ' , ' has no entries"),
    ({'policy': 3}, 'policy must be of type str'),
    ({'translation_ratio': 1.5}, 'translation_ratio must lie in [0, 1], got 1.5'),
    ({'cutout_ratio': -0.1}, 'cutout_ratio must lie in [0, 1], got -0.1'),
    ({'policy': 'color,cutout', 'translation_ratio': 0.25},
     "translation_ratio=0.25 applies only to a policy with 'translation'; policy is 'color,cutout'"),
]


@pytest.mark.parametrize('options, message', BAD_OPTIONS, ids=[str(o) for o, _ in BAD_OPTIONS])
def test_bad_options_are_refused_naming_the_value_and_the_valid_ones(options, message):
    for make in (AugmentPipe, AugmentPipe.check_options):
        with pytest.raises(ValueError) as error:
            make(**options)
        assert message in str(error.value)
        if 'policy' in options and isinstance(options['policy'], str) and 'ratio' not in message:
            assert 'valid entries, comma-separated: ' + ', '.join(POLICY_OPS) in str(error.value)


def test_train_py_turns_a_bad_policy_into_a_usage_error(tmp_path, dataset16):
    exit_code, output = invoke_train('--outdir', tmp_path / 'runs', '--data', dataset16, '--cfg', 'cpu', '--aug',
                                     'plugins.diffaug.AugmentPipe', '--aug-kwargs', '{"policy": "color,zoom"}')
    assert exit_code == 2
    assert "--aug-kwargs: policy 'color,zoom' has unknown entries ['zoom']" in output
    assert not (tmp_path / 'runs').exists()


def test_pickling_keeps_options_and_p_and_carries_the_source():
    from torch_utils import persistence
    pipe = pipe_with(0.7, policy='translation, cutout', cutout_ratio=0.25)
    data = pickle.dumps(pipe)
    assert b'class AugmentPipe(torch.nn.Module)' in data  # upstream's persistence stores the module's source
    copy = pickle.loads(data)
    assert persistence.is_persistent(copy)
    assert copy.policy == ('translation', 'cutout') and copy.ratios == pipe.ratios
    assert copy.p.item() == pytest.approx(0.7) and 'p' in dict(copy.named_buffers())
    x = numbered_batch(64)
    assert torch.equal(seeded_call(copy, 6)(x), seeded_call(pipe, 6)(x))


def test_importing_the_package_does_not_import_upstream():
    code = 'import sys, plugins.diffaug; assert "torch_utils" not in sys.modules'
    subprocess.run([sys.executable, '-c', code], check=True, cwd=ROOT)


# ----------------------------------------------------------------------------------------------------------------
# train.py.

@pytest.fixture(scope='module')
def diffaug_run(tmp_path_factory, dataset16):
    options = '{"policy": "translation,cutout", "cutout_ratio": 0.25}'
    return train(tmp_path_factory.mktemp('diffaug'), dataset16, '--kimg', 0.02, '--seed', 7,
                 '--aug', 'plugins.diffaug.AugmentPipe', '--aug-kwargs', options)


def test_train_py_runs_always_on_and_reports_p(diffaug_run):
    assert diffaug_run.name.endswith('-diffaug-cutout_ratio=0.25-policy=translation,cutout')
    options = json.loads((diffaug_run / 'training_options.json').read_text())
    assert options['augment_kwargs'] == {'class_name': 'plugins.diffaug.AugmentPipe', 'policy': 'translation,cutout',
                                         'cutout_ratio': 0.25}
    assert options['augment_p'] == 1.0
    stats = read_stats(diffaug_run)
    assert all(row['Progress/augment']['mean'] == 1.0 for row in stats)
    assert any('Loss/r1_penalty' in row for row in stats)  # R1's double backward went through the pipe


def test_snapshot_holds_the_pipe_and_reloads(diffaug_run, tmp_path):
    import legacy
    snapshot = max(diffaug_run.glob('network-snapshot-*.pkl'))
    with open(snapshot, 'rb') as f:
        pipe = legacy.load_network_pkl(f)['augment_pipe']
    assert type(pipe).__name__ == 'AugmentPipe' and not pipe.training
    assert pipe.policy == ('translation', 'cutout') and pipe.ratios['cutout_ratio'] == 0.25 and pipe.p.item() == 1.0
    assert (pipe(numbered_batch(8)) == 0).any()
    run_upstream('generate.py', '--network', snapshot, '--seeds', '0-1', '--outdir', tmp_path)
    images = [np.asarray(PIL.Image.open(p)) for p in sorted(tmp_path.glob('seed*.png'))]
    assert len(images) == 2 and images[0].shape == (16, 16, 3)
