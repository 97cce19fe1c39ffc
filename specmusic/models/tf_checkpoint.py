"""Read TensorFlow checkpoints (the "tensor bundle" format) with numpy alone — no TensorFlow.

A TF1/TF2 checkpoint ``prefix`` is two files: ``prefix.index`` and ``prefix.data-00000-of-0000N``.
The index is a LevelDB-style sorted string table (SSTable):

* data blocks of key/value entries, keys prefix-compressed against the previous key
  (``varint shared, varint non_shared, varint value_len, key[shared:]…, value``), each block
  ending with an array of uint32 restart offsets and their uint32 count, and followed by a
  5-byte trailer (compression type, masked crc32c);
* an index block whose entries map the last key of each data block to that block's handle
  (``varint offset, varint size``);
* a 48-byte footer: the metaindex and index block handles, zero padding, and the 8-byte magic
  ``0xdb4775248b80fb57`` (little-endian).

The empty key holds a ``BundleHeaderProto``; every other key is a variable name whose value is a
``BundleEntryProto`` (protobuf): ``dtype`` (1), ``shape`` (2: a ``TensorShapeProto`` of ``dim`` (2)
messages with ``size`` (1)), ``shard_id`` (3), ``offset`` (4), ``size`` (5), ``crc32c`` (6). The
tensor is ``size`` raw little-endian bytes at ``offset`` in data shard ``shard_id``. This module
parses exactly that (uncompressed blocks, which is what TensorFlow writes for bundles) with a
hand-written protobuf varint decoder, so the converter in :mod:`specmusic.models.musicnn` needs
neither TensorFlow nor the ``protobuf`` package.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from specmusic.errors import ModelError

__all__ = ["list_checkpoint", "read_checkpoint"]

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER = 5
#: TensorFlow ``DataType`` enum values → numpy dtypes (little-endian).
TF_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"), 5: np.dtype("<i2"),
    6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("?"), 17: np.dtype("<u2"), 19: np.dtype("<f2"),
    22: np.dtype("<u4"), 23: np.dtype("<u8"),
}  # fmt: skip


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at ``pos``: (value, next position)."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of a protobuf message: ints for varint/fixed, bytes for length-delimited."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((field, value))
        elif wire == 1:
            out.append((field, struct.unpack_from("<Q", buf, pos)[0]))
            pos += 8
        elif wire == 5:
            out.append((field, struct.unpack_from("<I", buf, pos)[0]))
            pos += 4
        elif wire == 2:
            n, pos = _varint(buf, pos)
            out.append((field, buf[pos : pos + n]))
            pos += n
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def _block_entries(data: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """Key/value entries of the SSTable block at ``offset`` (``size`` bytes, trailer excluded)."""
    block = data[offset : offset + size]
    if data[offset + size] != 0:
        raise ValueError("compressed SSTable block (TensorFlow bundles are uncompressed)")
    (n_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * n_restarts
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


def _sstable(index_bytes: bytes) -> list[tuple[bytes, bytes]]:
    """Every key/value entry of an SSTable file, in key order."""
    if len(index_bytes) < FOOTER_SIZE:
        raise ValueError("too short for an SSTable")
    footer = index_bytes[-FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)[0] != TABLE_MAGIC:
        raise ValueError("no SSTable magic number in the footer")
    _, pos = _varint(footer, 0)  # metaindex handle (unused)
    _, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    entries = []
    for _, handle in _block_entries(index_bytes, index_offset, index_size):
        block_offset, p = _varint(handle, 0)
        block_size, _ = _varint(handle, p)
        entries.extend(_block_entries(index_bytes, block_offset, block_size))
    return entries


def _entry(value: bytes) -> tuple[int, tuple[int, ...], int, int, int]:
    """(dtype, shape, shard_id, offset, size) of a ``BundleEntryProto``."""
    dtype, shape, shard, offset, size = 0, (), 0, 0, 0
    for field, v in _proto_fields(value):
        if field == 1:
            dtype = int(v)  # type: ignore[arg-type]
        elif field == 2:
            dims = [d for f, d in _proto_fields(v) if f == 2]  # type: ignore[arg-type]
            shape = tuple(int(dict(_proto_fields(d)).get(1, 0)) for d in dims)  # type: ignore[arg-type]
        elif field == 3:
            shard = int(v)  # type: ignore[arg-type]
        elif field == 4:
            offset = int(v)  # type: ignore[arg-type]
        elif field == 5:
            size = int(v)  # type: ignore[arg-type]
        elif field == 7:
            raise ValueError("partitioned (sliced) variables are not supported")
    return dtype, shape, shard, offset, size


def _index_path(prefix: str | os.PathLike[str]) -> tuple[Path, str]:
    """``prefix.index`` and the prefix as a string; accepts the prefix or the ``.index`` file itself."""
    p = str(prefix)
    p = p.removesuffix(".index")
    return Path(p + ".index"), p


def list_checkpoint(prefix: str | os.PathLike[str]) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Variable names of checkpoint ``prefix`` → (dtype, shape), without reading the data file.

    Raises
    ------
    ModelError
        The index file is missing or not a tensor bundle index.
    """
    index, _ = _index_path(prefix)
    out = {}
    for name, (dtype, shape, *_rest) in _entries(index).items():
        out[name] = (TF_DTYPES.get(dtype, np.dtype("V1")), shape)
    return out


def _entries(index: Path) -> dict[str, tuple[int, tuple[int, ...], int, int, int]]:
    try:
        raw = index.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read the TensorFlow checkpoint index {index} ({exc.strerror}) — "
                         "pass the checkpoint prefix (the path without .index)") from exc  # fmt: skip
    try:
        return {k.decode("utf-8"): _entry(v) for k, v in _sstable(raw) if k}
    except (ValueError, struct.error, IndexError, UnicodeDecodeError) as exc:
        raise ModelError(f"{index} is not a TensorFlow checkpoint index ({exc}) — "
                         "pass the .index file of a TF checkpoint") from exc  # fmt: skip


def read_checkpoint(prefix: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every variable of the TensorFlow checkpoint ``prefix`` as numpy arrays (TF layouts kept).

    Parameters
    ----------
    prefix : the checkpoint prefix (``…/model`` for ``model.index`` + ``model.data-00000-of-00001``),
        or the ``.index`` file

    Raises
    ------
    ModelError
        A missing or malformed file, an unsupported dtype, or a tensor outside its data shard.
    """
    index, base = _index_path(prefix)
    entries = _entries(index)
    n_shards = 1 + max((e[2] for e in entries.values()), default=0)
    shards: dict[int, bytes] = {}
    out = {}
    for name, (dtype, shape, shard, offset, size) in sorted(entries.items()):
        if dtype not in TF_DTYPES:
            raise ModelError(f"{index}: variable {name} has TensorFlow dtype {dtype}, which this reader "
                             "does not handle — only numeric tensors are supported")  # fmt: skip
        if shard not in shards:
            path = Path(f"{base}.data-{shard:05d}-of-{n_shards:05d}")
            try:
                shards[shard] = path.read_bytes()
            except OSError as exc:
                raise ModelError(f"cannot read {path} ({exc.strerror}) — the checkpoint's data file must sit "
                                 "beside its .index") from exc  # fmt: skip
        dt = TF_DTYPES[dtype]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if count * dt.itemsize != size or offset + size > len(shards[shard]):
            raise ModelError(f"{index}: variable {name} ({shape}, {size} bytes at {offset}) does not fit "
                             "its data file — the checkpoint is truncated or corrupt")  # fmt: skip
        out[name] = np.frombuffer(shards[shard], dtype=dt, count=count, offset=offset).reshape(shape).copy()
    return out
