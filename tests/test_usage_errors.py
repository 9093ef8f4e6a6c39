"""Values that are valid alone but not together, or whose cost can be judged up front, are usage errors of train.py
before anything is written. In process, through click's runner on train.py's main (the exit paths themselves are
tested through real processes in test_reliability.py)."""

import json
import os

import pytest
from click.testing import CliRunner

NESTED = '{"a": ' * 20 + '1' + '}' * 20  # 21 levels
MORE_THAN_THE_CORES = 2 ** os.cpu_count().bit_length()  # a power of two, as --gpus must be

CASES = [
    ('a batch the minibatch-std groups do not divide', ['--batch', '6'],
     "--batch: each process takes 6 images at a time, which D's minibatch standard deviation layer cannot split into "
     "groups of 4"),
    ('low_shot with batch 12', ['--cfg', 'low_shot', '--batch', '12'], 'cannot split into groups of 8'),
    ('a negative seed', ['--seed', '-1'], '--seed must be an integer in [0, 4294967295] with --gpus 1, got -1'),
    ('a seed past NumPy with two processes', ['--seed', str(2 ** 31), '--gpus', '2'],
     '--seed must be an integer in [0, 2147483647] with --gpus 2, got 2147483648'),
    ('a mapping network without layers', ['--G-kwargs', '{"mapping_kwargs": {"num_layers": 0}}'],
     "--G-kwargs: G's mapping output does not depend on any trained parameter (mapping_kwargs {'num_layers': 0}), so "
     'path length regularization (pl_weight 2) cannot differentiate it'),
    ('an InsGen queue larger than the memory', ['--aug', 'ada', '--loss', 'plugins.insgen.Loss', '--loss-kwargs',
                                                '{"real_queue_size": 100000000000, "fake_queue_size": 4}'],
     'real_queue_size=100000000000 would hold 47683.7 GiB of keys (128 float32 each); this machine has'),
    ('enormous JSON', ['--loss-kwargs', json.dumps({'a': 'x' * 70000})],
     '--loss-kwargs: 70009 characters of JSON; options take at most 65536'),
    ('deeply nested JSON', ['--aug-kwargs', NESTED], '--aug-kwargs: JSON nested 21 levels deep; options nest at most 16'),
    ("ANDA's alpha from a pipe whose p is fixed at 1", ['--aug', 'plugins.diffaug.AugmentPipe', '--loss',
                                                         'plugins.anda.Loss', '--loss-kwargs', '{"alpha": "ada"}'],
     "--loss: ANDA alpha='ada' follows the augment pipe's p, which this run fixes at 1 (no --target)"),
    ("APA's p from a pipe whose p is fixed at 1", ['--aug', 'plugins.diffaug.AugmentPipe', '--loss', 'plugins.Loss',
                                                   '--loss-kwargs', '{"apa": {"p": "ada"}}'],
     "--loss: APA p='ada' follows the augment pipe's p, which this run fixes at 1 (no --target)"),
    ('a pipe class at p 0 without a target', ['--aug', 'plugins.diffaug.AugmentPipe', '--p', '0'],
     '--aug: plugins.diffaug.AugmentPipe with p = 0 is not built, so no image would be augmented; give --target, or '
     '--p above 0'),
    ('more processes than the machine has cores', ['--gpus', str(MORE_THAN_THE_CORES)],
     f'--gpus {MORE_THAN_THE_CORES}: this machine has {os.cpu_count()} CPU cores and no CUDA GPU'),
    ('a minibatch-std group of 0', ['--D-kwargs', '{"epilogue_kwargs": {"mbstd_group_size": 0}}'],
     '--D-kwargs: epilogue_kwargs.mbstd_group_size must be an integer >= 1 (or null: the whole batch per process), '
     'got 0'),
    ('--freezed past the layers of D', ['--freezed', '20'],
     '--freezed 20: D has 7 layers in its blocks at 16x16, so 13 of them would freeze nothing; give at most 7'),
    ('JSON nested past the parser', ['--G-kwargs', '[' * 30000 + ']' * 30000], '--G-kwargs: not valid JSON'),
    ('a tick of no length', ['--tick', '0'], '--tick must be a positive finite number of kimg, got 0'),
    ('custom CUDA ops required without CUDA', ['--cuda-ops', 'require'],
     '--cuda-ops require: bias_act cannot run its CUDA kernel: no CUDA GPU'),
]


@pytest.mark.parametrize('args, message', [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_refused_before_anything_is_written(tmp_path, dataset16, args, message):
    import train
    base = [] if '--cfg' in args else ['--cfg', 'cpu']
    result = CliRunner().invoke(train.main, ['--outdir', str(tmp_path / 'runs'), '--data', str(dataset16), *base, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / 'runs').exists()


def test_a_required_network_option_without_annotation_can_be_set(tmp_path, dataset16):
    import train
    result = CliRunner().invoke(train.main, ['--outdir', str(tmp_path / 'runs'), '--data', str(dataset16), '--cfg', 'cpu',
                                             '--G-kwargs', '{"z_dim": 32}', '--dry-run'])
    assert result.exit_code == 0, result.output
    assert '"z_dim": 32' in result.output and not (tmp_path / 'runs').exists()


def test_d_at_16x16_has_the_7_freezable_layers_the_freezed_message_counts():
    from training.networks import Discriminator
    def trainable_in_blocks(freeze):
        D = Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=1024, channel_max=64,
                          block_kwargs={'freeze_layers': freeze})
        return sum(p.numel() for name, p in D.named_parameters() if name.split('.')[0] in ('b16', 'b8'))
    assert trainable_in_blocks(6) > 0 and trainable_in_blocks(7) == 0
