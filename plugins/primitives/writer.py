"""Writes a synthetic dataset in the layout of upstream's `dataset_tool.py`, which
`training.dataset.ImageFolderDataset` reads: `00000/img00000000.png` (one folder per 1000 images),
uncompressed PNGs, and `dataset.json` = {"labels": null, "synthesizer": {the settings}}; as a zip, or a folder
when the path has no .zip suffix. Output appears atomically: everything goes to a hidden sibling that is renamed into place at the end.
"""

import contextlib
import functools
import io
import json
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import zipfile

import numpy as np
import PIL.Image
from tqdm import tqdm

from .synth import NUM_SHAPES, synthesize

PREVIEW_COLUMNS = 4
PREVIEW_IMAGES = 16
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)       # Fixed timestamps: equal options give byte-identical zips.


def archive_name(index):
    """Name of image `index` inside the dataset, as upstream's dataset_tool.py writes it."""
    digits = f'{index:08d}'
    return f'{digits[:5]}/img{digits}.png'


def is_zip_path(path):
    return os.path.splitext(str(path))[1].lower() == '.zip'


def available_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()


def encode_png(image):
    """Uncompressed PNG bytes of a uint8 HWC RGB image (dataset_tool.py uses compress_level=0 as well)."""
    buffer = io.BytesIO()
    PIL.Image.fromarray(image, 'RGB').save(buffer, format='png', compress_level=0, optimize=False)
    return buffer.getvalue()


def render_png(synth, seed, resolution, particles, size, index):
    return encode_png(synthesize(synth, seed, index, resolution, particles, size))


def preview_grid(images, columns=PREVIEW_COLUMNS):
    """Tile HWC images row by row into one image; missing cells in the last row stay black."""
    rows = -(-len(images) // columns)
    columns = min(columns, len(images))
    height, width, channels = images[0].shape
    grid = np.zeros((rows * height, columns * width, channels), dtype=np.uint8)
    for i, image in enumerate(images):
        row, column = divmod(i, columns)
        grid[row * height:(row + 1) * height, column * width:(column + 1) * width] = image
    return grid


def hidden_sibling(path, tag):
    """A hidden name beside `path` for a write in progress ('tmp') or the output it replaces ('old'), which names the
    writing process so that `remove_stale_siblings` can tell a killed writer's files from a running one's."""
    head, tail = os.path.split(os.path.abspath(path))
    return os.path.join(head, f'.{tail}.{tag}-{os.getpid()}-{secrets.token_hex(4)}')


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_siblings(path):
    """Clean up after killed writers of `path`: a hidden sibling of a process that no longer runs is removed, except
    an 'old' one (the replaced output) while `path` is missing (the kill fell between the two renames): that one is
    put back. Returns the names it removed or put back."""
    head, tail = os.path.split(os.path.abspath(path))
    pattern = re.compile(rf'\.{re.escape(tail)}\.(tmp|old)-(\d+)-[0-9a-f]+')
    cleaned = []
    for name in sorted(os.listdir(head)) if os.path.isdir(head) else []:
        match = pattern.fullmatch(name)
        if match is None or _running(int(match[2])):
            continue
        sibling = os.path.join(head, name)
        if match[1] == 'old' and not os.path.lexists(path):
            os.rename(sibling, path)
        else:
            _remove(sibling)
        cleaned.append(name)
    return cleaned


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def _move_into_place(source, target, overwrite):
    """Rename `source` to `target`; an existing target is only replaced when `overwrite` is set."""
    if not os.path.lexists(target):
        os.rename(source, target)
        return
    if not overwrite:
        raise FileExistsError(f'{target} already exists')
    aside = hidden_sibling(target, 'old')
    os.rename(target, aside)
    try:
        os.rename(source, target)
    except BaseException:
        os.rename(aside, target)
        raise
    _remove(aside)


@contextlib.contextmanager
def _open_archive(path, as_zip):
    """Yields write(name, data) into a new zip (ZIP_STORED, like dataset_tool.py) or a new folder at `path`."""
    if as_zip:
        with zipfile.ZipFile(path, mode='x', compression=zipfile.ZIP_STORED) as archive:
            def write_to_zip(name, data):
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
                info.external_attr = 0o644 << 16
                archive.writestr(info, data)
            yield write_to_zip
    else:
        os.mkdir(path)

        def write_to_folder(name, data):
            file_path = os.path.join(path, name)
            os.makedirs(os.path.dirname(file_path), exist_ok=True)
            with open(file_path, 'xb') as file:
                file.write(data)
        yield write_to_folder


def _ignore_sigint():
    """Pool workers leave Ctrl-C to the parent, which stops them and cleans up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _rendered_pngs(render, count, workers):
    """Yields an iterator over the PNG bytes of images 0..count-1 in order, rendered by a Pool of `workers`
    processes (inline when 1); leaving the context stops the pool."""
    if workers == 1:
        yield map(render, range(count))
        return
    chunksize = max(1, min(64, count // (workers * 8)))
    with multiprocessing.Pool(workers, initializer=_ignore_sigint) as pool:
        yield pool.imap(render, range(count), chunksize=chunksize)


def write_dataset(outdir, synth, count, resolution, seed, workers=None, overwrite=False, preview=None,
                  progress=True, particles=NUM_SHAPES, size='decay'):
    """Write images 0..count-1 of `synth` (seed `seed`, `resolution`^2, `particles` shapes of size policy `size`)
    to `outdir` (a .zip or a folder) and, when `preview` is a path, a PNG grid of the first images; dataset.json
    records the settings beside upstream's "labels". Nothing appears at either path unless the whole dataset was
    written; an existing output is replaced only with `overwrite`. Options are assumed valid (the command line
    checks them)."""
    for target in (outdir, preview):
        if target is not None:
            remove_stale_siblings(target)
    for target in (outdir, preview):
        if target is not None and os.path.lexists(target) and not overwrite:
            raise FileExistsError(f'{target} already exists')
    workers = min(workers or available_cores(), count)
    render = functools.partial(render_png, synth, seed, resolution, particles, size)
    settings = dict(synth=synth, seed=seed, resolution=resolution, count=count, particles=particles, size=size)
    temporary_outdir = hidden_sibling(outdir, 'tmp')
    temporary_preview = hidden_sibling(preview, 'tmp') if preview else None
    preview_images = []
    try:
        with _open_archive(temporary_outdir, is_zip_path(outdir)) as write, \
                _rendered_pngs(render, count, workers) as pngs:
            for index, png in enumerate(tqdm(pngs, total=count, unit='img', disable=not progress)):
                write(archive_name(index), png)
                if preview and index < PREVIEW_IMAGES:
                    preview_images.append(np.asarray(PIL.Image.open(io.BytesIO(png))))
            write('dataset.json', json.dumps({'labels': None, 'synthesizer': settings}).encode())
        if preview:
            PIL.Image.fromarray(preview_grid(preview_images)).save(temporary_preview, format='png')
        _move_into_place(temporary_outdir, outdir, overwrite)
        if preview:
            _move_into_place(temporary_preview, preview, overwrite)
    finally:
        for leftover in (temporary_outdir, temporary_preview):
            if leftover:
                _remove(leftover)
