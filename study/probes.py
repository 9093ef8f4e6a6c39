"""The CPU study's measurements of each snapshot of a run (study/cpu.py), in RUN/probes.jsonl:

    python -m study.probes --run RUN_DIR --data TRAIN_ZIP --reference REFERENCE_ZIP
                           [--device cuda] [--samples N] [--follow MARKER]

For every network-snapshot-*.pkl without a row, with the snapshot's D and G on the training images and as many
fakes G(z) (z from a fixed seed), with no augmentation, one row of:
  real_score, fake_score          mean D(x) and D(G(z)) (the score gap of ATop-k's Fig. 3a is their difference);
  real_grad_norm, fake_grad_norm  mean per-image norm of D's gradient with respect to its input, on reals and on
                                  fakes (DigGAN's quantities, measured alike for runs with and without DigGAN);
  jigsaw_rate                     ANDA's leaking check: the share of 256 G_ema fakes that the jigsaw detector flags;
  jigsaw_threshold, jigsaw_sensitivity  the detector: an image's seam score is the mean absolute difference
                                  across its two middle boundaries (row and column) over that across the four
                                  boundaries beside them; an image is flagged above the 99th percentile of the
                                  first 1,000 reference images' scores (1% false alarms on real images by
                                  construction); sensitivity is the share of those reference images, jigsawed
                                  as ANDA does (2x2), that it flags;
  rotation_rate                   the augmentation leaking check (ADA's rotations): the share of the same fakes
                                  that the rotation detector flags;
  rotation_threshold, rotation_sensitivity  the detector: a small CNN on grayscale images, trained (seeded) to
                                  tell reference images 1-2,000 (two thirds of a smaller reference) from the same
                                  rotated by 90, 180 or 270 degrees; an image is flagged above the 99th percentile
                                  of its score on reference images 2,001-3,000; sensitivity is the share of those,
                                  rotated, that it flags.
A snapshot whose row lacks a field is probed again (its row replaced). The last snapshot's 16 G_ema fakes are also
saved as RUN/fakes-final.png (a 4x4 grid).

--samples N also writes RUN/samples.npz: N G_ema images of the last snapshot as upstream's metrics generate them
(z ~ N(0, I), random noise, uint8 by upstream's conversion; unconditional), for an FID computed elsewhere
(study/score_samples.py). --follow MARKER probes the snapshots as a running training writes them, until the file
MARKER exists (the training has ended), then once more; --delete-probed then deletes each snapshot once probed and
no longer the last, to bound the disk (the GPU study, study/gpu.py)."""

import json
import pickle
import time
from pathlib import Path

import click
import numpy as np
import PIL.Image
import torch

from plugins.anda.negatives import jigsaw
from scripts.results import ResultsError, read_jsonl, snapshot_kimg

ROOT = Path(__file__).resolve().parent.parent

FAKES_FOR_LEAKS = 256
CALIBRATION_IMAGES = 1000
ROTATION_TRAINING_IMAGES, ROTATION_CALIBRATION_IMAGES = 2000, 1000
FALSE_ALARM_RATE = 0.01
SAMPLES_SEED = 4
FOLLOW_POLL_SECONDS = 2
FIELDS = ('real_score', 'fake_score', 'real_grad_norm', 'fake_grad_norm', 'jigsaw_rate', 'rotation_rate')


def load_images(path, limit=None):
    """A zip's images as a float tensor in [-1, 1], [N, C, H, W]."""
    from training.dataset import ImageFolderDataset
    dataset = ImageFolderDataset(str(path), max_size=limit)
    images = np.stack([dataset[index][0] for index in range(len(dataset))])
    return torch.from_numpy(images).to(torch.float32) / 127.5 - 1


def seam_scores(images):
    """Per image: the mean |difference| across the middle row and column boundaries over that across the four
    boundaries beside them; a jigsaw's seams stand out against their neighbours."""
    rows = (images[:, :, 1:, :] - images[:, :, :-1, :]).abs().mean(dim=(1, 3))  # [N, H - 1]
    cols = (images[:, :, :, 1:] - images[:, :, :, :-1]).abs().mean(dim=(1, 2))  # [N, W - 1]
    middle = images.shape[2] // 2 - 1
    seams = (rows[:, middle] + cols[:, middle]) / 2
    beside = (rows[:, middle - 1] + rows[:, middle + 1] + cols[:, middle - 1] + cols[:, middle + 1]) / 4
    return seams / beside.clamp(min=1e-3)


def calibrate(reference):
    """(threshold, sensitivity) of the jigsaw detector on the reference images."""
    scores = seam_scores(reference)
    threshold = torch.quantile(scores, 1 - FALSE_ALARM_RATE).item()
    jigsawed = jigsaw(reference, grid=2, generator=torch.Generator().manual_seed(0))
    return threshold, (seam_scores(jigsawed) > threshold).float().mean().item()


def rotated(images, generator):
    """Each image rotated by 90, 180 or 270 degrees at random."""
    turns = torch.randint(1, 4, [len(images)], generator=generator).tolist()
    return torch.stack([torch.rot90(image, turn, dims=(1, 2)) for image, turn in zip(images, turns)])


def rotation_detector(reference, epochs=10, seed=0, device='cpu'):
    """(detector, threshold, sensitivity): a CNN scoring how rotated a grayscale image looks (see the module
    docstring), trained on the first reference images and calibrated on the next ones; initialised on the CPU
    whatever the device, so that its seed means one network."""
    gray = reference.mean(dim=1, keepdim=True).to(device)
    split = min(ROTATION_TRAINING_IMAGES, 2 * len(gray) // 3)  # two thirds of a smaller reference
    train, held_out = gray[:split], gray[split:]
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    size = gray.shape[2] // 4
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * size * size, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1)).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    labels = torch.cat([torch.zeros(len(train)), torch.ones(len(train))]).to(device)
    for _ in range(epochs):
        images = torch.cat([train, rotated(train, generator)])
        for batch in torch.randperm(len(images), generator=generator).split(64):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(images[batch]).flatten(), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval().requires_grad_(False)
    detector = lambda images: net(images.mean(dim=1, keepdim=True).to(device)).flatten().cpu()  # noqa: E731
    threshold = torch.quantile(detector(held_out), 1 - FALSE_ALARM_RATE).item()
    return detector, threshold, (detector(rotated(held_out, generator)) > threshold).float().mean().item()


def scores_and_norms(D, images, c_dim, chunk=4):
    """(mean logit, mean input-gradient norm) of D over images, in chunks of the training batch (for D's
    minibatch-stddev layer); c_dim is the dataset's label width (a timestep-conditioned D adds its own)."""
    logits, norms = [], []
    device = next(D.parameters()).device
    c = torch.zeros([chunk, c_dim], device=device)
    for part in images.split(chunk):
        part = part.detach().to(device).requires_grad_(True)
        out = D(part, c[:len(part)])
        grad, = torch.autograd.grad(out.sum(), part)
        logits.append(out.detach().flatten().cpu())
        norms.append(grad.flatten(1).norm(dim=1).cpu())
    return torch.cat(logits).mean().item(), torch.cat(norms).mean().item()


def generate(G, count, seed, chunk=16, **G_kwargs):
    """count images of G in [-1, 1] on the CPU, z drawn on the CPU from seed (so a seed means the same z anywhere);
    constant noise unless G_kwargs say otherwise."""
    device = next(G.parameters()).device
    z = torch.randn([count, G.z_dim], generator=torch.Generator().manual_seed(seed))
    c = torch.zeros([chunk, G.c_dim], device=device)
    G_kwargs = dict(dict(noise_mode='const'), **G_kwargs)
    with torch.no_grad():
        return torch.cat([G(part.to(device), c[:len(part)], **G_kwargs).cpu() for part in z.split(chunk)]).clamp(-1, 1)


def write_samples(G_ema, count, path, snapshot):
    """count images as upstream's metrics generate them (random noise; `(x * 127.5 + 128).clamp(0, 255)` as uint8,
    metrics/metric_utils.py), with the snapshot's name, written whole or not at all."""
    images = generate(G_ema, count, seed=SAMPLES_SEED, chunk=64, noise_mode='random')
    images = (images * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()
    temporary = path.with_suffix('.tmp.npz')
    np.savez_compressed(temporary, images=images, snapshot=np.array(snapshot))
    temporary.replace(path)


def save_grid(images, path, columns=4):
    images = ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    rows = [np.concatenate(list(images[index:index + columns]), axis=1) for index in range(0, len(images), columns)]
    PIL.Image.fromarray(np.concatenate(rows, axis=0).squeeze()).save(path)


def complete_rows(path):
    """{snapshot: row} of the rows that have every field."""
    rows = [row for _, row in read_jsonl(path)] if path.is_file() else []
    return {row['snapshot']: row for row in rows if all(field in row for field in FIELDS)}


@click.command()
@click.option('--run', 'run_dir', required=True, type=click.Path(file_okay=False, exists=True))
@click.option('--data', required=True, type=click.Path(dir_okay=False, exists=True), help='The training zip.')
@click.option('--reference', required=True, type=click.Path(dir_okay=False, exists=True),
              help="The metric reference zip (the detector's calibration).")
@click.option('--device', default='cpu', show_default=True, help='Where the networks run (cuda on a GPU).')
@click.option('--samples', type=click.IntRange(min=0), default=0, show_default=True,
              help="Write this many of the last snapshot's images to RUN/samples.npz.")
@click.option('--follow', type=click.Path(dir_okay=False), default=None, metavar='MARKER',
              help='Probe the snapshots as they are written, until this file exists.')
@click.option('--delete-probed', is_flag=True, help='Delete each snapshot once probed and no longer the last.')
def main(run_dir, data, reference, device, samples, follow, delete_probed):
    """Probe every snapshot of a run (see the module docstring)."""
    torch.set_num_threads(1)
    device = torch.device(device)
    run_dir = Path(run_dir)
    out = run_dir / 'probes.jsonl'
    try:
        rows = complete_rows(out)
    except ResultsError as err:
        raise click.ClickException(str(err)) from None
    reals = load_images(data)
    probe = None
    while True:
        ended = follow is None or Path(follow).exists()  # read before the listing: no snapshot comes after it
        snapshots = sorted(run_dir.glob('network-snapshot-*.pkl'))
        todo = [path for path in snapshots if path.name not in rows]
        if todo and probe is None:
            probe = Probe(reals, reference, device)
        for path in todo:
            rows[path.name] = probe(path)
            temporary = out.with_suffix('.tmp')  # rewritten whole after each snapshot: an interruption keeps the
            temporary.write_text(''.join(json.dumps(row) + '\n' for row in sorted(rows.values(),
                                                                                   key=lambda r: r['kimg'])))
            temporary.replace(out)  # rows done so far
        if delete_probed:
            for path in snapshots[:-1]:
                path.unlink()
            snapshots = snapshots[-1:]
        if snapshots and (todo or not (run_dir / 'fakes-final.png').is_file() or
                          (samples and not (run_dir / 'samples.npz').is_file())):
            with open(snapshots[-1], 'rb') as f:
                G_ema = pickle.load(f)['G_ema'].eval().requires_grad_(False).to(device)
            save_grid(generate(G_ema, 16, seed=3), run_dir / 'fakes-final.png')
            if samples:
                write_samples(G_ema, samples, run_dir / 'samples.npz', snapshots[-1].name)
        if ended:
            break
        time.sleep(FOLLOW_POLL_SECONDS)
    if not snapshots:
        raise click.ClickException(f'{run_dir}: no snapshots')
    print(f'{run_dir}: probed {len(rows)} snapshot(s) into {out}')


class Probe:
    """The measurements of one snapshot (see the module docstring), with the detectors calibrated once."""

    def __init__(self, reals, reference, device):
        self.reals, self.device = reals, device
        self.threshold, self.sensitivity = calibrate(load_images(reference, CALIBRATION_IMAGES))
        self.rotation, self.rotation_threshold, self.rotation_sensitivity = rotation_detector(
            load_images(reference, ROTATION_TRAINING_IMAGES + ROTATION_CALIBRATION_IMAGES), device=device)

    def __call__(self, path):
        """The snapshot's row."""
        with open(path, 'rb') as f:
            snapshot = pickle.load(f)
        G, D, G_ema = (snapshot[name].eval().requires_grad_(False).to(self.device) for name in ('G', 'D', 'G_ema'))
        fakes = generate(G, len(self.reals), seed=1)
        real_score, real_norm = scores_and_norms(D, self.reals, G.c_dim)
        fake_score, fake_norm = scores_and_norms(D, fakes, G.c_dim)
        leak_fakes = generate(G_ema, FAKES_FOR_LEAKS, seed=2)
        return dict(
            snapshot=path.name, kimg=snapshot_kimg(path.name), real_score=real_score, fake_score=fake_score,
            real_grad_norm=real_norm, fake_grad_norm=fake_norm,
            jigsaw_rate=(seam_scores(leak_fakes) > self.threshold).float().mean().item(),
            jigsaw_threshold=self.threshold, jigsaw_sensitivity=self.sensitivity,
            rotation_rate=(self.rotation(leak_fakes) > self.rotation_threshold).float().mean().item(),
            rotation_threshold=self.rotation_threshold,
            rotation_sensitivity=self.rotation_sensitivity)


if __name__ == '__main__':
    main()
