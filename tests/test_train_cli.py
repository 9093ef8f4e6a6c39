"""train.py's plugin entry points and the options the patches add: help text, each bad --loss/--aug/options case,
--metric-data."""

import json

import pytest

from tests.conftest import invoke_train, run_train


def test_help_lists_the_new_options():
    out = run_train('--help')
    for option in ['--data-class CLASS', '--loss CLASS', '--loss-kwargs JSON', '--aug MODE|CLASS', '--aug-kwargs JSON', 'cpu']:
        assert option in out


BAD_CASES = [
    (['--loss', 'plugins.nosuchplugin.Loss'], "--loss: cannot import module 'plugins.nosuchplugin' for 'plugins.nosuchplugin.Loss': ModuleNotFoundError"),
    (['--loss', 'training.loss.NoSuchLoss'], "--loss: module 'training.loss' has no class 'NoSuchLoss'"),
    (['--loss', 'StyleGAN2Loss'], "is not a dotted class path"),
    (['--loss-kwargs', '{"no_such_option": 1}'], "StyleGAN2Loss has no option 'no_such_option'; valid options: style_mixing_prob, r1_gamma, pl_batch_shrink, pl_decay, pl_weight"),
    (['--loss-kwargs', '{"pl_weight": "high"}'], "option 'pl_weight' of StyleGAN2Loss must be of type float, got 'high'"),
    (['--loss-kwargs', '{pl_weight: 1}'], "--loss-kwargs: not valid JSON"),
    (['--loss-kwargs', '[1, 2]'], "--loss-kwargs: expected a JSON object"),
    (['--aug', 'diffaugment'], "--aug=diffaugment not supported: use noaug, ada, fixed or a dotted augment pipe class"),
    (['--aug', 'training.augment.NoSuchPipe'], "--aug: module 'training.augment' has no class 'NoSuchPipe'"),
    (['--aug', 'torch.nn.Identity'], "--aug: torch.nn.Identity has no tensor attribute p"),
    (['--aug', 'ada', '--aug-kwargs', '{"warp": 1}'], "AugmentPipe has no option 'warp'; valid options: xflip, rotate90"),
    (['--aug', 'noaug', '--aug-kwargs', '{"xflip": 1}'], "--aug-kwargs cannot be specified with --aug=noaug"),
    (['--aug', 'training.augment.AugmentPipe', '--augpipe', 'bgc'], "--augpipe cannot be specified with --aug=training.augment.AugmentPipe"),
    (['--data-class', 'training.dataset.NoSuchDataset'], "--data-class: module 'training.dataset' has no class 'NoSuchDataset'"),
    (['--data-class', 'training.loss.StyleGAN2Loss'], "--data-class: 'training.loss.StyleGAN2Loss' is not a subclass of training.dataset.Dataset"),
    (['--grid', '0'], '--grid must be at least 1, got 0'),
    (['--kimg', 'inf'], '--kimg must be a positive finite number, got inf'),
    (['--kimg', 'nan'], '--kimg must be a positive finite number, got nan'),
    (['--loss', 'torch.nn.Linear'], "--loss: 'torch.nn.Linear' is not a loss (not a subclass of training.loss.Loss)"),
    (['--loss', 'plugins.diffaug.AugmentPipe'], "--loss: 'plugins.diffaug.AugmentPipe' is not a loss"),
    (['--aug', 'plugins.atopk.Loss'], "--aug: 'plugins.atopk.Loss' is not an augment pipe (not a torch.nn.Module)"),
    (['--cfg', 'cpu', '--loss', 'plugins.atopk.Loss', '--loss-kwargs', '{"mode": "fixed", "k": 5}'],
     '--loss: k=5 exceeds the batch size 4; k must lie in [1, 4]'),
    (['--loss', 'plugins.diggan.Loss', '--loss-kwargs', '{"weight": 1e400}'], 'weight must be a finite real number, got inf'),
    (['--loss', 'plugins.Loss', '--loss-kwargs', '{"atopk": {"speed_kimg": Infinity}}'],
     'atopk.speed_kimg must be a finite real number, got inf'),
]


@pytest.mark.parametrize('args,message', BAD_CASES, ids=[' '.join(a) for a, _ in BAD_CASES])
def test_bad_input_is_a_usage_error_that_writes_nothing(tmp_path, dataset16, args, message):
    exit_code, output = invoke_train('--outdir', tmp_path / 'runs', '--data', dataset16, *args)
    assert exit_code == 2, output
    assert message in output
    assert not (tmp_path / 'runs').exists()


def test_plugin_class_and_options_name_the_run_and_reach_the_options(tmp_path, dataset16):
    out = run_train('--outdir', tmp_path, '--data', dataset16, '--dry-run',
                    '--loss', 'training.loss.StyleGAN2Loss', '--loss-kwargs', '{"pl_weight": 0.5}',
                    '--aug', 'training.augment.AugmentPipe', '--aug-kwargs', '{"xflip": 1, "rotate90": 1}')
    assert 'StyleGAN2Loss-pl_weight=0.5-augment-rotate90=1-xflip=1' in out
    options = json.loads(out[out.index('{'):out.index('\n}\n') + 2])
    assert options['loss_kwargs']['class_name'] == 'training.loss.StyleGAN2Loss'
    assert options['loss_kwargs']['pl_weight'] == 0.5
    assert options['augment_kwargs'] == {'class_name': 'training.augment.AugmentPipe', 'xflip': 1, 'rotate90': 1}
    assert options['augment_p'] == 1.0 and 'ada_target' not in options  # a custom pipe is always on by default


def test_custom_pipe_p_is_fixed_by_p_and_adapted_with_target(tmp_path, dataset16):
    def options(*args):
        out = run_train('--outdir', tmp_path, '--data', dataset16, '--dry-run', '--aug', 'training.augment.AugmentPipe',
                        *args)
        return json.loads(out[out.index('{'):out.index('\n}\n') + 2])
    assert options('--p', '0.3')['augment_p'] == 0.3 and 'ada_target' not in options('--p', '0.3')
    assert options('--target', '0.7')['ada_target'] == 0.7


def test_data_class_selects_the_dataset_and_is_recorded(tmp_path):
    out = run_train('--outdir', tmp_path, '--data', 'synth:primitives-ps?n=8&res=16', '--dry-run',
                    '--data-class', 'plugins.primitives.dataset.SyntheticDataset', '--cfg', 'cpu')
    options = json.loads(out[out.index('{'):out.index('\n}\n') + 2])
    assert options['training_set_kwargs']['class_name'] == 'plugins.primitives.dataset.SyntheticDataset'
    assert options['training_set_kwargs']['resolution'] == 16 and options['training_set_kwargs']['max_size'] == 8


def dry_run_options(tmp_path, data, *args):
    out = run_train('--outdir', tmp_path, '--data', data, '--dry-run', *args)
    return json.loads(out[out.index('{'):out.index('\n}\n') + 2])


@pytest.mark.parametrize('cfg, batch, mbstd, kimg', [('low_shot', 4, 8, 2000), ('low_shot16', 16, 4, 300)])
def test_low_shot_configs_have_the_released_values(tmp_path, dataset16, cfg, batch, mbstd, kimg):
    options = dry_run_options(tmp_path, dataset16, '--cfg', cfg)
    assert (options['batch_size'], options['batch_gpu'], options['total_kimg']) == (batch, batch, kimg)
    assert options['D_kwargs']['epilogue_kwargs']['mbstd_group_size'] == mbstd
    assert options['G_kwargs']['synthesis_kwargs']['channel_base'] == options['D_kwargs']['channel_base'] == 32768
    assert options['G_kwargs']['mapping_kwargs']['num_layers'] == 2
    assert options['G_opt_kwargs']['lr'] == options['D_opt_kwargs']['lr'] == 0.002
    assert options['loss_kwargs']['r1_gamma'] == 10
    assert (options['ema_kimg'], options['ema_rampup']) == (10, None)
    assert options['network_snapshot_ticks'] == options['image_snapshot_ticks'] == 10
    assert dry_run_options(tmp_path, dataset16, '--cfg', cfg, '--snap', '3')['network_snapshot_ticks'] == 3
    two = dry_run_options(tmp_path, dataset16, '--cfg', cfg, '--gpus', '2')
    assert (two['batch_size'], two['batch_gpu'], two['num_gpus']) == (batch, batch // 2, 2)


def test_low_shot_batch_that_the_processes_cannot_share_is_refused(tmp_path, dataset16):
    exit_code, output = invoke_train('--outdir', tmp_path / 'runs', '--data', dataset16, '--cfg', 'low_shot', '--gpus', '8')
    assert exit_code == 2
    assert '--cfg=low_shot has batch 4, which 8 processes cannot share' in output
    assert not (tmp_path / 'runs').exists()
    eight = dry_run_options(tmp_path, dataset16, '--cfg', 'low_shot', '--gpus', '8', '--batch', '8')  # as it advises
    assert (eight['batch_size'], eight['batch_gpu']) == (8, 1)


@pytest.mark.parametrize('option', [['--mirror', '1'], ['--subset', '100']])
def test_an_endless_stream_refuses_mirror_and_subset_up_front(tmp_path, option):
    exit_code, output = invoke_train('--outdir', tmp_path / 'runs', '--data', 'synth:primitives?res=16',
                                     '--data-class', 'plugins.primitives.dataset.SyntheticDataset', '--cfg', 'cpu', *option)
    assert exit_code == 2 and 'is an endless stream of fresh images: --mirror and --subset do not apply' in output, output
    assert not (tmp_path / 'runs').exists()


@pytest.mark.parametrize('make_outdir, message', [
    (lambda tmp: tmp / 'a-file', 'is not a directory'),
    (lambda tmp: tmp / 'a-file' / 'runs', 'is not a directory'),
    (lambda tmp: '/proc/no-such-dir/runs', 'cannot create /proc/no-such-dir/runs/00000-'),
])
def test_an_outdir_that_cannot_hold_runs_is_a_usage_error(tmp_path, dataset16, make_outdir, message):
    (tmp_path / 'a-file').write_text('keep me')
    exit_code, output = invoke_train('--outdir', make_outdir(tmp_path), '--data', dataset16, '--cfg', 'cpu',
                                     '--kimg', '0.004', '--metrics', 'none')
    assert exit_code == 2 and message in output, output
    assert (tmp_path / 'a-file').read_text() == 'keep me' and sorted(p.name for p in tmp_path.iterdir()) == ['a-file']


def test_metric_data_is_the_reference_set_of_the_training_metrics(tmp_path, dataset16, monkeypatch):
    """--metric-data (patch 0032): the metrics computed during training read that set instead of the training set;
    a set of another shape, or the option without metrics, is refused before anything is written."""
    import dnnlib
    from metrics import metric_main

    from plugins.primitives.writer import write_dataset
    from tests.conftest import train
    other, larger = tmp_path / 'pink24.zip', tmp_path / 'pink32px.zip'
    write_dataset(str(other), synth='pinknoise', count=24, resolution=16, seed=0, workers=1, progress=False)
    write_dataset(str(larger), synth='pinknoise', count=4, resolution=32, seed=0, workers=1, progress=False)

    def reference_size(opts):  # a stand-in for the FID: the number of images of the set it compares against
        return dict(fid50k_full=float(len(dnnlib.util.construct_class_by_name(**opts.dataset_kwargs))))
    monkeypatch.setitem(metric_main._metric_dict, 'fid50k_full', reference_size)
    for name, extra, images in [('other', ['--metric-data', other], 24.0), ('own', [], 16.0)]:
        run_dir = train(tmp_path / name, dataset16, '--kimg', 0.004, '--metrics', 'fid50k_full', *extra)
        rows = [json.loads(line) for line in (run_dir / 'metric-fid50k_full.jsonl').read_text().splitlines()]
        assert [row['results']['fid50k_full'] for row in rows] == [images] and rows[0]['protocol'] == {}
        options = json.loads((run_dir / 'training_options.json').read_text())
        assert options.get('metric_dataset_kwargs', {}).get('path') == (str(other) if extra else None)
    for extra, message in [(['--metric-data', larger], f'--metric-data: {larger} holds 32x32 images with 3 channels, '
                                                       'the training set 16x16 with 3'),
                           (['--metric-data', other, '--metrics', 'none'], '--metric-data sets the reference set of the '
                                                                          'metrics, but --metrics is none'),
                           (['--metric-data', tmp_path / 'none.zip'], "--metric-data: [Errno 2] No such file or "
                                                                      f"directory: '{tmp_path / 'none.zip'}'")]:
        exit_code, output = invoke_train('--outdir', tmp_path / 'runs', '--data', dataset16, '--cfg', 'cpu', *extra)
        assert exit_code == 2 and message in output, output
        assert not (tmp_path / 'runs').exists()
