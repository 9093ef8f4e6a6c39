"""The four data synthesizers of Primitives-PS (supplementary, Sec. 1 and Sec. 10), following the authors'
released `pretrain/noise_dataset.py` (`generate_rgb_noise`, `inject_particles`, `inject_saliency`,
`dead_leaves`, `pink_leaves`).

Pure numpy. Every image is a pure function of (synthesizer, seed, index, resolution): its random numbers
come from `np.random.SeedSequence` children of `[seed, index, synth_id]`, never from global state. The
released code draws in fixed 256-pixel coordinates; here every shape is drawn from the same integer
distributions on that 256-pixel design and then scaled by H/256, so other resolutions look like the
256x256 image resized (docs/methods.md, "Pretraining on Primitives-PS").
"""

from dataclasses import dataclass

import numpy as np

SYNTHESIZERS = ('pinknoise', 'primitives', 'primitives-s', 'primitives-ps')
SYNTH_IDS = {name: synth_id for synth_id, name in enumerate(SYNTHESIZERS)}

DESIGN = 256                                    # The released code's canvas, in whose pixels sizes are drawn.
NUM_SHAPES = 100                                # N, chosen by the ablation (Sec. 1, Table 1 lower).
SIZE_POLICIES = ('decay', 'rand', 'fix')        # Sec. 1, Table 1 upper; 'fix' takes a fraction of H: 'fix0.2'.
RAND_BOUND = DESIGN // 5 + 2                    # Rand's sizes 1 .. 52: Decay's range for the first shape.
LINE, CIRCLE, ELLIPSE, RECTANGLE = range(4)
SHAPE_NAMES = ('line', 'circle', 'ellipse', 'rectangle')
SHAPE_PROBABILITIES = (1 / 7, 2 / 7, 2 / 7, 2 / 7)
SALIENT_KINDS = (CIRCLE, ELLIPSE, RECTANGLE)    # Equally likely: the released draw skips the list's line.

COLOUR_LEVELS = 255                             # Colours and grey levels in 0..254, as released.
PINK_EXPONENT_RANGE = (0.5, 3.5)                # a, b ~ U[0.5, 3.5] per channel.
PINK_SAMPLE_SPACING = 0.2                       # Released `fftfreq(256, d=0.2)`: 51.2 design pixels per unit.
PINK_DC_FRACTION = 0.1                          # Released DC frequency: 0.1 x the first non-zero one.
PINK_EPSILON = 1e-6                             # Added to each axis' power, as released.
SALIENT_CENTRE = (DESIGN // 2 - DESIGN // 10, DESIGN // 2 + DESIGN // 10)     # [103, 153): circle/ellipse centre.
SALIENT_RADIUS = (DESIGN // 4, 3 * DESIGN // 8)                               # [64, 96): radius or semi-axes.
SALIENT_CORNER = (DESIGN // 8, DESIGN // 2)                                   # [32, 128): rectangle's corner.
SALIENT_SIDE = (3 * DESIGN // 8, 3 * DESIGN // 4)                             # [96, 192): rectangle's sides.


def decay_max_sizes(num_shapes=NUM_SHAPES):
    """Released Decay bound for the n-th shape, n = 0..N-1, in design pixels: round(H/5 (N-n)/N + 2) with
    H/5 taken as 256 // 5; sizes (radius, semi-axis, thickness, side) are drawn from 1 .. bound - 1."""
    n = np.arange(num_shapes)
    return np.round(DESIGN // 5 * (num_shapes - n) / num_shapes + 2).astype(np.int64)


def parse_size_policy(size):
    """('decay' | 'rand' | 'fix', fraction of H or None) of a size policy written 'decay', 'rand' or 'fix<f>'
    (0 < f <= 1, e.g. 'fix0.2'); ValueError naming the valid forms otherwise."""
    if size in ('decay', 'rand'):
        return size, None
    fraction = None
    if isinstance(size, str) and size.startswith('fix'):
        try:
            fraction = float(size[3:])
        except ValueError:
            pass
    if fraction is None or not 0 < fraction <= 1:
        raise ValueError(f'size policy {size!r} is not decay, rand or fix<f> with 0 < f <= 1 (e.g. fix0.2)')
    return 'fix', fraction


def fixed_size(fraction):
    """Fix's size in design pixels: the fraction of H, at least 1."""
    return max(1, round(fraction * DESIGN))


@dataclass(frozen=True)
class Shapes:
    """Shapes drawn in order, one array entry per shape, in pixels of the target resolution, where pixel
    (row i, column j) covers [j, j+1) x [i, i+1). `centre` is (x, y); `half_extent` is (along, across) the
    shape's axis: semi-axes of a circle or ellipse, half-sides of a rectangle, and for a line half its length
    between the end points and half its thickness (a line has round caps, as a thick OpenCV line has);
    `angle` turns the axis from +x towards +y, in radians; `colour` is RGB."""
    kind: np.ndarray
    centre: np.ndarray
    half_extent: np.ndarray
    angle: np.ndarray
    colour: np.ndarray

    def __len__(self):
        return len(self.kind)

    def reach(self):
        """Distance from the centre to the farthest point of each shape."""
        along, across = self.half_extent.T
        return np.select([self.kind == LINE, self.kind == RECTANGLE], [along + across, np.hypot(along, across)],
                         np.maximum(along, across))


@dataclass(frozen=True)
class Layout:
    """What an image is made of: the N decaying shapes (None for PinkNoise) and the salient object
    (None for PinkNoise and Primitives)."""
    shapes: Shapes | None
    salient: Shapes | None


def _random_streams(synth, seed, index):
    """Independent generators (background, shapes, salient object, texture) for one image."""
    root = np.random.SeedSequence([seed, index, SYNTH_IDS[synth]])
    return [np.random.default_rng(child) for child in root.spawn(4)]


def _random_colours(rng, count):
    return rng.integers(0, COLOUR_LEVELS, size=(count, 3), dtype=np.uint8)


def pink_noise(rng, resolution):
    """PinkNoise (released `generate_rgb_noise` + `renormalize`): per channel, white noise filtered by
    1 / (f_y^a + f_x^b + 2 eps), a, b ~ U[0.5, 3.5], with f in the released units (a 256-pixel image spans
    51.2 units, so f = cycles per image / 51.2 at any resolution) and the DC term at 0.1 x the first
    frequency; the three channels are min-max scaled jointly to 0..255 and truncated. Returns uint8 HWC."""
    exponent_y, exponent_x = rng.uniform(*PINK_EXPONENT_RANGE, size=(2, 3, 1, 1))
    white = rng.standard_normal((3, resolution, resolution))
    spacing = PINK_SAMPLE_SPACING * DESIGN / resolution
    freq_y = np.abs(np.fft.fftfreq(resolution, d=spacing))
    freq_x = np.fft.rfftfreq(resolution, d=spacing)
    freq_y[0] = freq_x[0] = PINK_DC_FRACTION * freq_y[1]
    denominator = freq_y[:, None] ** exponent_y + freq_x[None, :] ** exponent_x + 2 * PINK_EPSILON
    field = np.fft.irfft2(np.fft.rfft2(white) / denominator, s=(resolution, resolution))
    low, high = field.min(), field.max()
    field -= low
    field *= 255 / (high - low)
    return np.ascontiguousarray(field.astype(np.uint8).transpose(1, 2, 0))


def sample_shapes(rng, resolution, num_shapes=NUM_SHAPES, size='decay'):
    """Primitives ('dead leaves', released `inject_particles`): N shapes, line/circle/ellipse/rectangle with
    probability 1/7, 2/7, 2/7, 2/7, random colours, and sizes by the policy `size` (supplement Sec. 1):
    'decay' (released, the default) draws the n-th from 1 .. `decay_max_sizes`[n] - 1; 'rand' from
    1 .. RAND_BOUND - 1 for every shape (the supplement gives Rand no range: Decay's first one is taken);
    'fix<f>' makes every size f H (`fixed_size`). Lines join two uniform points (x and y each sorted, as
    released) with that thickness; circles and ellipses have uniform centres, ellipses two semi-axes and an angle
    in whole degrees 0..179; rectangles are axis-aligned with their corner in 0 .. 254 - bound (bound: the size's
    exclusive maximum) and inclusive sides."""
    policy, fraction = parse_size_policy(size)
    kind = rng.choice(len(SHAPE_NAMES), size=num_shapes, p=SHAPE_PROBABILITIES)
    if policy == 'fix':
        bound = np.full(num_shapes, fixed_size(fraction) + 1)
        extent = np.full((num_shapes, 2), float(fixed_size(fraction)))
    else:
        bound = decay_max_sizes(num_shapes) if policy == 'decay' else np.full(num_shapes, RAND_BOUND)
        extent = rng.integers(1, bound[:, None], size=(num_shapes, 2)).astype(np.float64)
    centre = rng.integers(0, DESIGN, size=(num_shapes, 2)) + 0.5
    angle = np.radians(rng.integers(0, 180, size=num_shapes)) * (kind == ELLIPSE)

    ends = np.sort(rng.integers(0, DESIGN - 1, size=(num_shapes, 2, 2)), axis=1) + 0.5   # [shape, end, x/y].
    direction = ends[:, 1] - ends[:, 0]
    line = kind == LINE
    centre[line] = ends[line].mean(axis=1)
    angle[line] = np.arctan2(direction[line, 1], direction[line, 0])
    extent[line] = np.stack([np.hypot(*direction[line].T), extent[line, 0]], axis=1) / 2

    circle = kind == CIRCLE
    extent[circle, 1] = extent[circle, 0]

    rectangle = kind == RECTANGLE
    corner = rng.integers(0, DESIGN - 1 - bound[:, None], size=(num_shapes, 2))
    extent[rectangle] = (extent[rectangle] + 1) / 2
    centre[rectangle] = corner[rectangle] + extent[rectangle]
    return _scaled(Shapes(kind, centre, extent, angle, _random_colours(rng, num_shapes)), resolution)


def sample_salient_object(rng, resolution):
    """Primitives-S/-PS salient object (released `inject_saliency`): a circle (radius 64..95 design pixels)
    or an axis-aligned ellipse (semi-axes 64..95), centred within 103..152 on each axis, or an axis-aligned
    rectangle with sides 97..192 and its corner in 32..127, each kind with probability 1/3."""
    kind = rng.choice(SALIENT_KINDS, size=1)
    centre = rng.integers(*SALIENT_CENTRE, size=(1, 2)) + 0.5
    extent = rng.integers(*SALIENT_RADIUS, size=(1, 2)).astype(np.float64)
    if kind[0] == CIRCLE:
        extent[:, 1] = extent[:, 0]
    elif kind[0] == RECTANGLE:
        extent = (rng.integers(*SALIENT_SIDE, size=(1, 2)) + 1) / 2
        centre = rng.integers(*SALIENT_CORNER, size=(1, 2)) + extent
    return _scaled(Shapes(kind, centre, extent, np.zeros(1), _random_colours(rng, 1)), resolution)


def _scaled(shapes, resolution):
    scale = resolution / DESIGN
    return Shapes(shapes.kind, shapes.centre * scale, shapes.half_extent * scale, shapes.angle, shapes.colour)


def _sample_layout(synth, shapes_rng, salient_rng, resolution, particles, size):
    shapes = sample_shapes(shapes_rng, resolution, particles, size) if synth != 'pinknoise' else None
    salient = sample_salient_object(salient_rng, resolution) if synth in ('primitives-s', 'primitives-ps') else None
    return Layout(shapes, salient)


def layout(synth, seed, index, resolution, particles=NUM_SHAPES, size='decay'):
    """The shapes and salient object that `synthesize` draws for this image, without rendering it."""
    _, shapes_rng, salient_rng, _ = _random_streams(synth, seed, index)
    return _sample_layout(synth, shapes_rng, salient_rng, resolution, particles, size)


def draw_shapes(canvas, shapes, values=None):
    """Rasterise `shapes` in order onto `canvas` (HxW or HxWxC array, modified in place), each filled with
    its colour, or with values[i]. A pixel belongs to a shape when its centre does (no anti-aliasing)."""
    height, width = canvas.shape[:2]
    values = shapes.colour if values is None else values
    columns = zip(shapes.kind.tolist(), shapes.centre.tolist(), shapes.half_extent.tolist(),
                  shapes.angle.tolist(), shapes.reach().tolist())
    for i, (kind, (centre_x, centre_y), (half_along, half_across), angle, reach) in enumerate(columns):
        left, right = max(int(centre_x - reach), 0), min(int(np.ceil(centre_x + reach)), width)
        top, bottom = max(int(centre_y - reach), 0), min(int(np.ceil(centre_y + reach)), height)
        if left >= right or top >= bottom:
            continue
        dx = np.arange(left, right) + (0.5 - centre_x)
        dy = (np.arange(top, bottom) + (0.5 - centre_y))[:, None]
        cos, sin = np.cos(angle), np.sin(angle)
        along, across = dx * cos + dy * sin, dy * cos - dx * sin
        if kind == LINE:
            inside = (along - np.clip(along, -half_along, half_along)) ** 2 + across ** 2 <= half_across ** 2
        elif kind == RECTANGLE:
            inside = (np.abs(along) <= half_along) & (np.abs(across) <= half_across)
        else:
            inside = (along / half_along) ** 2 + (across / half_across) ** 2 <= 1
        canvas[top:bottom, left:right][inside] = values[i]


def shape_mask(shapes, resolution):
    """Boolean HxW mask of the union of `shapes`."""
    mask = np.zeros((resolution, resolution), dtype=bool)
    draw_shapes(mask, shapes, values=np.ones(len(shapes), dtype=bool))
    return mask


def check_settings(synth, particles=NUM_SHAPES, size='decay'):
    """Refuse an unknown synthesizer, a particle count below 0 or a size policy `parse_size_policy` refuses
    (ValueError naming the valid values)."""
    if synth not in SYNTH_IDS:
        raise ValueError(f'unknown synthesizer {synth!r}; valid: {", ".join(SYNTHESIZERS)}')
    if isinstance(particles, bool) or not isinstance(particles, int) or particles < 0:
        raise ValueError(f'particles must be an integer >= 0 (the number of shapes N), got {particles!r}')
    parse_size_policy(size)
    if synth == 'pinknoise' and (particles != NUM_SHAPES or size != 'decay'):
        raise ValueError('pinknoise draws no shapes: particles and size apply to primitives, primitives-s and '
                         'primitives-ps')


def synthesize(synth, seed, index, resolution, particles=NUM_SHAPES, size='decay'):
    """Image `index` of synthesizer `synth` (one of SYNTHESIZERS) with dataset seed `seed`, as uint8 HWC RGB;
    `particles` (N) and `size` (the size policy, `sample_shapes`) are the supplement's Table 1 ablations.

    - pinknoise: `pink_noise`.
    - primitives: one random grey level as background, then the N shapes (Sec. 1).
    - primitives-s: primitives plus a solid salient object drawn last (released `dead_leaves`).
    - primitives-ps: pink-noise background, the N shapes in solid colours, and the salient object filled with an
      independent pink-noise texture (released `pink_leaves`, the paper's best synthesizer). With N = 0 it is
      PinkNoise+PS (released `pink_and_salient`, which makes the same draws in the same order as `pink_leaves`
      without particles)."""
    check_settings(synth, particles, size)
    background_rng, shapes_rng, salient_rng, texture_rng = _random_streams(synth, seed, index)
    if synth in ('pinknoise', 'primitives-ps'):
        canvas = pink_noise(background_rng, resolution)
    else:
        canvas = np.empty((resolution, resolution, 3), dtype=np.uint8)
        canvas[...] = background_rng.integers(0, COLOUR_LEVELS, dtype=np.uint8)
    parts = _sample_layout(synth, shapes_rng, salient_rng, resolution, particles, size)
    if parts.shapes is not None:
        draw_shapes(canvas, parts.shapes)
    if synth == 'primitives-s':
        draw_shapes(canvas, parts.salient)
    elif synth == 'primitives-ps':
        inside = shape_mask(parts.salient, resolution)
        canvas[inside] = pink_noise(texture_rng, resolution)[inside]
    return canvas
