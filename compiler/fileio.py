"""Reading users' data files and writing outputs without leaving partial files behind."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from compiler.errors import DlhwcError


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    A failure, or an interruption, leaves ``path`` as it was.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise DlhwcError("the output directory does not exist", file=str(path))
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file 0600; give it the permissions open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_arrays(path: str | Path, single_name: str | None = None) -> dict[str, np.ndarray]:
    """Arrays from an `.npz` (by key) or an `.npy` (under ``single_name``)."""
    path = Path(path)
    if not path.is_file():
        raise DlhwcError("no such input file", file=str(path))
    try:
        with open(path, "rb") as f:
            loaded = np.load(f, allow_pickle=False)
            if isinstance(loaded, np.lib.npyio.NpzFile):
                with loaded:
                    return {k: loaded[k] for k in loaded.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DlhwcError(
            f"not a readable .npy/.npz file ({' '.join(str(e).split())})", file=str(path)
        ) from None
    if single_name is None:
        raise DlhwcError(
            "a .npy file holds one array, but the model takes several inputs: use an .npz "
            "keyed by input name",
            file=str(path),
        )
    return {single_name: loaded}


def save_arrays(path: str | Path, arrays: dict[str, object]) -> None:
    """Write named arrays as an `.npz` (or one array as `.npy`), deterministically.

    A sequence of maps (what ONNX-ML's ZipMap produces, one map of label -> score per
    row) is written as a 2-D array [rows, labels], columns in sorted label order, with
    the labels in a second array named `<name>.keys`.
    """
    path = Path(path)
    arrays = _tensors_only(arrays, path)
    buf = io.BytesIO()
    if path.suffix == ".npy":
        if len(arrays) != 1:
            raise DlhwcError(
                f"the model has {len(arrays)} outputs; write them to an .npz", file=str(path)
            )
        np.save(buf, next(iter(arrays.values())))
    else:
        # np.savez stamps entries with the current time; fixed dates keep the bytes stable.
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for name, array in arrays.items():
                entry = io.BytesIO()
                np.lib.format.write_array(entry, np.asarray(array), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                zf.writestr(info, entry.getvalue())
    write_atomic(path, buf.getvalue())


def _tensors_only(arrays: dict[str, object], path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 1:
            value = list(value)
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            keys = sorted(value[0])
            out[name] = np.array([[row[k] for k in keys] for row in value], dtype=np.float32)
            out[f"{name}.keys"] = np.array(keys)
            continue
        array = np.asarray(value)
        if array.dtype == object:
            raise DlhwcError(
                f"output '{name}' is not a tensor or a sequence of maps; it cannot be "
                "written to a .npy/.npz file",
                file=str(path),
            )
        out[name] = array
    return out
