"""What an augment pipe may give D: images, or (images, timesteps) from a pipe whose class sets `passes_timesteps`,
which a D whose class sets `takes_timesteps` takes whole as its image argument (train.py pairs the two, patch 0013).
Upstream's loss hands D the pipe's output as it is; the plugin loss needs the images alone for input gradients."""


def split_pipe_output(output):
    """(images, timesteps or None) of an augment pipe's output."""
    return output if isinstance(output, tuple) else (output, None)


def join_pipe_output(images, timesteps):
    """The pipe output that `split_pipe_output` split, with `images` (e.g. made a leaf for input gradients)."""
    return images if timesteps is None else (images, timesteps)
