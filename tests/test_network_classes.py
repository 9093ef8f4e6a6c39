"""--G-class/--D-class and their kwargs (patch 0009): a plugin network trains through train.py, is recorded, rides in
the snapshot that generate.py and --resume load, and bad classes or options are refused before anything is
written."""

import json
import pickle

import pytest

from tests.conftest import invoke_train, run_train, run_upstream, train

SCALED = ['--D-class', 'tests.toy_networks.ScaledDiscriminator', '--D-kwargs', '{"logit_scale": 0.5}']


def test_a_plugin_discriminator_trains_is_recorded_and_loads_back(tmp_path, dataset16):
    run_dir = train(tmp_path / 'runs', dataset16, '--kimg', 0.008, '--aug', 'noaug', *SCALED)
    assert '-D=ScaledDiscriminator-logit_scale=0.5-' in run_dir.name
    options = json.loads((run_dir / 'training_options.json').read_text())['D_kwargs']
    assert options['class_name'] == 'tests.toy_networks.ScaledDiscriminator' and options['logit_scale'] == 0.5
    assert options['epilogue_kwargs']['mbstd_group_size'] is not None  # the base config's settings kept
    snapshot = max(run_dir.glob('network-snapshot-*.pkl'))
    with open(snapshot, 'rb') as f:
        D = pickle.load(f)['D']
    assert type(D).__name__ == 'ScaledDiscriminator' and D.logit_scale == 0.5
    run_upstream('generate.py', '--network', snapshot, '--seeds', '0', '--outdir', tmp_path / 'images')
    resumed = train(tmp_path / 'resumed', dataset16, '--kimg', 0.016, '--aug', 'noaug', '--resume', snapshot, *SCALED)
    assert 'Training state: restored (kimg 0.008' in (resumed / 'log.txt').read_text()


@pytest.mark.parametrize('args, message', [
    (['--D-class', 'tests.toy_networks.PlainDiscriminator'],
     '--D-class: PlainDiscriminator must be decorated with @persistence.persistent_class'),
    (['--D-class', 'plugins.loss.Loss'], '--D-class: Loss is not a network (not a subclass of torch.nn.Module)'),
    (['--G-class', 'plugins.nosuch.Generator'], "--G-class: cannot import module 'plugins.nosuch'"),
    (['--D-kwargs', '{"logit_scale": 1}'], "--D-kwargs: Discriminator has no option 'logit_scale'; valid options: "
                                           "architecture"),
    (['--D-class', 'tests.toy_networks.ScaledDiscriminator', '--D-kwargs', '{"logit_scale": "big"}'],
     "--D-kwargs: option 'logit_scale' of ScaledDiscriminator must be of type float, got 'big'"),
    (['--D-class', 'tests.toy_networks.ScaledDiscriminator', '--D-kwargs', '{"scale": 1}'],
     "--D-class: tests.toy_networks.ScaledDiscriminator cannot be built or run with the base config and --D-kwargs: "
     "TypeError"),
    (['--G-kwargs', '[1]'], '--G-kwargs: expected a JSON object'),
])
def test_bad_network_classes_and_options_are_refused_before_writing(tmp_path, dataset16, args, message):
    exit_code, output = invoke_train('--outdir', tmp_path / 'runs', '--data', dataset16, '--cfg', 'cpu', *args)
    assert exit_code == 2 and message in output, output
    assert not (tmp_path / 'runs').exists()


def test_network_options_merge_into_the_base_config(tmp_path, dataset16):
    output = run_train('--outdir', tmp_path / 'runs', '--data', dataset16, '--cfg', 'cpu', '--dry-run',
                       '--D-kwargs', '{"epilogue_kwargs": {"mbstd_num_channels": 2}}', '--fp32', 'true')
    options = json.loads(output[output.index('{'):output.rindex('}') + 1])['D_kwargs']
    assert options['epilogue_kwargs'] == {'mbstd_group_size': 4, 'mbstd_num_channels': 2}  # the cfg's group size kept
