"""Speed of the Primitives-PS synthesizers (plugins/primitives): images/second/core for each synthesizer, and
the projected time to write 10,000 Primitives-PS images with all cores (goal: under 5 minutes at 256x256).

    python benchmarks/primitives_speed.py [--resolution 256] [--images 40] [--end-to-end 400]

Per-core rates come from one process, by wall clock and by CPU time (the latter is less disturbed by other
load on a shared machine). --end-to-end N also writes N images to a temporary zip with all cores, as
`python -m plugins.primitives` does, and projects from that measured rate.
"""

import os
import tempfile
import time

import click

from plugins.primitives.synth import SYNTHESIZERS, synthesize
from plugins.primitives.writer import available_cores, encode_png, write_dataset

TARGET_IMAGES = 10_000


def _rates(name, resolution, images, with_png):
    """(wall-clock, CPU-time) images per second of one process."""
    synthesize(name, 0, images, resolution)  # Warm-up.
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    for index in range(images):
        image = synthesize(name, 0, index, resolution)
        if with_png:
            encode_png(image)
    return images / (time.perf_counter() - wall_start), images / (time.process_time() - cpu_start)


@click.command()
@click.option('--resolution', type=int, default=256, show_default=True)
@click.option('--images', type=click.IntRange(min=1), default=40, show_default=True,
              help='Images timed per synthesizer.')
@click.option('--end-to-end', 'end_to_end', type=click.IntRange(min=0), default=400, show_default=True,
              help='Images written to a temporary zip with all cores (0: skip).')
def main(resolution, images, end_to_end):
    """Print images/second/core per synthesizer and the projected time for 10,000 Primitives-PS images."""
    cores = available_cores()
    print(f'{resolution}x{resolution}, {images} images per synthesizer, {cores} cores, load average '
          f'{os.getloadavg()[0]:.2f}')
    print(f'{"synthesizer":<15}{"img/s/core (wall)":>20}{"(cpu)":>10}{"+PNG (wall)":>14}{"(cpu)":>10}')
    writing_rates = {}
    for name in SYNTHESIZERS:
        wall, cpu = _rates(name, resolution, images, with_png=False)
        writing_rates[name] = wall_png, cpu_png = _rates(name, resolution, images, with_png=True)
        print(f'{name:<15}{wall:>20.1f}{cpu:>10.1f}{wall_png:>14.1f}{cpu_png:>10.1f}')
    per_core = writing_rates['primitives-ps'][0]
    print(f'Projected from the per-core rate (+PNG, wall): {TARGET_IMAGES} primitives-ps images on {cores} cores '
          f'in {TARGET_IMAGES / (per_core * cores):.0f} s')
    if end_to_end:
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            write_dataset(os.path.join(folder, 'bench.zip'), 'primitives-ps', end_to_end, resolution, 0,
                          workers=cores, progress=False)
            rate = end_to_end / (time.perf_counter() - start)
        print(f'End to end: {end_to_end} primitives-ps images written at {rate:.1f} img/s with {cores} workers; '
              f'{TARGET_IMAGES} images projected in {TARGET_IMAGES / rate:.0f} s')


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
