"""Content hashes of images: everything that determines an image, and nothing else.

A role's hash covers its recipe files (path in the build context, executable bit, bytes),
its settings (the normalized package list, the Debian suite/mirror/variant/arch), the tag
of its parent image and FORMAT_VERSION. A change anywhere upstream therefore changes the
parent's tag and with it every descendant's tag.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable

from labctl.images.recipes import ContextFile, Recipe

# Bump when the builder's own code changes what it produces from the same recipe
# (debootstrap options, post-processing, import changes, labels).
FORMAT_VERSION = "1"
REPOSITORY_PREFIX = "labctl"
TAG_HEX_LENGTH = 12


def file_digest_line(entry: ContextFile) -> str:
    """One manifest line: context path, kind/mode, content digest."""
    info = os.lstat(entry.source)
    if stat.S_ISLNK(info.st_mode):
        kind, payload = "link", os.readlink(entry.source).encode()
    else:
        kind = "exec" if info.st_mode & 0o111 else "file"
        payload = entry.source.read_bytes()
    return f"{entry.dest.as_posix()}\t{kind}\t{hashlib.sha256(payload).hexdigest()}"


def manifest(
    role: str,
    parent_tag: str | None,
    files: Iterable[ContextFile],
    settings: Iterable[tuple[str, str]] = (),
) -> str:
    """The text that is hashed; kept readable so a surprising rebuild can be explained."""
    lines = [
        f"labctl-image-format\t{FORMAT_VERSION}",
        f"role\t{role}",
        f"parent\t{parent_tag or '-'}",
    ]
    lines += [f"setting\t{key}\t{value}" for key, value in sorted(settings)]
    lines += sorted(f"file\t{file_digest_line(entry)}" for entry in files)
    return "\n".join(lines) + "\n"


def content_hash(recipe: Recipe, parent_tag: str | None) -> str:
    """The full sha256 hex digest of a recipe's manifest."""
    if (recipe.parent is None) != (parent_tag is None):
        raise ValueError(f"role {recipe.role!r}: parent tag {parent_tag!r} does not fit the recipe")
    text = manifest(recipe.role, parent_tag, recipe.files, recipe.settings)
    return hashlib.sha256(text.encode()).hexdigest()


def repository(role: str) -> str:
    return f"{REPOSITORY_PREFIX}/{role}"


def image_tag(role: str, digest: str) -> str:
    """The image reference for a role and content hash, e.g. labctl/node:0123456789ab."""
    return f"{repository(role)}:{digest[:TAG_HEX_LENGTH]}"
