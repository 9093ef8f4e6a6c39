"""scripts/demo.py (`make demo`): a tiny run of the whole demo on the synthetic fallback, and the fallback itself
when Fashion-MNIST cannot be had. The full 20-kimg demo on Fashion-MNIST is what README.md describes."""

import json
import subprocess
import sys

import click
import PIL.Image
import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_the_demo_trains_the_plugins_renders_images_and_writes_the_report(tmp_path):
    result = subprocess.run([sys.executable, 'scripts/demo.py', '--kimg', '0.02', '--synthetic', '--outdir', tmp_path],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert 'Done: StyleGAN2 + ATop-k + ANDA + DigGAN on 200 Primitives-PS images, 0.02 kimg' in result.stdout
    (run_dir,) = (tmp_path / 'training-runs').iterdir()
    loss = json.loads((run_dir / 'training_options.json').read_text())['loss_kwargs']
    assert loss['atopk'] == {'speed_kimg': 0.005} and loss['diggan'] == {'cadence': 'lazy'}  # speed = kimg / 4
    assert len(list((run_dir / 'generated').glob('seed*.png'))) == 16
    for name in ('report.md', 'controllers-ATopk.png', 'controllers-ANDA.png', 'controllers-DigGAN.png'):
        assert (run_dir / 'report' / name).is_file(), name
    with PIL.Image.open(max(run_dir.glob('fakes0*.png'))) as fakes:
        assert fakes.size[0] >= 32


def test_without_fashion_mnist_the_demo_says_so_and_uses_synthetic_images(tmp_path, monkeypatch, capsys):
    from scripts import demo

    def unavailable(cache):
        raise click.ClickException('apt-get download dataset-fashion-mnist failed (no network)')
    monkeypatch.setattr(demo, 'find_source', lambda explicit, cache: None)
    monkeypatch.setattr(demo, 'fetch_source', unavailable)
    (tmp_path / 'data').mkdir()
    data, description = demo.training_data(tmp_path, synthetic=False)
    assert data == tmp_path / 'data' / 'primitives-ps-32.zip' and data.is_file()
    assert description == '200 Primitives-PS images'
    assert 'Fashion-MNIST could not be had (apt-get download dataset-fashion-mnist failed' in capsys.readouterr().out
