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

The header is declared once, as typed records (spec/schema.py) in this file: `Envelope`
(the target name and the section table, which `Container` writes and reads itself),
`Header` (the hardware config, the symbol table of inputs, outputs and host transfer
tensors with their per-vector shapes and fixed-point formats, the host segments, the
target's layer table, placement and summary) with `Symbol`, `HostSegment`, `Placement`,
`Summary` and `ColumnBlock`, and `Layer`, the fields every layer record has. A target
registers its own layer record (`register_layer_record`; EIE's and ESE's are in
spec/<target>/container.py). The back ends build these records, the simulators read
them (`read_header`), and the tables in the hardware guides are generated from them
(`python -m dlhwc.backends.docs`). The instruction stream is the section "text" (uint64
words); host segments are ONNX models stored as uint8 sections.

`Container.header` is the JSON form of a `Header` (a dict): `Header.to_json()` writes it
and `read_header` reads it back, refusing any defect with one error naming the field
(``header.layers[2].rows: expected int >= 1, got "x"``).

The same input and options give the same bytes: the header is canonical JSON and the
sections are written in the order given.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from dlhwc.spec.errors import DlhwcError
from dlhwc.spec.fixedpoint import FixedFormat
from dlhwc.spec.schema import Record, SchemaError, field, invalid

MAGIC = b"DLHW"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sHHQ")
_DIGEST = 32
_ALIGN = 8


@dataclass
class Container:
    """A program: a JSON-able header and named numpy sections."""

    target: str
    header: dict = dataclasses.field(default_factory=dict)
    sections: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

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
            table.append(Section(name=name, dtype=dtype.str, shape=list(array.shape),
                                 offset=offset, size=len(data)).to_json())  # fmt: skip
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
            if not isinstance(header, dict):
                raise ValueError("the header is not a JSON object")
            envelope = Envelope.from_json(
                {k: header.pop(k) for k in ("target", "sections") if k in header}, "header"
            )
            base = _PREFIX.size + hlen
            sections = {}
            for entry in envelope.sections:
                start = base + entry.offset
                raw = body[start : start + entry.size]
                if len(raw) != entry.size:
                    raise ValueError(f"section {entry.name} runs past the end")
                array = np.frombuffer(raw, dtype=np.dtype(entry.dtype))
                sections[entry.name] = array.reshape(entry.shape)
            target = envelope.target
        except SchemaError as e:
            raise DlhwcError(f"malformed container: {e.reason}", file=source) from None
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


# -- the header schema ------------------------------------------------------------------

SYMBOL_KINDS = ("input", "output", "transfer", "constant")


@dataclass(kw_only=True)
class Section(Record):
    """One entry of the section table: where a named numpy array lies in the file."""

    name: str = field("the section's name (`text`, `host0`, `L0.B0.spmat`, ...)")
    dtype: str = field("numpy dtype string, little-endian or byte-order free (`<u8`, `|u1`)")
    shape: list[int] = field("the array's shape", ge=0)
    offset: int = field("bytes from the end of the header to the section's start", ge=0)
    size: int = field("bytes of data (the section is then padded to 8 bytes)", ge=0)

    def check(self, path: str, context: dict) -> None:
        try:
            dtype = np.dtype(self.dtype)
        except (TypeError, ValueError, SyntaxError):
            raise invalid(f"{path}.dtype", f"not a numpy dtype: {self.dtype!r}") from None
        if math.prod(self.shape) * dtype.itemsize != self.size:
            raise invalid(path, f"{self.dtype} {self.shape} is not {self.size} bytes")


@dataclass(kw_only=True)
class Envelope(Record):
    """The header fields the container writes itself (`Container.target`, its sections)."""

    target: str = field("the target's name: which ISA, config and simulator")
    sections: list[Section] = field("the section table, in file order")


@dataclass(kw_only=True)
class Symbol(Record):
    """A tensor crossing between host and accelerator: a program input or output, a
    transfer between the accelerator and a host segment, or a constant the accelerator
    reads (its host values are a section)."""

    name: str = field("the tensor's name; program inputs and outputs keep the model's")
    kind: str = field("what the tensor is to the program", choices=SYMBOL_KINDS)
    shape: tuple[int, ...] = field(
        "per vector (batch row): the host tensor's shape without the batch axis; -1 for a "
        "dimension the data decides (a sequence's length); the whole shape when "
        "`batch_axis` is null",
        ge=-1,
    )
    format: FixedFormat | None = field(
        "the fixed-point format on the accelerator; null for a tensor only the host reads"
    )
    batch_axis: int | None = field(
        "the host tensor's batch axis; null: no batch, the tensor passes to the host as it is",
        default=0,
        ge=0,
        omit_default=True,
    )
    dtype: str = field("numpy dtype of the host tensor", default="float32", omit_default=True)
    section: str | None = field(
        "the section holding a constant's values", default=None, omit_default=True
    )

    def check(self, path: str, context: dict) -> None:
        if self.batch_axis is not None and self.batch_axis > len(self.shape):
            raise invalid(
                f"{path}.batch_axis",
                f"expected int in [0, {len(self.shape)}] (the shape has {len(self.shape)} "
                f"dimensions), got {self.batch_axis}",
            )
        try:
            self.dtype = str(np.dtype(self.dtype))
        except (TypeError, ValueError, SyntaxError):
            raise invalid(f"{path}.dtype", f"not a numpy dtype: {self.dtype!r}") from None

    @property
    def size(self) -> int:
        """Elements per vector (the shape must be static)."""
        return math.prod(self.shape)

    def rows(self, array: np.ndarray) -> np.ndarray:
        """The host tensor as [batch, *shape] (the batch axis moved first)."""
        return np.moveaxis(array, self.batch_axis, 0) if self.batch_axis else array

    def host(self, rows: np.ndarray) -> np.ndarray:
        """[batch, *shape] back to the host tensor's layout."""
        return np.moveaxis(rows, 0, self.batch_axis) if self.batch_axis else rows

    def describe(self) -> str:
        """The expected host tensor, e.g. ``[8, batch, 16] float32``."""
        dims = ["?" if d < 0 else str(d) for d in self.shape]
        if self.batch_axis is not None:
            dims.insert(self.batch_axis, "batch")
        return f"[{', '.join(dims)}] {self.dtype}"


@dataclass(kw_only=True)
class HostSegment(Record):
    """A maximal run of host ops, exported as one ONNX model run by onnxruntime."""

    name: str = field("the segment's name (`host<s>`)")
    inputs: list[int] = field("the symbols it reads (indices into `symbols`)", ge=0)
    outputs: list[int] = field("the symbols it writes (indices into `symbols`)", ge=0)
    ops: list[str] = field("its ops in program order (ONNX op types or dialect names)")
    section: str = field("the uint8 section holding its ONNX model")


@dataclass(kw_only=True)
class Placement(Record):
    """Where one op of the program runs."""

    op: str = field("the op (`eie.fc`, `Softmax`, ...)")
    name: str = field("its layer or ONNX node name (may be empty)")
    where: str = field("the target's name, or `host`")
    reason: str | None = field(
        "why an op the target could run stays on the host", default=None, omit_default=True
    )


@dataclass(kw_only=True)
class Summary(Record):
    """Weights and multiply-accumulates on the accelerator and on the host (dense, per
    input row; see backends/program.placement_summary)."""

    weights_accel: int = field("weight-matrix elements the accelerator runs", ge=0)
    weights_host: int = field("weight-matrix elements left to the host", ge=0)
    macs_accel: int = field("multiply-accumulates per input row on the accelerator", ge=0)
    macs_host: int = field("multiply-accumulates per input row on the host", ge=0)
    host_ops: int = field("ops that run on the host", ge=0)


@dataclass(kw_only=True)
class ColumnBlock(Record):
    """Columns col_start..col_end-1 of a sparse matrix: one weight load of the PE SRAMs."""

    col_start: int = field("its first column", ge=0)
    col_end: int = field("one past its last column", ge=0)
    entries: list[int] = field("per PE: its entries, fillers included", ge=0)
    fillers: list[int] = field("per PE: its filler entries", ge=0)

    def check(self, path: str, context: dict) -> None:
        pes = context.get("num_pes")
        for key in ("entries", "fillers"):
            counts = getattr(self, key)
            if pes is not None and len(counts) != pes:
                raise invalid(
                    f"{path}.{key}", f"expected {pes} counts (one per PE), got {len(counts)}"
                )
        if self.col_start > self.col_end:
            raise invalid(path, f"col_start {self.col_start} is past col_end {self.col_end}")

    @property
    def ncols(self) -> int:
        return self.col_end - self.col_start


def check_tiling(blocks: list[ColumnBlock], cols: int, path: str) -> None:
    """The column blocks of a matrix tile its columns [0, cols) in order: the column count
    the simulator works with is the one the data has."""
    end = 0
    for block in blocks:
        if block.col_start != end:
            raise invalid(path, f"column blocks do not tile its {cols} columns")
        end = block.col_end
    if end != cols:
        raise invalid(path, f"column blocks cover {end} of its {cols} columns")


LAYER_RECORDS: dict[str, type[Layer]] = {}
"""The layer record of each target, by target name (`register_layer_record`)."""


def register_layer_record(target: str):
    """Class decorator: ``cls`` is the layer record of ``target``'s containers."""

    def register(cls: type[Layer]) -> type[Layer]:
        LAYER_RECORDS[target] = cls
        return cls

    return register


@dataclass(kw_only=True)
class Layer(Record):
    """The fields every target's layer record has; a target's record adds its own."""

    DOC_NAME: ClassVar[str] = "Layer"

    name: str = field("the layer's name (the model's node name, or a generated one)")
    nonzeros: int = field("the layer's non-zero weights (fillers not counted)", ge=0)

    @classmethod
    def resolve(cls, context: dict) -> type[Record] | None:
        """The record of the target ``context["target"]`` (for the base class)."""
        if cls is not Layer:
            return cls
        name = context.get("target")
        if name in LAYER_RECORDS:
            return LAYER_RECORDS[name]
        from dlhwc.spec.targets import targets

        target = targets().get(name) if isinstance(name, str) else None
        return target.layer_record if target is not None else None


@dataclass(kw_only=True)
class Header(Record):
    """The program header: `Container.header` is its JSON form."""

    producer: str | None = field(
        "the dlhwc version that wrote the container", default=None, omit_default=True
    )
    hw: dict = field(
        "the target's hardware config: the fields of its config class "
        "(spec/<target>/config.py), which checks them"
    )
    symbols: list[Symbol] = field("the symbol table; instructions name symbols by index")
    host_segments: list[HostSegment] = field("the host segments; `host seg` runs one")
    layers: list[Layer] | None = field(
        "the target's layer table; instructions name layers by index",
        default=None,
        omit_default=True,
    )
    resident: bool | None = field(
        "whether every layer's weights fit the PE SRAMs together and stay loaded across vectors",
        default=None,
        omit_default=True,
    )
    placement: list[Placement] | None = field(
        "which op runs where, in program order", default=None, omit_default=True
    )
    summary: Summary | None = field(
        "weights and MACs on the accelerator and on the host", default=None, omit_default=True
    )

    def check(self, path: str, context: dict) -> None:
        names = set()
        for i, sym in enumerate(self.symbols):
            if sym.name in names:
                raise invalid(f"{path}.symbols[{i}].name", f"'{sym.name}' is not unique")
            names.add(sym.name)
        for s, seg in enumerate(self.host_segments):
            for key in ("inputs", "outputs"):
                for i, sym in enumerate(getattr(seg, key)):
                    if sym >= len(self.symbols):
                        raise invalid(
                            f"{path}.host_segments[{s}].{key}[{i}]",
                            f"no symbol {sym} (the table has {len(self.symbols)})",
                        )


def read_header(container: Container, **context) -> Header:
    """The typed header of ``container`` (`SchemaError` naming the field otherwise).

    ``context`` reaches every record's check: ``num_pes`` makes the column blocks'
    per-PE counts checked against the machine."""
    return Header.from_json(container.header, "header", {"target": container.target, **context})


def header_markdown(target: str, heading: str = "###") -> str:
    """The reference of ``target``'s container header, generated from the records: the
    header's fields (`Envelope`'s and `Header`'s, with the target's layer record), then
    each record they hold with its description and fields."""
    context = {"target": target}
    head, envelope = Header.markdown(context), Envelope.markdown(context)
    lines = head.splitlines()[:2] + envelope.splitlines()[2:] + head.splitlines()[2:]
    out = [f"{heading} The header", "", *lines, ""]
    for record in [*Envelope.nested(context)[1:], *Header.nested(context)[1:]]:
        doc = " ".join(inspect.cleandoc(record.__doc__ or "").split())
        if issubclass(record, Layer) and record is not Layer:
            common = ", ".join(f"`{f.name}`" for f in dataclasses.fields(Layer))
            doc += f" Its first fields, {common}, are those every layer record has (`Layer`)."
        out += [f"{heading} `{record.doc_name()}`", "", doc, "", record.markdown(context)]
    return "\n".join(out).rstrip() + "\n"
