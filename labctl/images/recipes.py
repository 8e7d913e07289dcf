"""Image recipes: which roles exist, what each is built from, which files feed its hash.

Recipes are data in the project's top-level `images/` folder; this module only reads them.
The list of files a recipe returns is used twice, for the content hash and for the build
context, so the hash always covers exactly what the build sees.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

from labctl.images.errors import RecipeError

ROLES: tuple[str, ...] = ("base", "node", "vpn", "strongswan")
PARENT_ROLE: dict[str, str | None] = {
    "base": None,
    "node": "base",
    "vpn": "node",
    "strongswan": "node",
}
# What `labctl images build` and `ensure_images()` build when no role is named. The others
# are built on demand: `up` builds the roles its topology's nodes run on.
DEFAULT_ROLES: tuple[str, ...] = ("base", "node", "vpn")

# Node-side Python copied into the vpn image (whichever of these exist in the project).
VPN_SOURCES: tuple[str, ...] = (
    "labctl/__init__.py",
    "labctl/cryptocompat.py",
    "labctl/libcrypto.py",
    "labctl/ike",
    "labctl/esp",
    "labctl/agent",
)
VPN_SOURCE_DEST = PurePosixPath("src")

MIRROR_ENV = "LABCTL_DEBIAN_MIRROR"
_PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")  # Debian policy 5.6.1
_IGNORED_NAMES = ("__pycache__",)
_IGNORED_SUFFIXES = (".pyc", ".pyo")


def image_role_for_kind(kind: str) -> str:
    """The image role a topology node kind runs on by default (its spec's first
    implementation's; a node naming another implementation may run on another)."""
    from labctl.kinds.registry import UnknownKindError, spec_of  # the model: not for builds

    try:
        return spec_of(kind).implementations[0].image_role
    except UnknownKindError as exc:
        raise ValueError(f"{exc}: no image for it") from None


@dataclass(frozen=True)
class ContextFile:
    """One file of a build context: where it comes from and where it goes in the context."""

    dest: PurePosixPath
    source: Path


@dataclass(frozen=True)
class DebianSource:
    suite: str
    mirror: str
    variant: str
    components: tuple[str, ...]
    arch: str


@dataclass(frozen=True)
class BaseConfig:
    """Everything debootstrap and the post-processing of the base root file system need."""

    source: DebianSource
    packages: tuple[str, ...]
    cleanup_globs: tuple[str, ...]
    overlay_dir: Path


@dataclass(frozen=True)
class Recipe:
    """A role's inputs: its context files and the settings (besides files) that shape it."""

    role: str
    parent: str | None
    recipe_dir: Path
    files: tuple[ContextFile, ...]
    settings: tuple[tuple[str, str], ...]


def images_dir(project_root: Path) -> Path:
    path = project_root / "images"
    if not path.is_dir():
        raise RecipeError(
            f"{path}: image recipes folder not found (is {project_root} the project root?)"
        )
    return path


def load_recipe(project_root: Path, role: str) -> Recipe:
    if role not in PARENT_ROLE:
        raise RecipeError(f"unknown image role {role!r} (roles: {', '.join(ROLES)})")
    recipe_dir = images_dir(project_root) / role
    if not recipe_dir.is_dir():
        raise RecipeError(f"{recipe_dir}: recipe folder for role {role!r} is missing")
    if role == "base":
        base = load_base_config(project_root)
        # packages.txt and debian.toml enter the hash through their parsed values below
        files = tuple(
            f for f in tree_files(recipe_dir) if str(f.dest) not in ("packages.txt", "debian.toml")
        )
        src = base.source
        settings = (
            ("debian.suite", src.suite),
            ("debian.mirror", src.mirror),
            ("debian.variant", src.variant),
            ("debian.components", ",".join(src.components)),
            ("debian.arch", src.arch),
            ("packages", ",".join(base.packages)),
        )
        return Recipe(role, None, recipe_dir, files, settings)
    _require(recipe_dir / "Dockerfile")
    files = tuple(tree_files(recipe_dir))
    if role == "vpn":
        files += tuple(vpn_source_files(project_root))
    return Recipe(role, PARENT_ROLE[role], recipe_dir, files, ())


def load_base_config(project_root: Path) -> BaseConfig:
    base_dir = images_dir(project_root) / "base"
    packages = parse_package_list(_require(base_dir / "packages.txt"))
    debian_path = _require(base_dir / "debian.toml")
    try:
        debian = tomllib.loads(debian_path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{debian_path}: {exc}") from None
    source = DebianSource(
        suite=_string_field(debian_path, debian, "suite"),
        mirror=os.environ.get(MIRROR_ENV) or _string_field(debian_path, debian, "mirror"),
        variant=_string_field(debian_path, debian, "variant"),
        components=tuple(_list_field(debian_path, debian, "components")),
        arch=host_debian_arch(),
    )
    cleanup_path = base_dir / "cleanup.txt"
    cleanup = parse_line_list(cleanup_path) if cleanup_path.exists() else ()
    for line_no, glob in cleanup:
        if glob.startswith("/") or ".." in PurePosixPath(glob).parts:
            raise RecipeError(
                f"{cleanup_path}:{line_no}: {glob!r} must be relative to the root "
                "file system and must not contain '..'"
            )
    return BaseConfig(
        source=source,
        packages=packages,
        cleanup_globs=tuple(glob for _, glob in cleanup),
        overlay_dir=base_dir / "rootfs",
    )


def parse_line_list(path: Path) -> tuple[tuple[int, str], ...]:
    """Non-empty lines of a list file with `#` comments removed, with their line numbers."""
    entries = []
    for line_no, raw in enumerate(path.read_text().splitlines(), start=1):
        text = raw.split("#", 1)[0].strip()
        if text:
            entries.append((line_no, text))
    return tuple(entries)


def parse_package_list(path: Path) -> tuple[str, ...]:
    """The normalized (sorted, de-duplicated) package names of a packages.txt."""
    names: set[str] = set()
    for line_no, text in parse_line_list(path):
        for name in text.split():
            if not _PACKAGE_NAME.match(name):
                raise RecipeError(f"{path}:{line_no}: {name!r} is not a valid Debian package name")
            names.add(name)
    if not names:
        raise RecipeError(f"{path}: the package list is empty")
    return tuple(sorted(names))


_CONTEXT_ROOT = PurePosixPath()


def tree_files(root: Path, dest_prefix: PurePosixPath = _CONTEXT_ROOT) -> Iterator[ContextFile]:
    """Files (and symlinks) under `root`, sorted, without __pycache__ and compiled Python."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_NAMES)
        here = Path(dirpath)
        for name in sorted(filenames):
            if name.endswith(_IGNORED_SUFFIXES):
                continue
            path = here / name
            yield ContextFile(dest_prefix / path.relative_to(root).as_posix(), path)
        # os.walk lists symlinks to directories as directories; keep them as links
        for name in list(dirnames):
            if (here / name).is_symlink():
                dirnames.remove(name)
                path = here / name
                yield ContextFile(dest_prefix / path.relative_to(root).as_posix(), path)


def vpn_source_files(project_root: Path) -> Iterator[ContextFile]:
    for rel in VPN_SOURCES:
        path = project_root / rel
        if path.is_file():
            yield ContextFile(VPN_SOURCE_DEST / rel, path)
        elif path.is_dir():
            yield from tree_files(path, VPN_SOURCE_DEST / rel)


@cache
def host_debian_arch() -> str:
    """The Debian architecture to bootstrap: the host's (containers run natively)."""
    try:
        out = subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        machine = os.uname().machine
        return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _require(path: Path) -> Path:
    if not path.is_file():
        raise RecipeError(f"{path}: recipe file missing")
    return path


def _string_field(path: Path, data: dict[str, object], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise RecipeError(f"{path}: field {key!r} must be a non-empty string, got {value!r}")
    return value


def _list_field(path: Path, data: dict[str, object], key: str) -> list[str]:
    value = data.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise RecipeError(f"{path}: field {key!r} must be a non-empty list of strings")
    return value
