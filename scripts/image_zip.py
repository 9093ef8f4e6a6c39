"""A labelled image set in upstream's dataset layout (dataset_tool.py's), as the data tools write it."""

import json
import os
import zipfile
from pathlib import Path

from plugins.primitives.writer import ZIP_DATE_TIME, archive_name, encode_png, hidden_sibling, remove_stale_siblings


def write_labelled_zip(path, images, labels):
    """Write HWC uint8 RGB `images` with their integer `labels` (dataset.json) to the zip `path`: under a temporary
    name renamed into place, so a killed write leaves no half zip at `path`."""
    path = Path(path)
    remove_stale_siblings(path)  # a killed earlier write's
    temporary = Path(hidden_sibling(path, 'tmp'))
    try:
        with zipfile.ZipFile(temporary, 'w', compression=zipfile.ZIP_STORED) as archive:
            names = []
            for index, image in enumerate(images):
                names.append(archive_name(index))
                archive.writestr(zipfile.ZipInfo(names[-1], date_time=ZIP_DATE_TIME), encode_png(image))
            labels_json = {'labels': [[name, int(label)] for name, label in zip(names, labels, strict=True)]}
            archive.writestr(zipfile.ZipInfo('dataset.json', date_time=ZIP_DATE_TIME), json.dumps(labels_json))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
