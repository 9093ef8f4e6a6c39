"""The FID of samples that a run generated elsewhere (the GPU study's samples-<i>.npz, study/gpu.py), computed
here by upstream's own metric code: each run's images stand in for its generator, so upstream's
compute_feature_stats_for_generator reads them in order, through the same Inception network and statistics as
calc_metrics.py (the offline detector, offline_metrics/), against the reference zip's every image.

    python -m study.score_samples --returned DIR --reference ZIP [--out scores.json]

The metric is fid<N>_full for N samples a run (fid1k_full for the GPU study's 1,000), as metric_main.py's
fid5k_full/fid1k_full compute it; a run whose count is not that of a registered metric is refused."""

import json
from pathlib import Path

import click
import numpy as np
import torch


ROOT = Path(__file__).resolve().parent.parent
METRICS = {1000: 'fid1k_full', 5000: 'fid5k_full', 50000: 'fid50k_full'}  # metric_main.py's, by generated images


class SamplesGenerator(torch.nn.Module):
    """Stands in for G in upstream's metric code: each call returns the next stored uint8 images as floats that
    upstream's `(x * 127.5 + 128).clamp(0, 255).to(torch.uint8)` turns back into the same bytes (x * 127.5 + 128
    = u + 0.5, truncated to u). Calls past the end return zeros, which FeatureStats drops (max_items)."""

    def __init__(self, images):
        super().__init__()
        self.register_buffer('images', torch.as_tensor(np.asarray(images, dtype=np.uint8)))
        self.z_dim, self.c_dim, self.taken = 1, 0, 0

    def forward(self, z, c, **_kwargs):
        batch = self.images[self.taken:self.taken + len(z)]
        self.taken += len(z)
        images = (batch.to(torch.float32) - 127.5) / 127.5
        padding = torch.zeros([len(z) - len(batch), *self.images.shape[1:]], device=images.device)
        return torch.cat([images, padding])


def score(images, reference, device='cpu', cache=True):
    """{metric: value} of one run's images (uint8 [N, C, H, W]) against the reference zip (its statistics cached in
    upstream's cache when `cache`)."""
    from metrics import metric_main
    metric = METRICS.get(len(images))
    if metric is None:
        raise click.ClickException(f'{len(images)} samples: the metrics take '
                                   f'{", ".join(f"{count} ({name})" for count, name in METRICS.items())}')
    dataset_kwargs = dict(class_name='training.dataset.ImageFolderDataset', path=str(reference))
    result = metric_main.calc_metric(metric, G=SamplesGenerator(images), dataset_kwargs=dataset_kwargs, num_gpus=1,
                                     rank=0, device=torch.device(device), cache=cache)
    return dict(result.results)


@click.command()
@click.option('--returned', required=True, type=click.Path(file_okay=False, exists=True),
              help="The GPU study's returned files (samples-*.npz).")
@click.option('--reference', required=True, type=click.Path(dir_okay=False, exists=True),
              help='The metric reference zip (runs/gpu-study/data/fmnist-full-32.zip).')
@click.option('--out', type=click.Path(dir_okay=False), default=None, help='Write {run: {metric: value}} here.')
def main(returned, reference, out):
    """Score every run's samples (see the module docstring)."""
    files = sorted(Path(returned).glob('samples-*.npz'))
    if not files:
        raise click.ClickException(f'{returned}: no samples-*.npz')
    scores = {}
    for path in files:
        with np.load(path) as arrays:
            for run in arrays.files:
                scores[run] = score(arrays[run], reference)
                print(f'{run}: ' + ', '.join(f'{name} {value:.2f}' for name, value in scores[run].items()), flush=True)
    if out is not None:
        Path(out).write_text(json.dumps(scores, indent=2) + '\n')


if __name__ == '__main__':
    main()
