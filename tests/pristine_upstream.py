"""Pristine upstream beside the patched one: the pinned commit with only the patches a CPU needs, and a runner
that trains it with the options a patched run recorded. Run as a script, it is that runner:

    python tests/pristine_upstream.py TREE TRAINING_OPTIONS_JSON RUN_DIR
"""

import inspect
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CPU_PATCHES = ('0001', '0003')  # today's Python/NumPy/SciPy, and the CPU instead of CUDA: nothing else


def build_tree(dest):
    """The pinned upstream commit with CPU_PATCHES applied, unpacked into the new folder `dest`."""
    pinned = subprocess.run(['git', 'ls-files', '--stage', 'stylegan2_ada'], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split()[1]
    archive = Path(dest).with_suffix('.tar')
    subprocess.run(['git', '-C', str(ROOT / 'stylegan2_ada'), 'archive', '-o', str(archive), pinned], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter='data')
    for prefix in CPU_PATCHES:
        (patch,) = (ROOT / 'patches').glob(f'{prefix}-*.patch')
        subprocess.run(['git', 'apply', '--whitespace=nowarn', str(patch)], cwd=dest, check=True)
    return Path(dest)


def run(tree, options_path, run_dir):
    """Upstream's train.py after its option parsing, for one process: the recorded options that upstream's training
    loop knows (the others are the patches' own and must be at their neutral values) and the run directory."""
    sys.path.insert(0, str(tree))
    import dnnlib
    import torch
    from torch_utils import training_stats
    from training import training_loop
    options = json.loads(Path(options_path).read_text())
    known = inspect.signature(training_loop.training_loop).parameters
    args = dnnlib.EasyDict({key: value for key, value in options.items() if key in known}, run_dir=str(run_dir))
    os.makedirs(run_dir)
    torch.multiprocessing.set_start_method('spawn')  # as upstream's main(): DataLoader workers get their own zip handle
    dnnlib.util.Logger(file_name=os.path.join(run_dir, 'log.txt'), file_mode='a', should_flush=True)
    training_stats.init_multiprocessing(rank=0, sync_device=None)
    training_loop.training_loop(rank=0, **args)


if __name__ == '__main__':
    run(*sys.argv[1:4])
