"""The four data synthesizers of Primitives-PS (supplementary, Sec. 1 and Sec. 10; methods.md "Primitives-PS").

Pure numpy. Every image is a pure function of (synthesizer, seed, index, resolution): its random numbers
come from `np.random.SeedSequence` children of `[seed, index, synth_id]`, never from global state. Sizes
quoted by the paper for 256x256 are expressed as fractions of the resolution H, so they scale linearly.
"""

from dataclasses import dataclass

import numpy as np

SYNTHESIZERS = ('pinknoise', 'primitives', 'primitives-s', 'primitives-ps')
SYNTH_IDS = {name: synth_id for synth_id, name in enumerate(SYNTHESIZERS)}

NUM_SHAPES = 100                                # N, chosen by the ablation (Sec. 1, Table 1 lower).
LINE, CIRCLE, ELLIPSE, RECTANGLE = range(4)
SHAPE_NAMES = ('line', 'circle', 'ellipse', 'rectangle')
SHAPE_PROBABILITIES = (1 / 7, 2 / 7, 2 / 7, 2 / 7)
SALIENT_KINDS = (CIRCLE, ELLIPSE, RECTANGLE)

PINK_EXPONENT_RANGE = (0.5, 3.5)                # a, b ~ U[0.5, 3.5] per channel.
DECAY_MAX_FRACTION = 1 / 5                      # Decay: max size H/5 * (N-n)/N (Sec. 1).
SALIENT_SIZE_FRACTIONS = (1 / 4, 3 / 8)         # Salient object spans 1/4 .. 3/8 of the image.
SALIENT_CENTRE_JITTER_FRACTION = 1 / 16         # Salient centre within H/2 +- H/16 on each axis.
SHAPE_ASPECT_RANGE = (0.3, 1.0)                 # Minor/major ratio of ellipses and rectangles.
SALIENT_ASPECT_RANGE = (0.5, 1.0)               # The salient object stays blob-like.
LINE_THICKNESS_RANGE = (0.03, 0.1)              # Line thickness as a fraction of its length.


def minimum_shape_size(resolution):
    """The 'small minimum' added to every Decay size: H/128 (2 px at 256x256), never below 2 px so that a
    line keeps a length beside its 1 px thickness."""
    return max(2.0, resolution / 128)


def decay_max_sizes(resolution, num_shapes=NUM_SHAPES):
    """Decay policy bound H/5 * (N-n)/N for the n-th shape, n = 0..N-1 (Sec. 1), without the minimum."""
    n = np.arange(num_shapes)
    return resolution * DECAY_MAX_FRACTION * (num_shapes - n) / num_shapes


@dataclass(frozen=True)
class Shapes:
    """Parameters of shapes drawn in order (one array entry per shape). `size` is the diameter of the circle
    circumscribing the shape (circle diameter, ellipse major axis, rectangle or line diagonal); `centre` is
    (x, y) in pixels, pixel (row i, column j) covering [j, j+1) x [i, i+1); `aspect` is minor/major extent
    (a line is a rectangle of aspect thickness/length); `angle` of the major axis in radians; `colour` RGB."""
    kind: np.ndarray
    centre: np.ndarray
    size: np.ndarray
    aspect: np.ndarray
    angle: np.ndarray
    colour: np.ndarray

    def __len__(self):
        return len(self.kind)


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
    return rng.integers(0, 256, size=(count, 3), dtype=np.uint8)


def pink_noise(rng, resolution):
    """PinkNoise: per channel, white noise shaped by 1 / (|f_x|^a + |f_y|^b), a, b ~ U[0.5, 3.5]
    (methods.md; Sec. 10). Frequencies are in cycles per image, so an image looks the same at any
    resolution up to its finest detail; the DC gain is 1 (that of the lowest harmonic). The three
    channels are min-max normalised jointly to [0, 255]. Returns uint8 HWC."""
    exponent_x, exponent_y = rng.uniform(*PINK_EXPONENT_RANGE, size=(2, 3, 1, 1))
    white = rng.standard_normal((3, resolution, resolution))
    freq_y = np.abs(np.fft.fftfreq(resolution, d=1 / resolution))[:, None]
    freq_x = np.fft.rfftfreq(resolution, d=1 / resolution)[None, :]
    denominator = freq_x ** exponent_x + freq_y ** exponent_y
    denominator[:, 0, 0] = 1.0
    field = np.fft.irfft2(np.fft.rfft2(white) / denominator, s=(resolution, resolution))
    low, high = field.min(), field.max()
    field -= low
    field *= 255 / (high - low)
    field += 0.5                                # Round to nearest when truncating to uint8.
    return np.ascontiguousarray(field.astype(np.uint8).transpose(1, 2, 0))


def _line_aspects(rng, sizes):
    """Thickness/length of lines: thickness U[3%, 10%] of the size but at least 1 px, so that a line whose
    circumscribed diameter is `size` (length^2 + thickness^2 = size^2) stays visible."""
    thickness = np.maximum(1.0, rng.uniform(*LINE_THICKNESS_RANGE, len(sizes)) * sizes)
    return thickness / np.sqrt(sizes ** 2 - thickness ** 2)


def sample_shapes(rng, resolution, num_shapes=NUM_SHAPES):
    """Primitives ('dead leaves'): N shapes, type line/circle/ellipse/rectangle with probability
    1/7, 2/7, 2/7, 2/7, uniform centres and orientations, random colours; Decay size policy (Sec. 1):
    the n-th shape's size is U[0, H/5 * (N-n)/N] plus `minimum_shape_size`, so early shapes stay visible."""
    kind = rng.choice(len(SHAPE_NAMES), size=num_shapes, p=SHAPE_PROBABILITIES)
    centre = rng.uniform(0, resolution, size=(num_shapes, 2))
    size = minimum_shape_size(resolution) + rng.uniform(0, 1, num_shapes) * decay_max_sizes(resolution, num_shapes)
    aspect = np.select([kind == LINE, kind == CIRCLE],
                       [_line_aspects(rng, size), 1.0], rng.uniform(*SHAPE_ASPECT_RANGE, num_shapes))
    angle = rng.uniform(0, np.pi, num_shapes)
    return Shapes(kind, centre, size, aspect, angle, _random_colours(rng, num_shapes))


def sample_salient_object(rng, resolution):
    """Primitives-S/-PS salient object: a circle, ellipse or rectangle near the centre (within
    H/2 +- H/16 on each axis), a quarter to three eighths of the image across (methods.md)."""
    kind = rng.choice(SALIENT_KINDS, size=1)
    jitter = resolution * SALIENT_CENTRE_JITTER_FRACTION
    centre = resolution / 2 + rng.uniform(-jitter, jitter, size=(1, 2))
    size = resolution * rng.uniform(*SALIENT_SIZE_FRACTIONS, size=1)
    aspect = np.where(kind == CIRCLE, 1.0, rng.uniform(*SALIENT_ASPECT_RANGE, size=1))
    angle = rng.uniform(0, np.pi, size=1)
    return Shapes(kind, centre, size, aspect, angle, _random_colours(rng, 1))


def _sample_layout(synth, shapes_rng, salient_rng, resolution):
    shapes = sample_shapes(shapes_rng, resolution) if synth != 'pinknoise' else None
    salient = sample_salient_object(salient_rng, resolution) if synth in ('primitives-s', 'primitives-ps') else None
    return Layout(shapes, salient)


def layout(synth, seed, index, resolution):
    """The shapes and salient object that `synthesize` draws for this image, without rendering it."""
    _, shapes_rng, salient_rng, _ = _random_streams(synth, seed, index)
    return _sample_layout(synth, shapes_rng, salient_rng, resolution)


def draw_shapes(canvas, shapes, values=None):
    """Rasterise `shapes` in order onto `canvas` (HxW or HxWxC array, modified in place), each filled with
    its colour, or with values[i]. A pixel belongs to a shape when its centre does (no anti-aliasing), so
    every shape lies within its circumscribed circle of diameter `size`."""
    height, width = canvas.shape[:2]
    values = shapes.colour if values is None else values
    columns = zip(shapes.kind.tolist(), shapes.centre.tolist(), shapes.size.tolist(),
                  shapes.aspect.tolist(), shapes.angle.tolist())
    for i, (kind, (centre_x, centre_y), size, aspect, angle) in enumerate(columns):
        radius = size / 2
        left, right = max(int(centre_x - radius), 0), min(int(np.ceil(centre_x + radius)), width)
        top, bottom = max(int(centre_y - radius), 0), min(int(np.ceil(centre_y + radius)), height)
        if left >= right or top >= bottom:
            continue
        dx = np.arange(left, right) + (0.5 - centre_x)
        dy = (np.arange(top, bottom) + (0.5 - centre_y))[:, None]
        cos, sin = np.cos(angle), np.sin(angle)
        along, across = dx * cos + dy * sin, dy * cos - dx * sin
        if kind in (CIRCLE, ELLIPSE):
            inside = along ** 2 + (across / aspect) ** 2 <= radius ** 2
        else:
            diagonal_angle = np.arctan(aspect)
            inside = ((np.abs(along) <= radius * np.cos(diagonal_angle))
                      & (np.abs(across) <= radius * np.sin(diagonal_angle)))
        canvas[top:bottom, left:right][inside] = values[i]


def shape_mask(shapes, resolution):
    """Boolean HxW mask of the union of `shapes`."""
    mask = np.zeros((resolution, resolution), dtype=bool)
    draw_shapes(mask, shapes, values=np.ones(len(shapes), dtype=bool))
    return mask


def synthesize(synth, seed, index, resolution):
    """Image `index` of synthesizer `synth` (one of SYNTHESIZERS) with dataset seed `seed`, as uint8 HWC RGB.

    - pinknoise: `pink_noise`.
    - primitives: random solid background, then the N Decay shapes (Sec. 1).
    - primitives-s: primitives plus a solid salient object drawn last.
    - primitives-ps: pink-noise background, the N Decay shapes in solid colours, and the salient object
      filled with an independent pink-noise texture (the paper's best synthesizer)."""
    if synth not in SYNTH_IDS:
        raise ValueError(f'unknown synthesizer {synth!r}; valid: {", ".join(SYNTHESIZERS)}')
    background_rng, shapes_rng, salient_rng, texture_rng = _random_streams(synth, seed, index)
    if synth in ('pinknoise', 'primitives-ps'):
        canvas = pink_noise(background_rng, resolution)
    else:
        canvas = np.empty((resolution, resolution, 3), dtype=np.uint8)
        canvas[...] = _random_colours(background_rng, 1)[0]
    parts = _sample_layout(synth, shapes_rng, salient_rng, resolution)
    if parts.shapes is not None:
        draw_shapes(canvas, parts.shapes)
    if synth == 'primitives-s':
        draw_shapes(canvas, parts.salient)
    elif synth == 'primitives-ps':
        inside = shape_mask(parts.salient, resolution)
        canvas[inside] = pink_noise(texture_rng, resolution)[inside]
    return canvas
