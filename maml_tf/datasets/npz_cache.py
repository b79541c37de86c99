"""A prepared dataset's named arrays in one .npz, with the key it was made from and a checksum: read only while both hold, written atomically."""

import hashlib
import json
import os
import sys
import zipfile
from typing import Dict, Optional, Sequence

import numpy as np


def checksum(arrays: Sequence[np.ndarray]) -> str:
    """sha256 of the arrays' bytes, in order."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def read(path: str, key: Dict, fields: Sequence[str], name: str) -> Optional[Dict[str, np.ndarray]]:
    """{field: array} if `path` holds a cache made with `key` whose checksum holds, else None
    (one line to stderr says why a cache that is there is not used; `name` begins it)."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {f: saved[f] for f in fields}
            saved_key, saved_sum = json.loads(str(saved["key"])), str(saved["checksum"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        print(f"{name}: unreadable cache {path} ({type(err).__name__}), rebuilding", file=sys.stderr)
        return None
    if saved_key != key:
        print(f"{name}: stale cache {path} (made from other data or code), rebuilding",
              file=sys.stderr)
        return None
    if saved_sum != checksum([arrays[f] for f in fields]):
        print(f"{name}: corrupt cache {path} (checksum mismatch), rebuilding", file=sys.stderr)
        return None
    return arrays


def write(path: str, key: Dict, arrays: Dict[str, np.ndarray], name: str):
    """Atomic write (temp file + rename), so an interrupted run never leaves half a cache; a
    cache that cannot be written is said in one line and skipped."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp.npz"
        np.savez(tmp, key=json.dumps(key, sort_keys=True), checksum=checksum(list(arrays.values())),
                 **arrays)
        os.replace(tmp, path)
    except OSError as err:
        print(f"{name}: cannot write the cache {path} ({err}); continuing without it",
              file=sys.stderr)
