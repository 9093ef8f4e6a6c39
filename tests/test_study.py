"""The CPU study (study/cpu.py, probes.py, report.py): its plan and time compression, a tiny end-to-end
invocation on synthetic data that records whole runs and skips them when run again, the jigsaw detector, and the
report's paired comparison and convergence figure against hand computations."""

import hashlib
import json
import math
import subprocess
import sys

import click
import pytest
import torch
from click.testing import CliRunner

from tests.conftest import ROOT


def study(*args, check=True):
    return subprocess.run([sys.executable, '-m', 'study.cpu', *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, check=check)


def study_output(*args):
    """The study's output with these arguments, run in this process (a new one would import torch again; its
    training runs are child processes either way); it must succeed."""
    from study import cpu
    result = CliRunner().invoke(cpu.main, list(map(str, args)), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope='module')
def tiny_zip(tmp_path_factory):
    path = tmp_path_factory.mktemp('study') / 'tiny.zip'
    subprocess.run([sys.executable, '-m', 'plugins.primitives', '--outdir', str(path), '--count', '16', '--resolution',
                    '16', '--synth', 'primitives-ps', '--seed', '0', '--workers', '1'], cwd=ROOT, check=True,
                   capture_output=True)
    return path


def test_plan_compresses_every_adaptive_speed_to_a_quarter_of_the_run(tmp_path, tiny_zip):
    output = study_output('--outdir', tmp_path / 'out', '--results', tmp_path / 'results', '--kimg', 40, '--seeds',
                          '0,1', '--data', tiny_zip, '--reference', tiny_zip, '--dry-run')
    commands = [line for line in output.splitlines() if 'train.py' in line]
    assert len(commands) == 2 * 9 + 1  # nine configurations, two seeds, one pretraining
    by_run = {line.split('--outdir ')[1].split()[0].rpartition('/')[2]: line for line in commands}
    assert "--data 'synth:primitives-ps?res=16&seed=0'" in by_run['pretrain-seed0']  # two workers: in either order
    assert '--aug ada --ada-kimg 10' in by_run['ada-seed0']
    assert '--aug ada --ada-kimg 10 --loss plugins.anda.Loss' in by_run['anda-seed1']
    assert '"speed_kimg": 10.0' in by_run['atopk-seed0'] and '"mode": "worst"' in by_run['worstk-seed0']
    assert '"mode": "linear"' in by_run['linear-topk-seed0'] and '--aug noaug' in by_run['stylegan2-seed1']
    assert '--resume PRETRAINED' in by_run['finetune-seed0'] and '--aug plugins.diffaug.AugmentPipe' in \
        by_run['finetune-seed0']
    metrics = [line for line in output.splitlines() if 'calc_metrics.py' in line]
    assert sum('stylegan2-seed0' in line for line in metrics) == 2  # half-way and the end
    assert sum('finetune-seed0' in line for line in metrics) == 5   # the Primitives-PS curve
    assert not (tmp_path / 'out').exists() and not (tmp_path / 'results').exists()


@pytest.mark.parametrize('args, message', [
    (['--configs', 'stylegan2,adaa'], "'adaa' is not a configuration; the configurations are stylegan2, ada"),
    (['--metric', 'fid7k'], 'fid7k: not a metric'),
    (['--data', 'x.zip'], 'give both --data and --reference'),
    (['--seeds', 'a,b'], "'a,b' is not a comma-separated list of integers"),
    (['--seeds', ''], "'': no seed"),
    (['--seeds', '-1'], "'-1': -1 is outside [0, 2^32 - 1]"),
    (['--seeds', '0,0'], 'a seed given twice'),
])
def test_bad_options_are_refused_before_anything_is_written(tmp_path, args, message):
    from study import cpu
    result = CliRunner().invoke(cpu.main, ['--outdir', str(tmp_path / 'out'), '--results', str(tmp_path / 'results'),
                                           *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / 'out').exists()


def test_a_finished_run_counts_only_for_the_command_that_made_it(tmp_path):
    from study.runs import finished_run
    outdir = tmp_path / 'ada-seed0'
    assert finished_run(outdir, ['train.py', '--kimg', '1']) is None  # nothing there yet
    run_dir = outdir / '00000-run'
    run_dir.mkdir(parents=True)
    (outdir / 'command.json').write_text(json.dumps(['train.py', '--kimg', '1']))
    (run_dir / 'log.txt').write_text('tick 0\n')
    assert finished_run(outdir, ['train.py', '--kimg', '1']) is None  # killed before it finished
    (run_dir / 'log.txt').write_text('tick 0\n\nExiting...\n')
    assert finished_run(outdir, ['train.py', '--kimg', '1']) == run_dir
    with pytest.raises(click.ClickException, match=r'holds a run made with other options \(train.py --kimg 1; now '
                                                   r'train.py --kimg 2\)'):
        finished_run(outdir, ['train.py', '--kimg', '2'])


@pytest.mark.slow
def test_tiny_study_records_whole_runs_and_a_rerun_skips_them(tmp_path, tiny_zip):
    common = ['--outdir', tmp_path / 'out', '--results', tmp_path / 'results', '--kimg', 0.02, '--seeds', 0,
              '--configs', 'finetune', '--snap-kimg', 0.1, '--metric', 'none', '--jobs', 1, '--grid', 4,
              '--data', tiny_zip, '--reference', tiny_zip]
    assert '2 of 2 runs done.' in study_output(*common)  # the pretraining, then the fine-tuning that waited for it
    for name in ('pretrain-seed0', 'finetune-seed0'):
        run = tmp_path / 'results' / 'runs' / name
        done = json.loads((run / 'done.json').read_text())
        assert done['command'][0] == 'python' and '{OUTDIR}' in ' '.join(done['command'])
        assert '--grid 4' in ' '.join(done['command'])  # fakes grids of 4 x 4 images
        assert done['metric'] == {'name': None, 'kimg': []}
    run = tmp_path / 'results' / 'runs' / 'finetune-seed0'
    assert sorted(p.name for p in run.iterdir()) == ['done.json', 'fakes-final.png', 'probes.jsonl',
                                                     'stats.jsonl.gz', 'training_options.json']
    probes = [json.loads(line) for line in (run / 'probes.jsonl').read_text().splitlines()]
    assert len(probes) == 2 and all(math.isfinite(row['real_grad_norm']) for row in probes)
    assert all(0 <= row['rotation_rate'] <= 1 and 0 <= row['jigsaw_rate'] <= 1 for row in probes)
    trained = only_run(tmp_path / 'out' / 'runs' / 'finetune-seed0')
    (trained / 'probes.jsonl').write_text(json.dumps({k: v for k, v in probes[0].items() if k != 'rotation_rate'})
                                          + '\n' + json.dumps(probes[1]) + '\n')
    from study import probes as probes_command  # a row without a field is probed again
    assert CliRunner().invoke(probes_command.main, ['--run', str(trained), '--data', str(tiny_zip), '--reference',
                                                    str(tiny_zip)], catch_exceptions=False).exit_code == 0
    assert [json.loads(line) for line in (trained / 'probes.jsonl').read_text().splitlines()] == probes
    finetune = json.loads((tmp_path / 'results' / 'runs' / 'finetune-seed0' / 'training_options.json').read_text())
    assert finetune['resume_pkl'].endswith('.pkl') and 'pretrain-seed0' in finetune['resume_pkl']
    assert (tmp_path / 'results' / 'tables.md').is_file() and (tmp_path / 'results' / 'figures' / 'fakes.png').is_file()

    again = study_output(*common)
    assert 'finetune seed 0: already in' in again
    assert 'train.py' not in again and '1 of 1 runs done.' in again

    pretrained = max((tmp_path / 'out' / 'runs' / 'pretrain-seed0').glob('*/network-snapshot-*.pkl'))
    sha = hashlib.sha256(pretrained.read_bytes()).hexdigest()
    finetune_done = tmp_path / 'results' / 'runs' / 'finetune-seed0' / 'done.json'
    for name in ('pretrain-seed0', 'finetune-seed0'):
        assert json.loads((tmp_path / 'results' / 'runs' / name / 'done.json').read_text())['pretrained_sha256'] == sha
    finetune_done.write_text(json.dumps(dict(json.loads(finetune_done.read_text()), pretrained_sha256='other')))
    (tmp_path / 'out' / 'runs' / 'finetune-seed0' / 'pretrained.sha256').write_text('other')
    pinned = study_output(*common)  # a fine-tuning from another pretrained snapshot is trained again, not the pretraining
    trained = ''.join(line.split('--data')[0] for line in pinned.splitlines() if 'train.py' in line)
    assert 'finetune-seed0' in trained and 'pretrain-seed0' not in trained
    assert json.loads(finetune_done.read_text())['pretrained_sha256'] == sha
    longer = study_output(*[arg if arg != 0.02 else 0.03 for arg in common[:-4]], '--configs', 'stylegan2', '--data',
                          tiny_zip, '--reference', tiny_zip, '--hours', 1e-4)
    assert 'more than is left; left for a later invocation' in longer  # another command, no time for it
    assert '0 of 1 runs done, 1 left for a later invocation.' in longer


def only_run(outdir):
    (run,) = [path for path in outdir.iterdir() if path.is_dir()]
    return run


def test_rotation_detector_tells_rotated_images_from_upright_ones():
    from study.probes import rotated, rotation_detector
    generator = torch.Generator().manual_seed(1)

    def upright(count):  # a bright T of random position and width on a dark 16x16 image, RGB
        images = -torch.ones([count, 3, 16, 16])
        for image in images:
            left, width = (int(torch.randint(low, high, [1], generator=generator)) for low, high in ((3, 8), (2, 4)))
            image[:, 2:14, left:left + width] = 1
            image[:, 2:4, left - 2:left + width + 2] = 1
        return images
    detector, threshold, sensitivity = rotation_detector(upright(300), epochs=10)
    fresh = upright(200)
    assert sensitivity > 0.9 and (detector(rotated(fresh, generator)) > threshold).float().mean() > 0.9
    assert (detector(fresh) > threshold).float().mean() < 0.1


def test_jigsaw_detector_flags_jigsaws_and_not_smooth_images():
    from study.probes import jigsaw, seam_scores
    ramp = torch.linspace(-1, 1, 16)
    images = (ramp[None, None, :, None] * ramp[None, None, None, :]).repeat(8, 3, 1, 1)  # smooth: no seams
    images = images + torch.linspace(0, 0.5, 8)[:, None, None, None]
    jigsawed = jigsaw(images, grid=2, generator=torch.Generator().manual_seed(0))
    assert (seam_scores(images) < 1.5).all() and (seam_scores(jigsawed) > 3).all()


def test_paired_comparison_and_convergence_kimg():
    from scripts.results import convergence_kimg
    from study.report import paired

    class Run:
        def __init__(self, seed, value):
            self.seed, self.value = seed, value
    runs = {'stylegan2': [Run(0, 10.0), Run(1, 20.0), Run(2, 30.0)], 'atopk': [Run(0, 8.0), Run(1, 21.0)]}
    # differences -2 and +1: mean -0.5, sample std sqrt(4.5) = 2.1
    assert paired(runs, 'atopk', lambda run: run.value) == '-0.5 +- 2.1, lower in 1 of 2'
    curve = [(8.0, 100.0), (16.0, 60.0), (24.0, 40.0)]
    assert convergence_kimg(curve, 50.0) == 24.0  # FID <= 52.6: 60 at 16 is not, 40 at 24 is; no interpolation
    assert convergence_kimg(curve, 95.0) == 8.0 and math.isnan(convergence_kimg(curve, 37.0))  # <= 100, <= 38.9


def test_a_free_pipeline_passes_over_fine_tunings_until_the_pretraining_is_done():
    from study.cpu import next_index
    queue = [('finetune', 0), ('finetune', 1), ('diggan', 1), ('finetune', 2)]
    assert next_index(queue, pretrained=False) == 2  # the first entry that does not wait for the pretraining
    assert next_index(queue, pretrained=True) == 0
    assert next_index([('finetune', 2)], pretrained=False) == 0  # only fine-tunings left: it waits


def test_machine_description_names_the_cpu_type_and_its_vector_instructions():
    from study.cpu import machine_description
    cpuinfo = ('processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n'
               'model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\nmodel name\t: other\n')
    assert machine_description(cpuinfo).startswith('AMD EPYC (family 25 model 1, AVX2), ')
    assert '(family 25 model 17, AVX-512)' in machine_description(
        cpuinfo.replace('model\t\t: 1', 'model\t\t: 17').replace('avx2 fma', 'avx2 avx512f fma'))
    assert machine_description('').startswith('unknown CPU, ')


def test_probes_measure_a_timestep_conditioned_discriminator_too():
    from study.probes import scores_and_norms
    from plugins.diffusion import Discriminator
    torch.manual_seed(0)
    D = Discriminator(c_dim=0, img_resolution=8, img_channels=3, channel_base=256, channel_max=16)  # c_dim 1 inside
    images = torch.randn([8, 3, 8, 8])
    score, norm = scores_and_norms(D, images, c_dim=0)
    images.requires_grad_(True)
    logits = torch.cat([D(part, torch.zeros([4, 0])) for part in images.split(4)])
    grads, = torch.autograd.grad(logits.sum(), images)
    assert score == pytest.approx(logits.mean().item(), rel=1e-5)
    assert norm == pytest.approx(grads.flatten(1).norm(dim=1).mean().item(), rel=1e-5)


def fake_run(results, name, seed, fids, sha='a' * 64):
    """A recorded run with 0.1-kimg stats rows to 40 kimg (score gap 1 up to 39.9 kimg, 7 on the row at 40.0) and
    metric rows {snapshot kimg: [values, oldest first]}."""
    import gzip
    run = results / 'runs' / f'{name}-seed{seed}'
    run.mkdir(parents=True)
    rows = [{'Progress/kimg': {'mean': tick / 10}, 'Loss/scores/real': {'mean': 7.0 if tick == 400 else 1.0},
             'Loss/scores/fake': {'mean': 0.0}} for tick in range(1, 401)]
    (run / 'stats.jsonl.gz').write_bytes(gzip.compress(''.join(json.dumps(row) + '\n' for row in rows).encode()))
    metric_rows = [{'results': {'fid1k_full': value}, 'snapshot_pkl': f'network-snapshot-{kimg:010.3f}.pkl',
                    'timestamp': float(order)} for kimg, values in fids.items() for order, value in enumerate(values)]
    (run / 'metric-fid1k_full.jsonl').write_text(''.join(json.dumps(row) + '\n' for row in metric_rows))
    (run / 'done.json').write_text(json.dumps({'seconds': {'train': 60}, 'pretrained_sha256': sha}))
    (run / 'training_options.json').write_text(json.dumps({'random_seed': seed}))


def test_report_tables_from_recorded_runs(tmp_path):
    from study.report import build
    fake_run(tmp_path, 'diffaugment', 0, {8.004: [300.0], 24.004: [120.0], 40.0: [100.0]})
    fake_run(tmp_path, 'diffaugment', 1, {8.004: [280.0], 24.004: [90.0], 40.0: [110.0]})
    # seed 0 evaluated twice at 40 kimg (the newer value counts), and a failed evaluation at 24 kimg (ignored)
    fake_run(tmp_path, 'finetune', 0, {8.004: [150.0], 24.004: [math.nan], 40.0: [999.0, 95.0]})
    fake_run(tmp_path, 'finetune', 1, {8.004: [94.0], 24.004: [80.0], 40.0: [85.0]})
    runs = build(tmp_path, 'fid1k_full')
    assert runs['finetune'][0].curve('fid1k_full') == [(8.0, 150.0), (40.0, 95.0)]
    assert runs['diffaugment'][0].gap()[-1] == pytest.approx((39.5, (9 * 1.0 + 7.0) / 10))  # 40.0 is in (39, 40]
    tables = (tmp_path / 'tables.md').read_text()
    assert '| Primitives-PS fine-tuning (DiffAugment) | 122.0 +- 39.6 (n=2) | 80.0 (n=1) | 90.0 +- 7.1 (n=2) |' \
        in tables  # 8, 24 and 40 kimg: the per-point table
    # per seed, the first evaluated kimg with FID <= scratch best / 0.95: seed 0 <= 105.26, seed 1 <= 94.74.
    # Fine-tuning: seed 0 at 40 (95), seed 1 at 8 (94): 24 +- sqrt(2 * 16^2) = 22.6. Scratch: seed 0 at 40 (100),
    # seed 1 at 24 (90): 32 +- sqrt(2 * 8^2) = 11.3
    assert 'fine-tuning 24.0 +- 22.6 (n=2) kimg, reached by 2 of 2; scratch 32.0 +- 11.3 (n=2) kimg' in tables
    assert 'all 2 fine-tunings start from one pretrained snapshot (sha256 aaaaaaaaaaaa)' in tables
    for figure in ('primitives-fid.png', 'fid.png'):
        assert (tmp_path / 'figures' / figure).is_file()


def test_a_configuration_the_data_cannot_take_is_refused_before_the_first_run(tmp_path, tiny_zip):
    from study import cpu
    args = ['--outdir', tmp_path / 'out', '--results', tmp_path / 'results', '--configs', 'ada,insgen', '--data',
            tiny_zip, '--reference', tiny_zip]
    message = ('train.py rejects the options of the insgen seed 2 run: --loss: the default queue size, 5% of the 16 '
               'images, is 0')
    result = study(*args, check=False)  # through a real process once
    assert result.returncode == 2 and message in result.stderr, result.stderr
    dry_run = CliRunner().invoke(cpu.main, [*map(str, args), '--dry-run'])
    assert dry_run.exit_code == 2 and message in dry_run.output, dry_run.output
    assert not (tmp_path / 'out').exists() and not (tmp_path / 'results').exists()
