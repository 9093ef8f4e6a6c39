"""The Primitives-PS supplement's analysis tools against independent computations: the magnitude spectrum of images
of a known power law (scripts/spectrum.py) and the filter similarity of hand-made filters (scripts/filter_similarity.py),
and both command lines on synthetic data and tiny networks."""

import json
import pickle

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from scripts import filter_similarity, spectrum
from tests.tiny import one_thread, tiny_networks  # noqa: F401 (autouse fixture)


def power_law_images(count, size, exponent, seed=0):
    """Grey images [N, H, W, 3] whose Fourier amplitude is radius^exponent with random phases."""
    rng = np.random.default_rng(seed)
    fy, fx = np.meshgrid(np.fft.fftfreq(size) * size, np.fft.fftfreq(size) * size, indexing='ij')
    radius = np.hypot(fy, fx)
    amplitude = np.where(radius > 0, np.maximum(radius, 1) ** exponent, 0.0)
    phases = np.exp(2j * np.pi * rng.random((count, size, size)))
    grey = np.fft.ifft2(amplitude * phases).real
    return np.repeat(grey[..., None], 3, axis=3)


def test_the_spectrum_of_a_known_power_law_has_its_slope():
    images = power_law_images(8, 64, exponent=-1.5)
    magnitude = spectrum.mean_magnitude(images)
    expected = np.mean([np.abs(np.fft.fft2(image[..., 0])) for image in images], axis=0)
    np.testing.assert_allclose(magnitude, expected, rtol=1e-10, atol=1e-12)
    radii, profile = spectrum.radial_profile(magnitude)
    assert radii.tolist() == list(range(1, 33))
    assert spectrum.power_law_slope(radii, profile) == pytest.approx(-1.5, abs=0.1)
    assert spectrum.power_law_slope(*spectrum.radial_profile(
        spectrum.mean_magnitude(power_law_images(8, 64, exponent=-0.5)))) == pytest.approx(-0.5, abs=0.1)


def test_a_radial_profile_averages_each_ring():
    magnitude = np.random.default_rng(1).random((8, 8))
    rings = {}
    for u in range(8):  # frequency index u means u cycles, or u - 8 past the middle
        for v in range(8):
            distance = ((u if u < 4 else u - 8) ** 2 + (v if v < 4 else v - 8) ** 2) ** 0.5
            rings.setdefault(int(np.floor(distance + 0.5)), []).append(magnitude[u, v])
    radii, profile = spectrum.radial_profile(magnitude)
    assert radii.tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(profile, [np.mean(rings[radius]) for radius in radii], rtol=1e-12)


def test_the_spectrum_command_writes_its_figures_and_refuses_a_bad_source(tmp_path):
    G, D = tiny_networks()
    network = tmp_path / 'network.pkl'
    with open(network, 'wb') as file:
        pickle.dump(dict(G=G, D=D.D, G_ema=G, training_set_kwargs=None, augment_pipe=None), file)
    sources = ['synth:pinknoise?res=16', 'synth:primitives-ps?res=16&particles=10', str(network)]
    result = CliRunner().invoke(spectrum.main, [*sources, '--out', str(tmp_path / 'out'), '--count', '4'])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / 'out' / 'spectrum.json').read_text())
    assert sorted(summary) == sorted(sources)
    assert [len(summary[source]['profile']) for source in sources] == [8, 8, 4]  # the tiny G draws 8x8 images
    assert all(np.isfinite(entry['slope']) and entry['images'] == 4 for entry in summary.values())
    assert (tmp_path / 'out' / 'spectrum.png').stat().st_size > 0 and (tmp_path / 'out' / 'radial.png').is_file()
    for source, message in [('synth:leaves', 'unknown synthesizer'), (str(tmp_path / 'none.zip'), 'no such file')]:
        result = CliRunner().invoke(spectrum.main, [source, '--out', str(tmp_path / 'bad')])
        assert result.exit_code == 2 and message in result.output, result.output
        assert not (tmp_path / 'bad').exists()


def test_filter_similarity_of_hand_made_filters():
    orthogonal = torch.eye(4).reshape(4, 1, 2, 2)
    assert filter_similarity.mean_cosine_similarity(orthogonal) == 0
    assert filter_similarity.mean_cosine_similarity(torch.ones(3, 2, 3, 3)) == pytest.approx(1)
    three = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]]).reshape(3, 2, 1, 1)  # pairs: 0, 1/sqrt2, 1/sqrt2
    assert filter_similarity.mean_cosine_similarity(three) == pytest.approx(2 / np.sqrt(2) / 3)
    weight = torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    pairs = [torch.nn.functional.cosine_similarity(weight[i].flatten(), weight[j].flatten(), dim=0)
             for i in range(6) for j in range(i + 1, 6)]
    assert filter_similarity.mean_cosine_similarity(weight) == pytest.approx(float(torch.stack(pairs).mean()))


def test_the_layers_follow_the_supplements_order_and_the_command_prints_them(tmp_path):
    G, D = tiny_networks()
    D = D.D  # upstream's D, without the tests' offset wrapper
    layers = filter_similarity.conv_layers(G, D)
    assert [name for name, _ in layers['G']] == ['synthesis.b4.conv1', 'synthesis.b8.conv0', 'synthesis.b8.conv1']
    assert [name for name, _ in layers['D']] == ['b8.conv0', 'b8.conv1', 'b4.conv']
    network = tmp_path / 'network.pkl'
    with open(network, 'wb') as file:
        pickle.dump(dict(G=G, D=D, G_ema=G, training_set_kwargs=None, augment_pipe=None), file)
    result = CliRunner().invoke(filter_similarity.main, [str(network), '--json', str(tmp_path / 'figures.json')])
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / 'figures.json').read_text())[str(network)]
    expected = filter_similarity.mean_cosine_similarity(D.b8.conv1.weight)
    assert figures['D']['conv1'] == ['b8.conv1', pytest.approx(expected)]
    assert f'| conv1 | {expected:.5f} |' in result.output and '| Mean |' in result.output
    result = CliRunner().invoke(filter_similarity.main, [str(tmp_path / 'missing.pkl')])
    assert result.exit_code == 2 and 'missing.pkl: no such file' in result.output
