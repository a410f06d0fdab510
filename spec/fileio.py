"""Reading users' data files and writing outputs without leaving partial files behind."""

from __future__ import annotations

import ctypes
import io
import os
import uuid
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from dlhwc.spec.errors import DlhwcError


def check_inputs(inputs: Iterable[str | Path]) -> None:
    """Refuse, before any work is done, inputs that are not regular files.

    A directory cannot be read as a file, and a device or a pipe may never end
    (`/dev/zero` would fill memory, a FIFO without a writer blocks forever). A missing
    file is left to the command, which says what kind of file it wanted.
    """
    for path in (Path(p) for p in inputs if p):
        if path.is_dir():
            raise DlhwcError("is a directory, not a file", file=str(path))
        if path.exists() and not path.is_file():
            raise DlhwcError("not a regular file (a device or a pipe)", file=str(path))


def check_outputs(outputs: Iterable[str | Path], inputs: Iterable[str | Path] = ()) -> None:
    """Refuse, before any work is done, outputs that cannot or must not be written.

    A compile that runs for minutes and then finds its output directory missing wastes
    the user's time; an output that names one of the inputs (also through a link) would
    destroy it; two outputs naming one file would keep only the last.
    """
    sources = [Path(p) for p in inputs if p]
    seen: list[Path] = []
    for path in (Path(p) for p in outputs if p):
        target = _final_path(path)
        if target.is_dir():
            raise DlhwcError("the output is a directory", file=str(path))
        if target.exists() and not target.is_file():
            seen.append(target)
            continue  # a device or a pipe: written in place (see write_atomic)
        directory = target.parent
        if not directory.is_dir():
            raise DlhwcError("the output directory does not exist", file=str(path))
        if not os.access(directory, os.W_OK | os.X_OK):
            raise DlhwcError("cannot write to the output directory (permission denied)",
                             file=str(path))  # fmt: skip
        for source in sources:
            if _same_file(target, source):
                raise DlhwcError(f"the output would overwrite the input '{source}'",
                                 file=str(path))  # fmt: skip
        for other in seen:
            if _same_file(target, other) or target == other:
                raise DlhwcError("two outputs name the same file", file=str(path))
        seen.append(target)


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either its old or its new bytes.

    - A regular file (or a new one) is written as an unnamed temporary file in the same
      directory (`O_TMPFILE`), named only when complete and renamed over ``path``: a
      failure, SIGTERM or even SIGKILL leaves ``path`` as it was and no temporary file
      behind (where `O_TMPFILE` is missing, a named temporary file is removed on failure).
    - A symbolic link is followed: its target is replaced and the link stays a link.
    - A device or a pipe (`-o /dev/null`, `-o /dev/stdout`) is written in place: replacing
      it with a regular file would break the system; its write errors (`/dev/full`) are
      reported.
    Every failure is a one-line `DlhwcError` naming ``path``.
    """
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    target = _final_path(path)
    try:
        if target.exists() and not target.is_file() and not target.is_dir():
            with open(target, "wb", buffering=0) as f:
                _write_all(f, payload)
            return
        check_outputs([path])
        _replace(target, payload)
    except OSError as e:
        raise DlhwcError(f"cannot write: {e.strerror or e}", file=str(path)) from None


def _write_all(f, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        view = view[f.write(view) :]


def _replace(target: Path, payload: bytes) -> None:
    """Write ``payload`` to a temporary file beside ``target`` and rename it over it."""
    tmp = target.parent / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        if not _write_unnamed(target.parent, tmp, payload):
            # O_EXCL, and 0o666 minus the umask: the permissions open() would give.
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o666)
            with os.fdopen(fd, "wb", buffering=0) as f:
                _write_all(f, payload)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_unnamed(directory: Path, name: Path, payload: bytes) -> bool:
    """Write ``payload`` to an `O_TMPFILE` in ``directory`` and link it as ``name``.

    Until the link, the file has no name: if the process dies it vanishes. False when the
    system cannot do this (no `O_TMPFILE`, or neither way of linking it works).
    """
    try:
        fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o666)
    except (AttributeError, OSError):
        return False
    with os.fdopen(fd, "wb", buffering=0) as f:
        _write_all(f, payload)
        try:
            os.link(f"/proc/self/fd/{fd}", name)
            return True
        except OSError:
            pass
        libc = ctypes.CDLL(None, use_errno=True)
        at_fdcwd, at_empty_path = -100, 0x1000
        return libc.linkat(fd, b"", at_fdcwd, os.fsencode(name), at_empty_path) == 0


def _final_path(path: Path) -> Path:
    """``path`` with symbolic links (also dangling ones) followed."""
    return Path(os.path.realpath(path))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def load_arrays(path: str | Path, single_name: str | None = None) -> dict[str, np.ndarray]:
    """Arrays from an `.npz` (by key) or an `.npy` (under ``single_name``)."""
    path = Path(path)
    check_inputs([path])
    if not path.is_file():
        raise DlhwcError("no such input file", file=str(path))
    try:
        _check_sizes(path)
        with open(path, "rb") as f:
            loaded = np.load(f, allow_pickle=False)
            if isinstance(loaded, np.lib.npyio.NpzFile):
                with loaded:
                    return {k: loaded[k] for k in loaded.files}
    except (
        ValueError,
        OSError,
        EOFError,
        zipfile.BadZipFile,
        zlib.error,
        NotImplementedError,
    ) as e:
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


def _check_sizes(path: Path) -> None:
    """Refuse an array whose header claims more data than its file holds, before numpy
    allocates it (a 40-byte `.npy` may claim a 4 TB array)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.filename.endswith(".npy"):
                    with zf.open(info) as entry:
                        _check_size(entry, info.file_size, f"array '{info.filename[:-4]}'")
        return
    with open(path, "rb") as f:
        _check_size(f, path.stat().st_size, "the array")


def _check_size(f, size: int, what: str) -> None:
    fmt = np.lib.format
    version = fmt.read_magic(f)
    read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _, dtype = read_header(f, max_header_size=100_000)
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    have = size - f.tell()
    if need > have:
        raise ValueError(f"{what} claims shape {list(shape)} ({need} bytes); the file holds {have}")


def save_arrays(path: str | Path, arrays: Mapping[str, object]) -> None:
    """Write named arrays as an `.npz` (or one array as `.npy`), deterministically.

    A sequence of maps (what ONNX-ML's ZipMap produces, one map of label -> score per
    row) is written as a 2-D array [rows, labels], columns in sorted label order, with
    the labels in a second array named `<name>.keys`.
    """
    path = Path(path)
    tensors = _tensors_only(arrays, path)
    buf = io.BytesIO()
    if path.suffix == ".npy":
        if len(tensors) != 1:
            raise DlhwcError(
                f"the model has {len(tensors)} outputs; write them to an .npz", file=str(path)
            )
        np.save(buf, next(iter(tensors.values())))
    else:
        # np.savez stamps entries with the current time; fixed dates keep the bytes stable.
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for name, array in tensors.items():
                entry = io.BytesIO()
                np.lib.format.write_array(entry, np.asarray(array), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                zf.writestr(info, entry.getvalue())
    write_atomic(path, buf.getvalue())


def _tensors_only(arrays: Mapping[str, object], path: Path) -> dict[str, np.ndarray]:
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
