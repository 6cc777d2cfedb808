"""Helpers for tests that edit trace files."""
from __future__ import annotations

import hashlib
import json
import zipfile

from accelsim.trace.file_format import METADATA_MEMBER
from accelsim.trace.writer import metadata_sha256


def rewrite(src, dst, members=None, meta=None, fix_sha=True, drop=()):
    """Copy a trace, replacing member bytes, dropping members (and their metadata entries)
    and/or editing the metadata; optionally re-record SHAs."""
    members = members or {}
    with zipfile.ZipFile(src) as zin:
        contents = {i.filename: zin.read(i.filename) for i in zin.infolist()}
    metadata = json.loads(contents[METADATA_MEMBER])
    for name in drop:
        del contents[name]
        del metadata["members"][name]
    for name, edit in members.items():
        contents[name] = edit(contents[name]) if callable(edit) else edit
        if fix_sha:
            metadata["members"][name]["sha256"] = hashlib.sha256(contents[name]).hexdigest()
    if meta is not None:
        meta(metadata)
    if fix_sha:  # a consistent forgery: what the later checks must catch on their own
        metadata["metadata_sha256"] = metadata_sha256(metadata)
    contents[METADATA_MEMBER] = json.dumps(metadata).encode()
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for name, data in contents.items():
            zout.writestr(name, data)
    return dst
