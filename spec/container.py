"""The program container (`.dlhw`): what the compiler writes and the simulator reads.

Layout (all integers little-endian):

    offset  size  field
    0       4     magic b"DLHW"
    4       2     format version (FORMAT_VERSION)
    6       2     reserved, 0
    8       8     header length H
    16      H     header: UTF-8 JSON, keys sorted, no whitespace
    ...           sections, each starting at a multiple of 8 bytes, in header order
    end-32  32    SHA-256 of every byte before it

The header holds the target name and its hardware config, the symbol table (inputs,
outputs and host transfer tensors with their per-vector shapes and fixed-point formats),
the target's layer table, the host segments and the section table; each section entry
gives its name, numpy dtype (little-endian), shape, offset and size. The instruction
stream is the section "text" (uint64 words). Host segments are ONNX models stored as
uint8 sections.

The same input and options give the same bytes: the header is canonical JSON and the
sections are written in the order given.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlhwc.spec.errors import DlhwcError

MAGIC = b"DLHW"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sHHQ")
_DIGEST = 32
_ALIGN = 8


@dataclass
class Container:
    """A program: a JSON-able header and named numpy sections."""

    target: str
    header: dict = field(default_factory=dict)
    sections: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, name: str, array: np.ndarray) -> None:
        if name in self.sections:
            raise ValueError(f"section {name} added twice")
        self.sections[name] = np.require(array, requirements="C")  # keeps 0-d arrays 0-d

    def section(self, name: str) -> np.ndarray:
        try:
            return self.sections[name]
        except KeyError:
            raise DlhwcError(f"the container has no section '{name}'") from None

    # -- bytes -------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        table, payload, offset = [], [], 0
        for name, array in self.sections.items():
            dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
            data = np.ascontiguousarray(array, dtype=dtype).tobytes()
            table.append(
                {
                    "name": name,
                    "dtype": dtype.str,
                    "shape": list(array.shape),
                    "offset": offset,
                    "size": len(data),
                }  # fmt: skip
            )
            pad = (-len(data)) % _ALIGN
            payload.append(data + b"\0" * pad)
            offset += len(data) + pad
        header = dict(self.header, target=self.target, sections=table)
        text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        text += b" " * ((-(len(text) + _PREFIX.size)) % _ALIGN)
        body = _PREFIX.pack(MAGIC, FORMAT_VERSION, 0, len(text)) + text + b"".join(payload)
        return body + hashlib.sha256(body).digest()

    @staticmethod
    def from_bytes(data: bytes, source: str = "<container>") -> Container:
        """Parse and check a container; every defect is a one-line `DlhwcError`."""
        if data[:4] != MAGIC[: len(data[:4])] or len(data) < 4:
            raise DlhwcError("not a dlhwc program container (bad magic)", file=source)
        if len(data) < _PREFIX.size + _DIGEST:
            raise DlhwcError(f"truncated container ({len(data)} bytes)", file=source)
        magic, version, _, hlen = _PREFIX.unpack_from(data)
        if version != FORMAT_VERSION:
            raise DlhwcError(
                f"container format version {version}; this dlhwc reads version {FORMAT_VERSION}",
                file=source,
            )
        body, digest = data[:-_DIGEST], data[-_DIGEST:]
        if hashlib.sha256(body).digest() != digest:
            if _PREFIX.size + hlen > len(body):
                raise DlhwcError("truncated container", file=source)
            raise DlhwcError("container checksum mismatch: the file is corrupted", file=source)
        try:
            header = json.loads(body[_PREFIX.size : _PREFIX.size + hlen])
            base = _PREFIX.size + hlen
            sections = {}
            for entry in header.pop("sections"):
                _check_section_entry(entry)
                start = base + entry["offset"]
                raw = body[start : start + entry["size"]]
                if len(raw) != entry["size"]:
                    raise ValueError(f"section {entry['name']} runs past the end")
                array = np.frombuffer(raw, dtype=np.dtype(entry["dtype"]))
                sections[entry["name"]] = array.reshape(entry["shape"])
            target = header.pop("target")
            if not isinstance(target, str):
                raise ValueError(f"the target is {target!r}, not a name")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise DlhwcError(f"malformed container: {e}", file=source) from None
        except RecursionError:
            raise DlhwcError(
                "malformed container: the header nests too deeply", file=source
            ) from None
        return Container(target, header, sections)

    @staticmethod
    def read(path: str | Path) -> Container:
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise DlhwcError("no such file", file=str(path)) from None
        return Container.from_bytes(data, str(path))

    def host_model(self, name: str) -> bytes:
        """The ONNX model of the host segment in section ``name``, checked to be
        self-contained (see `check_self_contained`)."""
        data = self.section(name).tobytes()
        check_self_contained(data, f"host segment section '{name}'")
        return data

    def write(self, path: str | Path) -> None:
        from dlhwc.spec.fileio import write_atomic

        write_atomic(path, self.to_bytes())


def _check_section_entry(entry) -> None:
    """A section table entry: a string name, a dtype string, int shape, offset and size."""
    ok = (
        isinstance(entry, dict)
        and isinstance(entry.get("name"), str)
        and isinstance(entry.get("dtype"), str)
        and isinstance(entry.get("shape"), list)
        and all(isinstance(d, int) and d >= 0 for d in entry["shape"])
        and all(isinstance(entry.get(k), int) and entry[k] >= 0 for k in ("offset", "size"))
    )
    if not ok:
        raise ValueError(f"bad section table entry {str(entry)[:80]}")


def check_self_contained(model: bytes, what: str) -> None:
    """Refuse an ONNX model that would read anything but its own bytes.

    A tensor may keep its data in an external file (`data_location: EXTERNAL`), and
    onnxruntime resolves such a path against the current directory: a crafted container
    could copy any file it can name into its outputs. A host segment dlhwc writes never
    has external data; `run` reads nothing outside the files named on its command line.
    """
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.ModelProto.FromString(model)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise DlhwcError(f"{what} is not an ONNX model: {e}") from None
    graphs = [proto.graph, *(f for f in proto.functions)]
    while graphs:
        graph = graphs.pop()
        tensors = list(getattr(graph, "initializer", []))
        for sparse in getattr(graph, "sparse_initializer", []):
            tensors += [sparse.values, sparse.indices]
        for node in graph.node:
            for attr in node.attribute:
                tensors += [attr.t, *attr.tensors]
                tensors += [attr.sparse_tensor.values, attr.sparse_tensor.indices]
                for sparse in attr.sparse_tensors:
                    tensors += [sparse.values, sparse.indices]
                graphs += [attr.g, *attr.graphs]
        for tensor in tensors:
            if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
                raise DlhwcError(
                    f"{what}: tensor '{tensor.name}' refers to external data; a container "
                    "must hold all its data"
                )
