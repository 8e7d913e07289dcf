"""labctl's container images, built locally from Debian packages (no registry needed).

Roles and how they are built (recipes are data in the project's top-level `images/`):

    base  debootstrap --variant=minbase of Debian bookworm with images/base/packages.txt,
          slimmed (no docs/man/translations, no apt lists or .debs), then `docker import`.
    node  FROM base: tini as PID 1 -> /usr/local/sbin/labctl-init -> sshd with the host
          key and authorized_keys labctl puts into /etc/labctl/ssh/ before start.
    vpn   FROM node: labctl/__init__.py, ike/, esp/, agent/ under /opt/labctl/labctl/ and
          /usr/local/bin/vpn (python3 -m labctl.agent.cli with PYTHONPATH=/opt/labctl).
    strongswan  FROM node: Debian's charon-systemd, swanctl and extra plugins (apt-get, the
          one build with a network), labctl's helper scripts for strongSwan and vpnc.
          Built on demand only (not in DEFAULT_ROLES): `up` asks for the roles its nodes use.

Node kinds map to roles through their specs (labctl.kinds: each implementation names its
image role): host, router, pat-firewall -> node; concentrator, vpn-client -> vpn.

Tags are content hashes: `labctl/<role>:<12 hex>` over the recipe files, the normalized
package list, the Debian suite/mirror/variant/arch, the parent's tag and (vpn) the copied
sources without __pycache__. Images carry labels `labctl.image=<role>`,
`labctl.content-hash=<sha256>` and, for node/vpn, `labctl.parent-id=<parent image ID>` (an
image whose parent was rebuilt under the same tag is stale and gets rebuilt). With nothing
changed, `ensure_images` only hashes and looks the tags up. A per-tag fcntl lock makes
concurrent labctl processes build each image once.

Public API:

    ensure_images(project_root: Path | None = None, progress: ProgressFn | None = None,
                  *, force: bool = False, roles=DEFAULT_ROLES)
        -> ImageSet                  # role -> tag (.tags, .ids, .built, .for_kind(kind))
    project_root() -> Path           # the checkout holding images/ (default everywhere)
    build(role: str, force: bool = False, *, project_root=None, progress=None) -> str
    list_images(*, project_root=None) -> list[ImageInfo]
        # ImageInfo(role, tag, image_id, size, created, in_use_by, current)
    prune(keep_current: bool = True, *, roles=None, project_root=None, progress=None)
        -> list[str]                 # removed tags (IDs for untagged images)
    current_tags(project_root=None) -> dict[str, str]   # from the recipes, no Docker
    image_role_for_kind(kind: str) -> str
    ImageBuilder(project_root, progress=..., cache_dir=..., client=...)  # the same, as methods
    ConsoleProgress(stream=None)      # a progress callback for CLIs (TTY line or plain lines)

`progress(stage, detail)` is called with stages like "base: debootstrap", "base: import",
"node: build" and details like "unpacking 40/156 packages, 21 s"; a new stage means the
previous one ended. During debootstrap it is called about once a second (the elapsed time
moves), so render it as a rewritten status line or rate-limit it: `ConsoleProgress` does
the first on a TTY and the second elsewhere. Each role ends with one call
(role, "built <tag> in 12.3 s") or (role, "<tag> up to date").

Errors are one line: `ImageBuildError` ("image build failed at base: debootstrap:
debootstrap: Couldn't find these debs: foo (log: /var/cache/labctl/logs/base-....log)"),
`DockerUnavailableError`, `RecipeError` (names the recipe file and line).

The project root (recipes and copied sources) defaults to the checkout labctl is imported
from; LABCTL_PROJECT_ROOT overrides it. Host-side files live under the cache directory
(LABCTL_CACHE_DIR, default /var/cache/labctl for root): `logs/<role>-<hash>.log` (full
debootstrap / docker build output), `locks/`, `debootstrap/` (the .deb cache, trimmed to
the last build's packages) and `tmp/` (scratch root file systems and build contexts,
removed after each build).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from labctl.images.builder import (
    ImageBuilder,
    ImageInfo,
    ImageSet,
    PlannedImage,
    default_cache_dir,
    default_project_root,
)
from labctl.images.errors import (
    DockerUnavailableError,
    ImageBuildError,
    ImageError,
    RecipeError,
)
from labctl.images.progress import ConsoleProgress, ProgressFn
from labctl.images.recipes import DEFAULT_ROLES, ROLES, image_role_for_kind

__all__ = [
    "DEFAULT_ROLES",
    "ROLES",
    "ConsoleProgress",
    "DockerUnavailableError",
    "ImageBuildError",
    "ImageBuilder",
    "ImageError",
    "ImageInfo",
    "ImageSet",
    "PlannedImage",
    "ProgressFn",
    "RecipeError",
    "build",
    "current_tags",
    "default_cache_dir",
    "default_project_root",
    "ensure_images",
    "image_role_for_kind",
    "list_images",
    "project_root",
    "prune",
]


def ensure_images(
    project_root: Path | None = None,
    progress: ProgressFn | None = None,
    *,
    force: bool = False,
    roles: Iterable[str] = DEFAULT_ROLES,
) -> ImageSet:
    """Build whatever current image of `roles` (and their parents) is missing (force: all);
    return role -> tag for those roles and their parents."""
    return ImageBuilder(project_root, progress=progress).ensure(roles, force=force)


def project_root() -> Path:
    """The project checkout whose images/ recipes (and labctl/ sources) this labctl uses."""
    return default_project_root()


def build(
    role: str,
    force: bool = False,
    *,
    project_root: Path | None = None,
    progress: ProgressFn | None = None,
) -> str:
    """Build one role's image (force: even if its tag exists); return the tag."""
    return ImageBuilder(project_root, progress=progress).build(role, force=force)


def list_images(*, project_root: Path | None = None) -> list[ImageInfo]:
    """Every labctl image in the engine, parents first, marked current or not."""
    return ImageBuilder(project_root).list_images()


def prune(
    keep_current: bool = True,
    *,
    roles: Iterable[str] | None = None,
    project_root: Path | None = None,
    progress: ProgressFn | None = None,
) -> list[str]:
    """Remove labctl images that no container uses (and that are not current)."""
    builder = ImageBuilder(project_root, progress=progress)
    return builder.prune(keep_current=keep_current, roles=roles)


def current_tags(project_root: Path | None = None) -> dict[str, str]:
    """role -> the tag today's recipes produce (computed, Docker not consulted)."""
    return {role: planned.tag for role, planned in ImageBuilder(project_root).plan().items()}
