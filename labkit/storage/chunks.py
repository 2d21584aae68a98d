"""Chunks: fixed-size pieces of a file, each named by the SHA-256 of its bytes
(content addressing: a chunk can be checked on every read, and two files that
share bytes share chunks); and the checks a file's name and bytes must pass
before the file system takes them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from labkit.errors import ConfigError


def chunk_id(data: bytes) -> str:
    """A chunk's name: the SHA-256 of its bytes, in hex."""
    return hashlib.sha256(data).hexdigest()


def split(data: bytes, chunk_size: int) -> list[bytes]:
    """Cut data into chunks of `chunk_size` bytes (the last may be shorter; an
    empty file has no chunks)."""
    return [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)]


MAX_NAME = 255


def check_name(file_name: Any) -> str:
    """Return file_name if it is a plain relative path: a non-empty str of at most
    255 characters, parts separated by "/", none of them empty, "." or "..", no
    backslash or control character (so no name can point outside the store)."""
    if not isinstance(file_name, str):
        raise TypeError(f"file_name must be a str, got {type(file_name).__name__} "
                        f"{file_name!r}")
    if not file_name or len(file_name) > MAX_NAME:
        raise ConfigError(f"file_name must have 1 to {MAX_NAME} characters, got "
                          f"{len(file_name)}")
    if "\\" in file_name or any(ord(c) < 32 or ord(c) == 127 for c in file_name):
        raise ConfigError(f"file_name may not contain a backslash or control "
                          f"characters, got {file_name!r}")
    if any(part in ("", ".", "..") for part in file_name.split("/")):
        raise ConfigError(f"file_name must be a relative path without empty, '.' or "
                          f"'..' parts (e.g. 'docs/a.txt'), got {file_name!r}")
    return file_name


def check_data(file_data: Any) -> bytes:
    """Return file_data as bytes if it is bytes-like (bytes, bytearray,
    memoryview); text must be encoded first."""
    if isinstance(file_data, str):
        raise TypeError("file_data must be bytes, got a str: encode it first, e.g. "
                        "text.encode('utf-8')")
    if not isinstance(file_data, bytes | bytearray | memoryview):
        raise TypeError(f"file_data must be bytes, bytearray or memoryview, got "
                        f"{type(file_data).__name__}")
    return bytes(file_data)
