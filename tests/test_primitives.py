"""Tests of the Primitives-PS data synthesizers, dataset writer and on-the-fly dataset (plugins/primitives)."""

import dataclasses
import io
import json
import os
import pathlib
import pickle
import re
import subprocess
import sys
import time
import zipfile

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

from plugins.primitives import synth, writer
from tests import image_stats

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
from plugins.primitives.cli import main as cli_main  # noqa: E402

COUNT, RESOLUTION, SEED = 12, 32, 3


def _single_shape(shapes, i):
    return synth.Shapes(**{field.name: getattr(shapes, field.name)[i:i + 1] for field in dataclasses.fields(shapes)})


def _pixel_distances(mask, centre):
    rows, columns = np.nonzero(mask)
    return np.hypot(columns + 0.5 - centre[0], rows + 0.5 - centre[1])


# ---------------------------------------------------------------------------------------------------------------
# Synthesizers.

@pytest.mark.parametrize('name', synth.SYNTHESIZERS)
def test_images_are_pure_functions_of_seed_and_index(name):
    image = synth.synthesize(name, SEED, 5, 64)
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3) and image.flags.c_contiguous
    assert image.tobytes() == synth.synthesize(name, SEED, 5, 64).tobytes()
    assert not np.array_equal(image, synth.synthesize(name, SEED, 6, 64))
    assert not np.array_equal(image, synth.synthesize(name, SEED + 1, 5, 64))


def test_synthesizers_differ_from_each_other():
    images = [synth.synthesize(name, SEED, 0, 64) for name in synth.SYNTHESIZERS]
    for i in range(len(images)):
        for j in range(i):
            assert not np.array_equal(images[i], images[j])


def test_unknown_synthesizer_is_rejected():
    with pytest.raises(ValueError, match='primitives-ps'):
        synth.synthesize('dead-leaves', 0, 0, 32)


def _released_sizes(shapes):
    """Each shape's released size parameter in design pixels: radius or larger semi-axis, line thickness,
    or a rectangle's larger side as OpenCV counts it (one less than the pixels it covers)."""
    along, across = shapes.half_extent.T
    return np.select([shapes.kind == synth.LINE, shapes.kind == synth.RECTANGLE],
                     [2 * across, 2 * np.maximum(along, across) - 1], np.maximum(along, across))


def test_decay_policy_bounds_every_shape_as_released():
    bound = synth.decay_max_sizes()
    assert bound[0] == 53 and bound[50] == 28 and bound[-1] == 3        # round(51 (N - n) / N + 2).
    sizes = []
    for index in range(40):
        shapes = synth.layout('primitives-ps', SEED, index, 256).shapes
        assert len(shapes) == synth.NUM_SHAPES == 100
        size = _released_sizes(shapes)
        assert np.all(size >= 1) and np.all(size <= bound - 1) and np.all(size == np.round(size))
        sizes.append(size)
    # The bound shrinks linearly, so sizes must fall; a Fix or Rand policy would fail this.
    mean_size = np.mean(sizes, axis=0)
    assert mean_size[:20].mean() > 3 * mean_size[-20:].mean()


def _all_sizes(size, particles=synth.NUM_SHAPES, images=30):
    """[image, shape] sizes in design pixels of the first `images` Primitives-PS layouts with these settings."""
    layouts = [synth.layout('primitives-ps', SEED, index, 256, particles, size).shapes for index in range(images)]
    assert all(len(shapes) == particles for shapes in layouts)
    return np.stack([_released_sizes(shapes) for shapes in layouts])


@pytest.mark.parametrize('fraction, pixels', [(0.1, 26), (0.2, 51), (0.5, 128)])
def test_fix_gives_every_shape_the_fraction_of_h(fraction, pixels):
    """Supplement Table 1, Fix (1/10, 1/5, 1/2): every size is round(f 256) design pixels, both axes alike."""
    sizes = _all_sizes(f'fix{fraction:g}', images=10)
    assert np.all(sizes == pixels)
    shapes = synth.layout('primitives-ps', SEED, 0, 64, 100, f'fix{fraction:g}').shapes   # scaled like the rest
    round_shapes = (shapes.kind == synth.CIRCLE) | (shapes.kind == synth.ELLIPSE)
    np.testing.assert_allclose(shapes.half_extent[round_shapes], pixels / 4)


def test_rand_draws_every_size_uniformly_without_decay():
    sizes = _all_sizes('rand', images=60)
    assert sizes.min() == 1 and sizes.max() == synth.RAND_BOUND - 1 == 52
    # Uniform over 1..52 (a shape's larger semi-axis or side is the larger of two draws: mean 2/3 of the range).
    first, last = sizes[:, :20].mean(), sizes[:, -20:].mean()
    assert abs(first - last) < 3 and 30 < sizes.mean() < 40     # no decay: the last shapes as large as the first


def test_particles_sets_the_number_of_shapes_and_zero_leaves_the_background_and_salient_object():
    for particles in (10, 50, 500):
        sizes = _all_sizes('decay', particles, images=5)
        assert np.all(sizes <= synth.decay_max_sizes(particles) - 1)  # Decay's bound follows N
    background_rng, _, salient_rng, texture_rng = synth._random_streams('primitives-ps', SEED, 3)
    image = synth.synthesize('primitives-ps', SEED, 3, 64, particles=0)
    salient = synth.sample_salient_object(salient_rng, 64)
    inside = synth.shape_mask(salient, 64)
    expected = synth.pink_noise(background_rng, 64)
    expected[inside] = synth.pink_noise(texture_rng, 64)[inside]
    np.testing.assert_array_equal(image, expected)   # PinkNoise+PS: pink background, pink-textured salient object
    assert len(synth.layout('primitives-ps', SEED, 3, 64, particles=0).shapes) == 0


def test_shape_settings_are_checked():
    for settings, message in [(dict(particles=-1), 'particles must be an integer >= 0'),
                              (dict(particles=2.5), 'particles must be an integer >= 0'),
                              (dict(size='fix0'), "size policy 'fix0' is not decay, rand or fix<f>"),
                              (dict(size='fix1.5'), 'with 0 < f <= 1'), (dict(size='grow'), 'e.g. fix0.2')]:
        with pytest.raises(ValueError, match=re.escape(message)):
            synth.synthesize('primitives', SEED, 0, 16, **settings)
    with pytest.raises(ValueError, match='pinknoise draws no shapes'):
        synth.synthesize('pinknoise', SEED, 0, 16, particles=10)


def test_other_resolutions_scale_the_256_design():
    for name in ('primitives', 'primitives-s'):
        design, scaled = synth.layout(name, SEED, 4, 256), synth.layout(name, SEED, 4, 64)
        for part in ('shapes', 'salient'):
            if getattr(design, part) is not None:
                np.testing.assert_allclose(getattr(scaled, part).centre, getattr(design, part).centre / 4)
                np.testing.assert_allclose(getattr(scaled, part).half_extent, getattr(design, part).half_extent / 4)
    # Downsampling the 256x256 image by 4 gives nearly the 64x64 one (they differ only where edges fall).
    large = synth.synthesize('primitives-s', SEED, 4, 256).astype(np.float64)
    small = synth.synthesize('primitives-s', SEED, 4, 64).astype(np.float64)
    assert np.mean(np.abs(large.reshape(64, 4, 64, 4, 3).mean(axis=(1, 3)) - small)) < 12


def test_shape_types_and_geometry_follow_the_released_draws():
    shapes = [synth.layout('primitives', SEED, index, 256).shapes for index in range(60)]
    kinds = np.concatenate([s.kind for s in shapes])
    np.testing.assert_allclose(np.bincount(kinds, minlength=4) / kinds.size, synth.SHAPE_PROBABILITIES, atol=0.03)
    angles = np.concatenate([s.angle[s.kind == synth.LINE] for s in shapes])
    assert angles.min() >= 0 and angles.max() <= np.pi / 2               # End points sorted on each axis.
    assert np.all(np.concatenate([s.angle[s.kind == synth.RECTANGLE] for s in shapes]) == 0)
    degrees = np.degrees(np.concatenate([s.angle[s.kind == synth.ELLIPSE] for s in shapes]))
    np.testing.assert_allclose(degrees, np.round(degrees), atol=1e-9)
    assert degrees.min() >= 0 and degrees.max() <= 179 and degrees.max() > 150


def test_shapes_rasterise_inside_their_reach_and_rectangles_fill_their_box():
    shapes = synth.layout('primitives', SEED, 0, 256).shapes
    reach = shapes.reach()
    for i in range(len(shapes)):
        mask = synth.shape_mask(_single_shape(shapes, i), 256)
        assert np.all(_pixel_distances(mask, shapes.centre[i]) <= reach[i] + 1e-9)
        if shapes.kind[i] == synth.RECTANGLE and mask.any():
            rows, columns = np.nonzero(mask)
            assert mask[rows.min():rows.max() + 1, columns.min():columns.max() + 1].all()


@pytest.mark.parametrize('name', ['primitives-s', 'primitives-ps'])
def test_salient_object_is_central_and_sized_as_released(name):
    kinds = []
    for index in range(60):
        salient = synth.layout(name, SEED, index, 256).salient
        assert len(salient) == 1 and salient.kind[0] in synth.SALIENT_KINDS and salient.angle[0] == 0
        kinds.append(salient.kind[0])
        along, across = salient.half_extent[0]
        if salient.kind[0] == synth.RECTANGLE:
            assert 97 <= 2 * along <= 192 and 97 <= 2 * across <= 192
            assert np.all((salient.centre[0] - salient.half_extent[0] >= 32)
                          & (salient.centre[0] - salient.half_extent[0] <= 127))
        else:
            assert np.all((salient.centre[0] >= 103.5) & (salient.centre[0] <= 152.5))
            assert 64 <= min(along, across) and max(along, across) <= 95
            assert salient.kind[0] == synth.ELLIPSE or along == across
    assert set(kinds) == set(synth.SALIENT_KINDS)


def test_pink_noise_power_spectrum_falls_off_with_frequency():
    pink = [synth.synthesize('pinknoise', SEED, index, 128) for index in range(8)]
    assert np.median([image_stats.radial_power_slope(image) for image in pink]) < -1.0
    white = np.random.default_rng(0).integers(0, 256, size=(8, 128, 128, 3), dtype=np.uint8)
    assert abs(np.median([image_stats.radial_power_slope(image) for image in white])) < 0.2


def test_pink_noise_uses_the_full_range():
    image = synth.synthesize('pinknoise', SEED, 0, 64)
    assert image.min() == 0 and image.max() == 255


# ---------------------------------------------------------------------------------------------------------------
# Dataset writer and command line.

def test_archive_names_follow_dataset_tool():
    assert writer.archive_name(0) == '00000/img00000000.png'
    assert writer.archive_name(1234) == '00001/img00001234.png'
    assert writer.archive_name(99_999_999) == '99999/img99999999.png'


def _run_cli(*arguments):
    return CliRunner().invoke(cli_main, [str(argument) for argument in arguments])


@pytest.fixture(scope='module')
def written_datasets(tmp_path_factory):
    """The same dataset written with 1 and 2 workers as zips, and as a folder."""
    root = tmp_path_factory.mktemp('written')
    paths = {'zip1': root / 'one.zip', 'zip2': root / 'two.zip', 'folder': root / 'folder'}
    for key, path in paths.items():
        workers = 1 if key == 'zip1' else 2
        result = _run_cli('--outdir', path, '--count', COUNT, '--resolution', RESOLUTION, '--synth',
                          'primitives-ps', '--seed', SEED, '--workers', workers,
                          *(['--preview', root / 'grid.png'] if key == 'zip2' else []))
        assert result.exit_code == 0, result.output
    assert sorted(os.listdir(root)) == ['folder', 'grid.png', 'one.zip', 'two.zip']   # No temporary leftovers.
    return paths


def _expected_chw(index):
    return synth.synthesize('primitives-ps', SEED, index, RESOLUTION).transpose(2, 0, 1)


@pytest.mark.parametrize('key', ['zip1', 'zip2', 'folder'])
def test_written_dataset_loads_with_upstream_image_folder_dataset(written_datasets, key):
    from training.dataset import ImageFolderDataset
    dataset = ImageFolderDataset(path=str(written_datasets[key]), use_labels=True, max_size=None, xflip=False)
    assert len(dataset) == COUNT and dataset.resolution == RESOLUTION and dataset.num_channels == 3
    assert not dataset.has_labels
    for index in range(COUNT):
        image, _label = dataset[index]
        np.testing.assert_array_equal(image, _expected_chw(index))
    dataset.close()


def test_written_zip_has_dataset_tool_layout_and_is_reproducible(written_datasets):
    with zipfile.ZipFile(written_datasets['zip1']) as archive:
        assert archive.namelist() == [writer.archive_name(i) for i in range(COUNT)] + ['dataset.json']
        assert json.loads(archive.read('dataset.json')) == {'labels': None, 'synthesizer': dict(
            synth='primitives-ps', seed=SEED, resolution=RESOLUTION, count=COUNT, particles=100, size='decay')}
    assert written_datasets['zip1'].read_bytes() == written_datasets['zip2'].read_bytes()
    assert sorted(p.relative_to(written_datasets['folder']).as_posix()
                  for p in written_datasets['folder'].rglob('*') if p.is_file()) == sorted(
        [writer.archive_name(i) for i in range(COUNT)] + ['dataset.json'])


def test_preview_grid_shows_the_first_images(written_datasets):
    grid = np.asarray(PIL.Image.open(written_datasets['zip1'].parent / 'grid.png'))
    columns = writer.PREVIEW_COLUMNS
    assert grid.shape == (3 * RESOLUTION, columns * RESOLUTION, 3)
    np.testing.assert_array_equal(grid[RESOLUTION:2 * RESOLUTION, :RESOLUTION],
                                  _expected_chw(columns).transpose(1, 2, 0))


@pytest.mark.parametrize('arguments, message', [
    (['--resolution', 48], '48 is not a power of two'),
    (['--resolution', 2], '2 is not a power of two'),
    (['--count', 0], "'--count'"),
    (['--synth', 'dead-leaves'], "'dead-leaves' is not one of 'pinknoise', 'primitives', 'primitives-s', 'primitives-ps'"),
    (['--workers', 0], "'--workers'"),
    (['--preview', 'grid.jpg'], 'must end in .png'),
])
def test_bad_options_fail_clearly_and_write_nothing(tmp_path, arguments, message):
    options = {'--outdir': tmp_path / 'out.zip', '--count': 4, '--resolution': 8}
    options.update(dict(zip(arguments[::2], arguments[1::2])))
    if '--preview' in options:
        options['--preview'] = tmp_path / options['--preview']
    result = _run_cli(*[item for pair in options.items() for item in pair])
    assert result.exit_code == 2 and message in result.output, result.output
    assert os.listdir(tmp_path) == []


def test_missing_parent_directory_is_rejected(tmp_path):
    result = _run_cli('--outdir', tmp_path / 'missing' / 'out.zip', '--count', 2, '--resolution', 8)
    assert result.exit_code == 2 and 'does not exist' in result.output
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(hasattr(os, 'geteuid') and os.geteuid() == 0, reason='root can write anywhere')
def test_unwritable_parent_directory_is_rejected(tmp_path):
    locked = tmp_path / 'locked'
    locked.mkdir(mode=0o500)
    result = _run_cli('--outdir', locked / 'out', '--count', 2, '--resolution', 8)
    assert result.exit_code == 2 and 'not writable' in result.output


@pytest.mark.parametrize('name', ['out.zip', 'out'])
def test_existing_output_needs_overwrite_which_replaces_only_a_dataset(tmp_path, name):
    target = tmp_path / name
    write = ['--outdir', target, '--count', 2, '--resolution', 8, '--workers', 1]
    assert _run_cli(*write).exit_code == 0
    written = sorted(p.name for p in tmp_path.rglob('*'))
    result = _run_cli(*write, '--seed', 1)
    assert result.exit_code == 2 and '--overwrite' in result.output
    result = _run_cli(*write, '--seed', 1, '--overwrite')
    assert result.exit_code == 0, result.output
    assert (zipfile.is_zipfile(target) if name.endswith('.zip') else (target / 'dataset.json').is_file())
    assert sorted(p.name for p in tmp_path.rglob('*')) == written

    other = tmp_path / ('notes.zip' if name.endswith('.zip') else 'notes')
    if name.endswith('.zip'):
        other.write_bytes(b'keep me')
    else:
        other.mkdir()
        (other / 'notes.txt').write_bytes(b'keep me')
    result = _run_cli('--outdir', other, '--count', 2, '--resolution', 8, '--overwrite', '--workers', 1)
    assert result.exit_code == 2 and '--overwrite replaces only a dataset this tool wrote' in result.output
    assert ('it is not a zip file' if name.endswith('.zip') else "which is not part of a dataset") in result.output
    assert (other if name.endswith('.zip') else other / 'notes.txt').read_bytes() == b'keep me'

    photos = tmp_path / ('photos.zip' if name.endswith('.zip') else 'photos')  # PNGs, but not a dataset
    if name.endswith('.zip'):
        with zipfile.ZipFile(photos, 'w') as archive:
            archive.writestr('holiday.png', b'png bytes')
    else:
        photos.mkdir()
        (photos / 'holiday.png').write_bytes(b'png bytes')
    result = _run_cli('--outdir', photos, '--count', 2, '--resolution', 8, '--overwrite', '--workers', 1)
    assert result.exit_code == 2 and 'it has no dataset.json' in result.output


def test_failure_midway_leaves_nothing_behind(tmp_path, monkeypatch):
    def failing_synthesize(name, seed, index, resolution, particles, size):
        if index == 5:
            raise RuntimeError('synthesizer failed')
        return synth.synthesize(name, seed, index, resolution, particles, size)
    monkeypatch.setattr(writer, 'synthesize', failing_synthesize)
    for target in (tmp_path / 'out.zip', tmp_path / 'out'):
        with pytest.raises(RuntimeError, match='synthesizer failed'):
            writer.write_dataset(str(target), 'primitives', 8, 8, 0, workers=1, preview=str(tmp_path / 'g.png'),
                                 progress=False)
    assert os.listdir(tmp_path) == []


def dead_pid():
    process = subprocess.Popen(['true'])
    process.wait()
    return process.pid


def test_a_killed_writers_temporary_is_removed_by_the_next_write_of_that_name(tmp_path):
    target = tmp_path / 'out.zip'
    process = subprocess.Popen([sys.executable, '-m', 'plugins.primitives', '--outdir', str(target), '--count', '5000',
                                '--resolution', '32', '--workers', '1'], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while not os.listdir(tmp_path) and process.poll() is None and time.time() < deadline:
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    (stale,) = os.listdir(tmp_path)
    assert stale.startswith(f'.out.zip.tmp-{process.pid}-')
    writer.write_dataset(str(target), 'primitives', 4, 8, 0, workers=1, progress=False)
    assert sorted(os.listdir(tmp_path)) == ['out.zip']


def test_a_replaced_dataset_set_aside_by_a_killed_writer_is_put_back(tmp_path):
    target = tmp_path / 'out.zip'
    writer.write_dataset(str(target), 'primitives', 4, 8, 0, workers=1, progress=False)
    original = target.read_bytes()
    aside = tmp_path / f'.out.zip.old-{dead_pid()}-0123abcd'  # killed between its two renames
    target.rename(aside)
    with pytest.raises(FileExistsError, match='out.zip already exists'):
        writer.write_dataset(str(target), 'primitives', 4, 8, 1, workers=1, progress=False)
    assert os.listdir(tmp_path) == ['out.zip'] and target.read_bytes() == original
    aside.write_bytes(b'the replaced one')  # both there: the kill came after the new one was in place
    assert writer.remove_stale_siblings(str(target)) == [aside.name]
    assert os.listdir(tmp_path) == ['out.zip'] and target.read_bytes() == original


def test_a_running_writers_temporary_is_left_alone(tmp_path):
    running = tmp_path / f'.out.zip.tmp-{os.getpid()}-0123abcd'
    running.write_bytes(b'')
    assert writer.remove_stale_siblings(str(tmp_path / 'out.zip')) == [] and running.exists()


# ---------------------------------------------------------------------------------------------------------------
# On-the-fly dataset.

def test_synthetic_dataset_matches_the_writer(written_datasets):
    import dnnlib
    dataset = dnnlib.util.construct_class_by_name(
        class_name='plugins.primitives.SyntheticDataset', path=f'synth:primitives-ps?n={COUNT}&res={RESOLUTION}&seed={SEED}',
        use_labels=True, max_size=None, xflip=False)
    assert dataset.name == f'primitives-ps-{RESOLUTION}-n{COUNT}-seed{SEED}'
    assert len(dataset) == COUNT and dataset.resolution == RESOLUTION and dataset.label_dim == 0
    with zipfile.ZipFile(written_datasets['zip1']) as archive:
        for index in range(COUNT):
            image, label = dataset[index]
            assert label.shape == (0,)
            with archive.open(writer.archive_name(index)) as file:
                np.testing.assert_array_equal(image, np.asarray(PIL.Image.open(file)).transpose(2, 0, 1))
    restored = pickle.loads(pickle.dumps(dataset))
    np.testing.assert_array_equal(restored[3][0], dataset[3][0])


def test_synthetic_dataset_options_and_errors():
    from plugins.primitives.dataset import SyntheticDataset
    dataset = SyntheticDataset(path='synth:pinknoise?n=10000', resolution=16, xflip=True, max_size=5, random_seed=1)
    assert dataset.name == 'pinknoise-16-n10000-seed0' and len(dataset) == 10 and dataset.resolution == 16
    np.testing.assert_array_equal(dataset[5][0], dataset[0][0][:, :, ::-1])
    for path, message in [('data.zip', "must start with 'synth:'"),
                          ('synth:leaves?n=4', 'valid: pinknoise, primitives'),
                          ('synth:primitives?colour=4', 'unknown option'),
                          ('synth:primitives?size=fix2', "size policy 'fix2' is not decay, rand or fix<f>"),
                          ('synth:primitives?particles=many', 'not a non-negative integer'),
                          ('synth:pinknoise?particles=10', 'pinknoise draws no shapes'),
                          ('synth:primitives-ps?res=16&res=32', "option 'res' is given twice"),
                          ('synth:primitives?n=-4', 'not a non-negative integer'),
                          ('synth:primitives?n=0', 'n must be >= 1'),
                          ('synth:primitives?res=48', 'not a power of two'),
                          ('synth:primitives?res=16&seed=1', None)]:
        if message is None:         # A stream refuses --mirror and --subset.
            with pytest.raises(IOError, match='endless stream'):
                SyntheticDataset(path=path, xflip=True)
            with pytest.raises(IOError, match='endless stream'):
                SyntheticDataset(path=path, max_size=100)
            continue
        with pytest.raises(IOError, match=message):
            SyntheticDataset(path=path)
    with pytest.raises(IOError, match='resolution 32'):
        SyntheticDataset(path='synth:primitives?res=32', resolution=64)
    ablation = SyntheticDataset(path='synth:primitives-ps?res=16&seed=2&particles=50&size=fix0.2')
    assert ablation.name == 'primitives-ps-16-stream-seed2-particles50-sizefix0.2'
    np.testing.assert_array_equal(ablation[7][0], synth.synthesize('primitives-ps', 2, 7, 16, 50, 'fix0.2')
                                  .transpose(2, 0, 1))


def test_the_command_line_writes_and_records_the_ablations(tmp_path):
    result = _run_cli('--outdir', tmp_path / 'fix.zip', '--count', 3, '--resolution', 16, '--particles', 50,
                      '--size-policy', 'fix', '--fix-size', 0.2, '--seed', SEED, '--workers', 1)
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / 'fix.zip') as archive:
        assert json.loads(archive.read('dataset.json'))['synthesizer'] == dict(
            synth='primitives-ps', seed=SEED, resolution=16, count=3, particles=50, size='fix0.2')
        png = archive.read(writer.archive_name(2))
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(io.BytesIO(png))),
                                  synth.synthesize('primitives-ps', SEED, 2, 16, 50, 'fix0.2'))
    for arguments, message in [(['--size-policy', 'fix'], '--size-policy fix takes --fix-size'),
                               (['--fix-size', 0.2], '--size-policy fix takes --fix-size'),
                               (['--size-policy', 'fix', '--fix-size', 2], '0<x<=1'),
                               (['--synth', 'pinknoise', '--particles', 10], 'pinknoise draws no shapes'),
                               (['--particles', -1], '-1 is not in the range x>=0')]:
        result = _run_cli('--outdir', tmp_path / 'bad.zip', '--count', 3, '--resolution', 16, *arguments)
        assert result.exit_code == 2 and message in result.output, (arguments, result.output)
        assert not (tmp_path / 'bad.zip').exists()


# ---------------------------------------------------------------------------------------------------------------
# Distributions against the authors' released synthesizers.

# Medians over 1000 images at 256x256 of the released `pretrain/noise_dataset.py` (np.random.seed(1000 + i)
# for image i; Primitives is `dead_leaves` without its salient object), under the functions of image_stats.
RELEASED_MEDIANS = {
    'pinknoise': {'radial_power_slope': -3.063, 'neighbour_difference': 0.00170, 'colour_cast': 0.152},
    'primitives': {'neighbour_difference': 0.0208, 'most_common_colour': 0.286},
    'primitives-s': {'neighbour_difference': 0.0145, 'most_common_colour': 0.311, 'second_colour': 0.218},
    'primitives-ps': {'radial_power_slope': -2.617, 'neighbour_difference': 0.0165, 'colour_cast': 0.0657},
}
STATISTICS = {
    'radial_power_slope': image_stats.radial_power_slope,
    'neighbour_difference': image_stats.neighbour_difference,
    'colour_cast': image_stats.colour_cast,
    'most_common_colour': lambda image: image_stats.colour_shares(image)[0],
    'second_colour': lambda image: image_stats.colour_shares(image)[1],
}
DISTRIBUTION_IMAGES = 400       # The pink-noise colour cast varies so much between images that 120 give +-20%.


@pytest.mark.slow
@pytest.mark.parametrize('name', synth.SYNTHESIZERS)
def test_written_images_match_the_released_distributions(tmp_path, name):
    target = tmp_path / name
    subprocess.run([sys.executable, '-m', 'plugins.primitives', '--outdir', str(target), '--count',
                    str(DISTRIBUTION_IMAGES), '--resolution', '256', '--synth', name, '--seed', '0'],
                   cwd=REPO_ROOT, check=True, capture_output=True)
    images = [np.asarray(PIL.Image.open(path)) for path in sorted(target.rglob('*.png'))]
    assert len(images) == DISTRIBUTION_IMAGES and images[0].shape == (256, 256, 3)
    for statistic, released in RELEASED_MEDIANS[name].items():
        ours = np.median([STATISTICS[statistic](image) for image in images])
        tolerance = 0.3 if statistic == 'radial_power_slope' else 0.15 * abs(released)
        assert abs(ours - released) <= tolerance, (statistic, ours, released)


# ---------------------------------------------------------------------------------------------------------------
# Endless stream.

def test_stream_draws_are_pure_functions_of_seed_and_draw_index():
    from plugins.primitives.dataset import STREAM_LENGTH, SyntheticDataset
    stream = SyntheticDataset(path='synth:primitives-ps?res=16&seed=2', max_size=STREAM_LENGTH)
    assert stream.name == 'primitives-ps-16-stream-seed2' and len(stream) == STREAM_LENGTH
    far = 10 ** 9
    np.testing.assert_array_equal(stream[far][0], synth.synthesize('primitives-ps', 2, far, 16).transpose(2, 0, 1))
    np.testing.assert_array_equal(stream[far][0], pickle.loads(pickle.dumps(stream))[far][0])
    assert not np.array_equal(stream[far][0], stream[far + 1][0])
    assert stream[far][1].shape == (0,)


@pytest.mark.slow
def test_stream_never_repeats_an_image_within_100000_draws():
    from plugins.primitives.dataset import SyntheticDataset
    stream = SyntheticDataset(path='synth:pinknoise?res=4&seed=0')
    digests = {stream[draw][0].tobytes() for draw in range(100_000)}
    assert len(digests) == 100_000


def test_stream_sampler_shares_the_draws_between_processes():
    from plugins.primitives.dataset import SyntheticDataset
    import itertools
    stream = SyntheticDataset(path='synth:primitives?res=8')
    draws = [list(itertools.islice(iter(stream.make_sampler(rank=rank, num_replicas=2, seed=5)), 4)) for rank in (0, 1)]
    assert draws == [[0, 2, 4, 6], [1, 3, 5, 7]]
    fixed = SyntheticDataset(path='synth:primitives?res=8&n=20')
    from torch_utils.misc import InfiniteSampler
    assert (list(itertools.islice(iter(fixed.make_sampler(rank=0, num_replicas=1, seed=5)), 30)) ==
            list(itertools.islice(iter(InfiniteSampler(fixed, rank=0, num_replicas=1, seed=5)), 30)))
