"""Diffusion-GAN (plugins.diffusion): the schedules, T's trajectory with p, the timestep table and q(x_t | x_0)
against independent computations, the timestep-conditioned D against upstream's D with t as a label, and
train.py runs. The released functions (get_beta_schedule, q_sample, update_T's T, the D) gave the same numbers in
a scratch comparison (docs/methods.md, "Diffusion-GAN"); exact resume and two ranks are in test_reliability.py."""

import json
import math

import numpy as np
import pytest
import torch

from tests.conftest import invoke_train, read_stats, run_train, run_upstream, train
from tests.tiny import one_thread  # noqa: F401 (autouse fixture)

DIFFUSION = ['--aug', 'plugins.diffusion.AugmentPipe', '--target', '0.6', '--D-class', 'plugins.diffusion.Discriminator']


def test_beta_schedules():
    from plugins.diffusion.core import beta_schedule
    np.testing.assert_allclose(beta_schedule('linear', 3), [1e-4, 0.01005, 0.02])
    np.testing.assert_allclose(beta_schedule('quad', 2), [1e-4, 0.02])
    np.testing.assert_allclose(beta_schedule('const', 2), [0.02, 0.02])
    np.testing.assert_allclose(beta_schedule('jsd', 4), [1 / 4, 1 / 3, 1 / 2, 1])
    # cosine: alpha_bar = f(x_t) / f(0), f(x) = cos^2((x / (T + 1) + s) / (1 + s) pi / 2), x on T + 1 points of
    # [0, T + 1] as released (linspace(0, steps, steps) with steps = T + 1)
    cosine = beta_schedule('cosine', 100)
    f = np.cos((np.linspace(0, 101, 101) / 101 + 0.008) / 1.008 * np.pi / 2) ** 2
    np.testing.assert_allclose(np.cumprod(1 - cosine)[:90], (f[1:] / f[0])[:90], rtol=1e-9)
    with pytest.raises(ValueError, match="beta_schedule must be one of 'linear'|linear, quad"):
        beta_schedule('exp', 10)


def test_an_inner_augmentation_cap_without_an_inner_augmentation_is_refused():
    from plugins.diffusion import AugmentPipe
    with pytest.raises(ValueError, match="ada_maxp=0.5 caps the inner augmentation's p, and inner is 'none'"):
        AugmentPipe(ada_maxp=0.5)
    assert AugmentPipe(inner='ada').ada_maxp == 0.25 and AugmentPipe(inner='ada', ada_maxp=0).ada_maxp == 0


def test_t_follows_p_through_adas_adjustments():
    from plugins.diffusion import AugmentPipe
    from torch_utils import training_stats
    pipe = AugmentPipe(t_min=10, t_max=1000)
    collector = training_stats.Collector(regex='Diffusion/T', keep_previous=False)
    trajectory = []
    for p in [0.0, 0.0005, 0.25, 0.5004, 1.3, 0.9, 0.0]:  # as ADA's steps would set it
        pipe.p.fill_(p)
        pipe.ada_adjusted()
        trajectory.append(pipe.steps)
    assert trajectory == [10, 10, 258, 505, 1000, 901, 10]
    assert float(pipe.p) == 0.0 and int(pipe.adjustments) == 7
    collector.update()
    assert collector.num('Diffusion/T') == 7 and collector.mean('Diffusion/T') == pytest.approx(np.mean(trajectory))


def test_seeded_timestep_table_is_half_zeros_half_priority_draws_and_a_function_of_the_state():
    from plugins.diffusion import AugmentPipe
    counts = np.zeros(11)
    pipe = AugmentPipe(t_min=10, t_max=10, draws='seeded')
    for adjustments in range(400):
        pipe.adjustments.fill_(adjustments)
        pipe._draw_table(10)
        table = pipe.table.numpy()
        assert (table[32:] == 0).all() and ((table[:32] >= 1) & (table[:32] <= 10)).all()
        counts += np.bincount(table[:32], minlength=11)
    expected = 400 * 32 * np.arange(10) / 45  # P(t) = (t - 1) / sum: t = 1 never
    assert counts[1] == 0 and np.all(np.abs(counts[1:] - expected) < 5 * np.sqrt(expected + 1))
    again = AugmentPipe(t_min=10, t_max=10, draws='seeded')
    again.adjustments.fill_(399)  # another rank at the same adjustment
    again._draw_table(10)
    assert torch.equal(again.table, pipe.table)


def test_released_draws_take_the_table_and_each_images_t_from_numpys_global_generator():
    """As released: a table of 32 draws np.random.choice(1..T, p = (t - 1) / sum) and 32 zeros when the pipe is
    built, and each image's t = np.random.choice(table); a new table at each adjustment."""
    from plugins.diffusion import AugmentPipe
    np.random.seed(7)
    pipe = AugmentPipe(t_min=20, t_max=100)
    torch.manual_seed(0)
    _, t = pipe(torch.zeros([6, 3, 4, 4]))
    pipe.p.fill_(0.5)
    pipe.ada_adjusted()
    np.random.seed(7)
    expected = np.zeros(64, dtype=np.int64)
    expected[:32] = np.random.choice(np.arange(1, 21), size=32, p=np.arange(20) / np.arange(20).sum())
    np.testing.assert_array_equal(t.flatten().numpy(), np.random.choice(expected, size=6))
    expected[:32] = np.random.choice(np.arange(1, 61), size=32, p=np.arange(60) / np.arange(60).sum())
    np.testing.assert_array_equal(pipe.table.numpy(), expected)
    assert pipe.p.dtype == torch.float64 and pipe.tick_stats() == {'Progress/augment_T': 60.0}


def test_q_sample_scales_the_image_and_the_noise():
    from plugins.diffusion.core import beta_schedule, q_sample, signal_and_noise_scales
    betas = beta_schedule('linear', 50)
    signal, noise = signal_and_noise_scales(betas)
    alpha_bar = np.prod(1 - betas)
    x0 = torch.full([2000, 1, 4, 4], 0.5)
    torch.manual_seed(0)
    x_t = q_sample(x0, torch.full([2000], 50), signal, noise, noise_std=0.05)
    assert x_t.mean().item() == pytest.approx(math.sqrt(alpha_bar) * 0.5, abs=1e-3)
    assert x_t.std().item() == pytest.approx(math.sqrt(1 - alpha_bar) * 0.05, rel=0.02)
    assert torch.equal(q_sample(x0, torch.zeros([2000], dtype=torch.long), signal, noise, 0.05), x0)  # t = 0


def test_discriminator_is_upstreams_with_the_timestep_as_a_label():
    from training.networks import Discriminator as Upstream

    from plugins.diffusion import Discriminator
    common = dict(img_resolution=8, img_channels=3, channel_base=128, channel_max=16)
    torch.manual_seed(0)
    ours = Discriminator(c_dim=0, **common)
    upstream = Upstream(c_dim=1, **common)
    upstream.load_state_dict(ours.state_dict())
    images, t = torch.randn([4, 3, 8, 8]), torch.tensor([[0], [3], [7], [500]])
    torch.testing.assert_close(ours((images, t), torch.zeros([4, 0])), upstream(images, t.float()), rtol=0, atol=0)
    torch.testing.assert_close(ours(images, torch.zeros([4, 0])), upstream(images, torch.zeros([4, 1])), rtol=0, atol=0)


def test_train_py_runs_diffusion_gan_with_anda_and_the_snapshot_loads(tmp_path, dataset16):
    fixed = ['--aug', 'plugins.diffusion.AugmentPipe', '--p', '0.5', '--D-class', 'plugins.diffusion.Discriminator']
    run_dir = train(tmp_path / 'runs', dataset16, '--kimg', 0.032, *fixed, '--loss', 'plugins.Loss',
                    '--loss-kwargs', json.dumps({'anda': {'alpha': 'ada'}}))
    stats = read_stats(run_dir)[-1]
    assert stats['Diffusion/T']['mean'] == 10 + round(0.5 * 990)  # T follows the fixed p
    assert stats['ANDA/alpha']['mean'] == 0.5  # ANDA's alpha is the diffusion pipe's p
    assert json.loads((run_dir / 'training_options.json').read_text())['augment_kwargs']['random_seed'] == 0
    snapshot = max(run_dir.glob('network-snapshot-*.pkl'))
    run_upstream('generate.py', '--network', snapshot, '--seeds', '0', '--outdir', tmp_path / 'images')
    adaptive = run_train('--outdir', tmp_path / 'dry', '--data', dataset16, '--cfg', 'cpu', *DIFFUSION, '--seed', 3,
                         '--dry-run')
    assert '"ada_kimg": 100' in adaptive  # the released speed, from the pipe class
    assert '"random_seed": 3' in adaptive.split('"augment_kwargs"')[1]  # for draws 'seeded'


@pytest.mark.parametrize('args, message', [
    (['--aug', 'plugins.diffusion.AugmentPipe', '--target', '0.6'],
     '--aug: plugins.diffusion.AugmentPipe gives D a timestep with every image; use a --D-class that takes them'),
    (['--aug', 'ada', '--D-class', 'plugins.diffusion.Discriminator'],
     '--D-class: plugins.diffusion.Discriminator is conditioned on diffusion timesteps; use an --aug class'),
    ([*DIFFUSION, '--aug-kwargs', '{"t_min": 20, "t_max": 10}'], 't_min and t_max must be integers with 1 <='),
    ([*DIFFUSION, '--aug-kwargs', '{"inner": "bgc"}'], "inner must be one of 'none', 'ada', 'diffaug'; got 'bgc'"),
    (['--aug', 'noaug', '--ada-kimg', '100'], '--ada-kimg sets how fast ADA adjusts p: it needs --aug ada'),
    ([*DIFFUSION, '--ada-kimg', '0'], '--ada-kimg must be a positive number, got 0.0'),
    (['--aug', 'plugins.diffusion.AugmentPipe', '--p', '0', '--D-class', 'plugins.diffusion.Discriminator'],
     'with p = 0 is not built, so D would get no timesteps'),
    ([*DIFFUSION, '--aug-kwargs', '{"random_seed": 1}'], "AugmentPipe has no option 'random_seed'"),
    ([*DIFFUSION, '--aug-kwargs', '{"seed": 1}'], "seed=1 applies only to draws 'seeded'"),
])
def test_bad_combinations_are_refused_before_writing(tmp_path, dataset16, args, message):
    exit_code, output = invoke_train('--outdir', tmp_path / 'runs', '--data', dataset16, '--cfg', 'cpu', *args)
    assert exit_code == 2 and message in output, output
    assert not (tmp_path / 'runs').exists()
