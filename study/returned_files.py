"""What a lent GPU machine gives back, and the packing of a study's results into it: at most 8 files of at most
16 MiB each, 64 MiB together, at most two folders below $OUT, named in letters, digits, '.', '_' and '-'
(/work/.library/device/README.md, "Limits"). Files are written whole (a temporary name, then a rename), so that a
command stopped at its time limit still returns every file it had finished."""

import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np

MIB = 2 ** 20
MAX_FILES, MAX_FILE_BYTES, MAX_TOTAL_BYTES, MAX_DEPTH = 8, 16 * MIB, 64 * MIB, 2
NAME = re.compile(r'^[A-Za-z0-9._-]+$')
NPZ_OVERHEAD_BYTES = 4096  # per array: the zip entry and the .npy header, over a deflate that cannot grow much
LOG_TAIL_LINES = 400


def layout_problems(files):
    """What breaks the limits in {relative path: size in bytes} (an empty list when nothing does)."""
    problems = []
    if len(files) > MAX_FILES:
        problems.append(f'{len(files)} files, more than {MAX_FILES}')
    total = sum(files.values())
    if total > MAX_TOTAL_BYTES:
        problems.append(f'{total / MIB:.1f} MiB together, more than {MAX_TOTAL_BYTES // MIB} MiB')
    for path, size in files.items():
        parts = Path(path).parts
        if size > MAX_FILE_BYTES:
            problems.append(f'{path}: {size / MIB:.1f} MiB, more than {MAX_FILE_BYTES // MIB} MiB')
        if len(parts) - 1 > MAX_DEPTH:
            problems.append(f'{path}: {len(parts) - 1} folders deep, more than {MAX_DEPTH}')
        if not all(NAME.match(part) for part in parts):
            problems.append(f'{path}: a name with other characters than letters, digits, ".", "_" and "-"')
    return problems


def returned_layout(outdir):
    """{relative path: size} of every file under outdir."""
    outdir = Path(outdir)
    return {str(path.relative_to(outdir)): path.stat().st_size for path in sorted(outdir.rglob('*')) if path.is_file()}


def sample_files(sizes):
    """Group runs' samples into files of at most MAX_FILE_BYTES: {run: bytes} -> [[run, ...], ...], in order."""
    groups, used = [], MAX_FILE_BYTES
    for run, size in sizes.items():
        if size + NPZ_OVERHEAD_BYTES > MAX_FILE_BYTES:
            raise ValueError(f'{run}: {size / MIB:.1f} MiB of samples do not fit one returned file')
        if used + size + NPZ_OVERHEAD_BYTES > MAX_FILE_BYTES:
            groups.append([])
            used = 0
        groups[-1].append(run)
        used += size + NPZ_OVERHEAD_BYTES
    return groups


def write_whole(path, data):
    temporary = path.with_name(f'.{path.name}.tmp')
    temporary.write_bytes(data)
    temporary.replace(path)


def pack(outdir, summary, results, logs, samples, groups):
    """Write summary.md, results.json, logs.tar.gz (each log's last lines) and samples-<i>.npz (the runs of group i,
    each an array named by its run) under outdir."""
    outdir = Path(outdir)
    write_whole(outdir / 'summary.md', summary.encode())
    write_whole(outdir / 'results.json', json.dumps(results, indent=1).encode())
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode='w:gz') as tar:
        for log in logs:
            if log.is_file():
                tail = '\n'.join(log.read_text(errors='replace').splitlines()[-LOG_TAIL_LINES:]).encode()
                info = tarfile.TarInfo(log.name)
                info.size = len(tail)
                tar.addfile(info, io.BytesIO(tail))
    write_whole(outdir / 'logs.tar.gz', archive.getvalue())
    for index, group in enumerate(groups):
        arrays = {run: np.load(samples[run])['images'] for run in group if run in samples}
        if arrays:
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **arrays)
            write_whole(outdir / f'samples-{index}.npz', buffer.getvalue())
