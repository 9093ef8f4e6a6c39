"""The mean magnitude spectrum of images (Primitives-PS supplement Sec. 10, Fig. 12): of a dataset, a synthesizer or a
snapshot's generator, as an image and as a radial profile with its fitted power-law slope, so that "Primitives is
closer to natural images than PinkNoise" can be checked on any data.

    python scripts/spectrum.py SOURCE [SOURCE ...] --out DIR [--count 1000]

A SOURCE is a dataset zip or folder (upstream's layout), a synthesizer's stream ('synth:primitives-ps?res=256'),
or a network pickle (its G_ema's images for seeds 0 .. COUNT-1, truncation 1, constant noise). Each source's
first COUNT images go through a 2-D FFT of their grey level (the mean of R, G and B); the magnitudes are averaged
over the images. DIR/spectrum.png shows each source's log(1 + mean magnitude), the zero frequency in the middle (the
figure's form), DIR/radial.png the mean magnitude over rings of radius 1 .. H/2 in log-log axes, and
DIR/spectrum.json the profiles and the slope of a least-squares line through log magnitude against log frequency
(natural images: about -1 in amplitude)."""

import json
from pathlib import Path

import click
import numpy as np

MAX_SOURCES = 8


def mean_magnitude(images):
    """Mean |FFT2| over images [N, H, W, C] (uint8 or float) of their grey level, zero frequency at [0, 0]."""
    grey = np.asarray(images, dtype=np.float64).mean(axis=3)
    return np.abs(np.fft.fft2(grey)).mean(axis=0)


def radial_profile(magnitude):
    """(radii 1 .. H/2, mean of `magnitude` over the frequencies whose distance to zero rounds to each radius)."""
    height, width = magnitude.shape
    fy, fx = np.meshgrid(np.fft.fftfreq(height) * height, np.fft.fftfreq(width) * width, indexing='ij')
    rings = np.rint(np.hypot(fy, fx)).astype(np.int64)
    radii = np.arange(1, min(height, width) // 2 + 1)
    sums = np.bincount(rings.ravel(), weights=magnitude.ravel(), minlength=radii[-1] + 1)
    counts = np.bincount(rings.ravel(), minlength=radii[-1] + 1)
    return radii, sums[radii] / counts[radii]


def power_law_slope(radii, profile):
    """Slope of the least-squares line through (log radius, log profile): the exponent of profile ~ radius^slope."""
    slope, _intercept = np.polyfit(np.log(radii), np.log(profile), 1)
    return float(slope)


def source_images(source, count):
    """The first `count` images of a source (see the module docstring) as uint8 [N, H, W, 3]."""
    if source.startswith('synth:'):
        from plugins.primitives.dataset import DEFAULT_RESOLUTION, parse_synthetic_path
        from plugins.primitives.synth import synthesize
        try:
            synth, options = parse_synthetic_path(source)
        except IOError as error:
            raise click.BadParameter(str(error), param_hint='SOURCE') from None
        resolution = options['res'] or DEFAULT_RESOLUTION
        return np.stack([synthesize(synth, options['seed'], index, resolution, options['particles'], options['size'])
                         for index in range(count)])
    path = Path(source)
    if not path.exists():
        raise click.BadParameter(f'{source}: no such file or folder', param_hint='SOURCE')
    if path.suffix == '.pkl':
        return generated_images(path, count)
    from training.dataset import ImageFolderDataset
    dataset = ImageFolderDataset(str(path))
    if len(dataset) < count:
        raise click.BadParameter(f'{source} holds {len(dataset)} images, fewer than --count {count}',
                                 param_hint='SOURCE')
    images = np.stack([dataset[index][0] for index in range(count)]).transpose(0, 2, 3, 1)
    return np.repeat(images, 3, axis=3) if images.shape[3] == 1 else images


def generated_images(path, count):
    """G_ema's images for seeds 0 .. count-1 (generate.py's latents), truncation 1, constant noise, uint8 NHWC."""
    import torch

    import legacy
    with open(path, 'rb') as file:
        G = legacy.load_network_pkl(file)['G_ema']
    images = []
    with torch.no_grad():
        for seed in range(count):
            z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim))
            image = G(z, torch.zeros([1, G.c_dim]), truncation_psi=1, noise_mode='const')
            images.append((image * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy())
    images = np.stack(images)
    return np.repeat(images, 3, axis=3) if images.shape[3] == 1 else images


@click.command()
@click.argument('sources', nargs=-1, required=True)
@click.option('--out', 'outdir', required=True, type=click.Path(file_okay=False), help='Folder of the figures.')
@click.option('--count', type=click.IntRange(min=1), default=1000, show_default=True, help='Images per source.')
def main(sources, outdir, count):
    """The mean magnitude spectrum of each SOURCE (see the module docstring)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    if len(sources) > MAX_SOURCES:
        raise click.BadParameter(f'{len(sources)} sources; at most {MAX_SOURCES} fit the figures', param_hint='SOURCE')
    results = {}
    for source in sources:
        magnitude = mean_magnitude(source_images(source, count))
        radii, profile = radial_profile(magnitude)
        results[source] = dict(magnitude=magnitude, radii=radii, profile=profile,
                               slope=power_law_slope(radii, profile))
        click.echo(f'{source}: slope {results[source]["slope"]:.3f} over radii 1 .. {radii[-1]}')
    Path(outdir).mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(1, len(sources), figsize=(3.2 * len(sources), 3.6), squeeze=False,
                                layout='constrained')
    for axis, (source, result) in zip(axes[0], results.items()):
        axis.imshow(np.log1p(np.fft.fftshift(result['magnitude'])), cmap='viridis')
        axis.set_title(f'{Path(source).name if not source.startswith("synth:") else source}\n'
                       f'slope {result["slope"]:.2f}', fontsize=8)
        axis.axis('off')
    figure.savefig(Path(outdir) / 'spectrum.png', dpi=120)
    figure, axis = plt.subplots(figsize=(5, 4))
    for source, result in results.items():
        axis.loglog(result['radii'], result['profile'], label=f'{source} ({result["slope"]:.2f})')
    axis.set_xlabel('frequency (cycles per image)')
    axis.set_ylabel('mean magnitude')
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(Path(outdir) / 'radial.png', dpi=120)
    summary = {source: dict(slope=result['slope'], radii=result['radii'].tolist(),
                            profile=result['profile'].tolist(), images=count) for source, result in results.items()}
    (Path(outdir) / 'spectrum.json').write_text(json.dumps(summary, indent=1) + '\n')
    click.echo(f'figures and profiles in {outdir}')


if __name__ == '__main__':
    main()
