"""The GPU study (study/gpu.py, returned_files.py, score_samples.py, probes.py --follow): its tiny mode
end to end on the CPU under the GPU machine's limits, the plan's refusals, the packing limits, and the samples'
round trip through upstream's metric code against an independent FID."""

import json
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import scipy.linalg
import torch

from tests.conftest import ROOT


from study import gpu, returned_files
from study.score_samples import SamplesGenerator, score

MIB = 2 ** 20


@pytest.fixture(scope='module')
def tiny_study(tmp_path_factory):
    """One tiny GPU study on the CPU: (returned folder, work folder, exit status and output)."""
    root = tmp_path_factory.mktemp('gpu-study')
    result = subprocess.run([sys.executable, '-m', 'study.gpu', '--tiny', '--outdir', str(root / 'out'),
                             '--workdir', str(root / 'work')], cwd=ROOT, capture_output=True, text=True)
    return root / 'out', root / 'work', result


@pytest.mark.slow
def test_tiny_study_returns_its_results_within_the_machines_limits(tiny_study):
    out, work, result = tiny_study
    assert result.returncode == 0, result.stdout + result.stderr
    layout = returned_files.returned_layout(out)
    assert sorted(layout) == ['logs.tar.gz', 'results.json', 'samples-0.npz', 'summary.md']
    assert returned_files.layout_problems(layout) == []
    summary = (out / 'summary.md').read_text()
    assert '## CUDA ops: status 1' in summary and 'this PyTorch is a CPU build' in summary  # no GPU here
    assert '## benchmark: ok' in summary and '## study: ok' in summary
    results = json.loads((out / 'results.json').read_text())
    assert [step['name'] for step in results['steps']] == ['CUDA ops', 'benchmark', 'study']
    measured = results['benchmark']['results']
    assert set(measured) == {'baseline', 'atopk'}
    estimate = results['estimate']  # the study's length from the benchmark's measured sec/kimg
    side_by_side = gpu.TRAINING_OVER_LOSS * (measured['baseline']['wall'] + measured['atopk']['wall'])
    assert estimate['side_by_side_sec_per_kimg'] == pytest.approx(side_by_side, rel=1e-3)
    fit = min(estimate['kimg'], gpu.TINY['max_kimg'])  # tiny mode's cap, to end before its time
    assert 0.9 * fit <= results['steps'][2]['kimg'] <= fit  # two significant digits, rounded down
    with tarfile.open(out / 'logs.tar.gz') as tar:
        assert {'ada-seed0.log', 'atopk-seed0-probes.log', 'benchmark.log'} <= set(tar.getnames())
    with np.load(out / 'samples-0.npz') as samples:
        assert sorted(samples.files) == ['ada-seed0', 'atopk-seed0']
        assert samples['ada-seed0'].shape == (gpu.SAMPLES, 3, 16, 16)
        assert samples['ada-seed0'].dtype == np.uint8
    for run in ('ada-seed0', 'atopk-seed0'):
        entry = results['runs'][run]
        assert '--cfg cpu' in entry['command'] and '--snap 1' in entry['command']
        kimg = [row['kimg'] for row in entry['probes']]
        assert len(kimg) >= 2 and kimg == sorted(kimg)  # recorded per snapshot, as the training went
        assert len(entry['ticks']) >= 2 and all('Timing/sec_per_kimg' in tick for tick in entry['ticks'])
        run_kimg = results['steps'][2]['kimg']
        tick_kimg = run_kimg / gpu.TICKS  # --tick: a quarter of the run
        assert entry['ticks'][0]['Progress/kimg'] == pytest.approx(0.004)  # upstream's tick 0: one minibatch of 4
        for index, tick in enumerate(entry['ticks']):  # then whole minibatches past each tick's length, to the end
            start = min(0.004 + index * tick_kimg, run_kimg)
            assert start - 1e-6 <= tick['Progress/kimg'] <= start + 0.004 * index + 1e-6
        assert all(tick['Gradients/nonfinite/Dmain'] == 0 for tick in entry['ticks'])
        snapshots = list((work / run).glob('*/network-snapshot-*.pkl'))
        assert len(snapshots) == 1  # each deleted once probed and no longer the last


@pytest.mark.slow
def test_plan_of_the_real_study_fits_and_refuses_what_does_not(tmp_path, monkeypatch, tiny_study):
    _out, work, _ = tiny_study
    data = tmp_path / 'data'
    data.mkdir()
    for name in ('fmnist100-32.zip', 'fmnist-full-32.zip'):  # the tiny images stand in: their networks are smaller
        (data / name).write_bytes((work / 'primitives-ps-16.zip').read_bytes())
    monkeypatch.setattr(gpu, 'DATA_DIR', data)
    lines, problems = gpu.plan(9, [0], False, tmp_path / 'work')
    assert problems == []
    text = '\n'.join(lines)
    assert 'Runs: 10 side by side' in text and 'each --cfg low_shot' in text
    assert "carry=['stylegan2_ada', 'runs/gpu-study/data'], timeout_s=600" in text
    assert 'samples-1.npz 14.7 MiB' in text and 'samples-2.npz' not in text  # 1,000 32x32 RGB images a run
    _, problems = gpu.plan(9.9, [0], False, tmp_path / 'work')
    assert any('leave less than 30 s' in problem for problem in problems)
    _, problems = gpu.plan(9, [0, 1, 2], False, tmp_path / 'work')  # 30 runs' samples
    assert any('MiB together, more than 64 MiB' in problem for problem in problems)


def test_layout_limits_name_each_breach():
    assert returned_files.layout_problems({'a.md': 1, 'x/y/b.json': 16 * MIB}) == []
    problems = returned_files.layout_problems({f'f{i}': 9 * MIB for i in range(8)} | {'x/y/z/deep': 1,
                                                                                     'bad name': 17 * MIB})
    assert problems[0] == '10 files, more than 8'
    assert problems[1].endswith('MiB together, more than 64 MiB')
    assert 'x/y/z/deep: 3 folders deep, more than 2' in problems
    assert 'bad name: 17.0 MiB, more than 16 MiB' in problems
    assert any(problem.startswith('bad name: a name with other characters') for problem in problems)


def test_samples_are_grouped_into_files_under_the_size_limit():
    groups = returned_files.sample_files({f'r{i}': 3 * MIB for i in range(11)})
    assert groups == [['r0', 'r1', 'r2', 'r3', 'r4'], ['r5', 'r6', 'r7', 'r8', 'r9'], ['r10']]
    with pytest.raises(ValueError, match='r0: 16.0 MiB of samples do not fit one returned file'):
        returned_files.sample_files({'r0': 16 * MIB})


def test_samples_pass_upstreams_uint8_conversion_unchanged():
    values = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16).repeat(3, 3, 1, 1)
    generator = SamplesGenerator(values.numpy())
    out = torch.cat([generator(torch.zeros([2, 1]), None), generator(torch.zeros([2, 1]), None)])
    assert torch.equal((out[:3] * 127.5 + 128).clamp(0, 255).to(torch.uint8), values)  # metric_utils.py's
    assert torch.equal(out[3], torch.zeros_like(out[3]))  # past the end: dropped by FeatureStats


@pytest.mark.slow
def test_score_is_the_frechet_distance_of_the_samples_and_reference_features(tmp_path, monkeypatch, tiny_study):
    """Upstream's metric path over the samples, with a cheap detector in place of Inception, against the distance
    computed here from the same features."""
    from metrics import metric_utils
    from training.dataset import ImageFolderDataset
    _out, work, _ = tiny_study
    reference = work / 'primitives-ps-16.zip'

    def features(images):  # [N, 3, H, W] uint8 -> per-channel means and standard deviations
        x = images.to(torch.float64)
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)
    monkeypatch.setattr(metric_utils, 'get_feature_detector', lambda **_: lambda images, **_: features(images))
    samples = np.random.default_rng(0).integers(0, 256, [1000, 3, 16, 16], dtype=np.uint8)
    measured = score(samples, reference, cache=False)['fid1k_full']
    dataset = ImageFolderDataset(str(reference))
    real = features(torch.from_numpy(np.stack([dataset[i][0] for i in range(len(dataset))]))).numpy()
    fake = features(torch.from_numpy(samples)).numpy()
    mu_r, mu_f = real.mean(0), fake.mean(0)
    sigma_r, sigma_f = np.cov(real, rowvar=False, bias=True), np.cov(fake, rowvar=False, bias=True)  # as FeatureStats
    root = scipy.linalg.sqrtm(sigma_f @ sigma_r).real
    expected = np.square(mu_f - mu_r).sum() + np.trace(sigma_f + sigma_r - 2 * root)
    assert measured == pytest.approx(expected, rel=1e-4)
    with pytest.raises(Exception, match='999 samples: the metrics take 1000 \\(fid1k_full\\)'):
        score(samples[:999], reference, cache=False)
