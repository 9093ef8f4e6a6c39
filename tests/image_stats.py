"""Image statistics that characterise the Primitives-PS synthesizers (issue 13's table), for uint8 HxWx3 images.

Each function takes one image and returns one number; the tests compare medians over many images with the
figures measured on the authors' released synthesizers (`pretrain/noise_dataset.py`) under the same functions.
"""

import numpy as np


def radial_power_slope(image):
    """Slope of log(radially averaged power spectrum) against log(frequency in cycles per image), over
    frequencies 2 .. H/2 - 1, with the power averaged over the three channels (each channel's mean removed)."""
    fields = np.moveaxis(image.astype(np.float64), -1, 0)
    fields -= fields.mean(axis=(1, 2), keepdims=True)
    power = (np.abs(np.fft.fft2(fields)) ** 2).mean(axis=0)
    size = power.shape[0]
    frequency = np.abs(np.fft.fftfreq(size, d=1 / size))
    radius = np.rint(np.hypot(frequency[:, None], frequency[None, :])).astype(int)
    radial = np.bincount(radius.ravel(), power.ravel()) / np.bincount(radius.ravel())
    band = np.arange(2, size // 2)
    return np.polyfit(np.log(band), np.log(radial[band]), 1)[0]


def neighbour_difference(image):
    """Mean absolute difference between horizontally and vertically adjacent pixels, in units of the full
    range (0..1): how rough the image is at the finest scale."""
    values = image.astype(np.float64) / 255
    return (np.abs(np.diff(values, axis=0)).mean() + np.abs(np.diff(values, axis=1)).mean()) / 2


def colour_cast(image):
    """Standard deviation of the three channel means, in units of the full range (0..1)."""
    return float(np.std(image.reshape(-1, 3).mean(axis=0) / 255))


def colour_shares(image):
    """Shares of the image's pixels in its most common and second most common colour."""
    codes = image.astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])
    counts = np.sort(np.unique(codes, return_counts=True)[1])[::-1]
    counts = np.concatenate([counts, [0]])
    return counts[0] / codes.size, counts[1] / codes.size
