"""Build, find, list and prune labctl's images (see the package docstring for the API)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import docker
import docker.errors

from labctl.images import engine
from labctl.images.errors import ImageBuildError, RecipeError
from labctl.images.hashing import FORMAT_VERSION, content_hash, image_tag
from labctl.images.locking import build_once, file_lock, lock_holder
from labctl.images.progress import ProgressFn, no_progress
from labctl.images.recipes import (
    DEFAULT_ROLES,
    PARENT_ROLE,
    ROLES,
    BaseConfig,
    Recipe,
    image_role_for_kind,
    load_base_config,
    load_recipe,
)
from labctl.images.rootfs import (
    remove_tree,
    run_debootstrap,
    slim_rootfs,
    tar_stream,
    temporary_rootfs,
)

CACHE_DIR_ENV = "LABCTL_CACHE_DIR"
PROJECT_ROOT_ENV = "LABCTL_PROJECT_ROOT"
# What the imported base image runs with: docker import starts from an empty config.
_BASE_CONFIG_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["/bin/bash"]',
)


def default_project_root() -> Path:
    """LABCTL_PROJECT_ROOT, else the checkout this labctl package lives in.

    The recipes (images/) and the node-side sources the vpn image copies come from there;
    a non-editable install has no images/ folder, so point LABCTL_PROJECT_ROOT at a checkout.
    """
    if env := os.environ.get(PROJECT_ROOT_ENV):
        return Path(env)
    return Path(__file__).resolve().parents[2]


def default_cache_dir() -> Path:
    """Locks, logs, the debootstrap package cache and scratch space live here."""
    if env := os.environ.get(CACHE_DIR_ENV):
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/labctl")
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "labctl"


@dataclass(frozen=True)
class PlannedImage:
    """A role's image as the recipes say it should be: tag and full content hash."""

    role: str
    tag: str
    digest: str
    parent_tag: str | None
    recipe: Recipe


@dataclass(frozen=True)
class ImageSet:
    """The images a lab runs on: role -> tag, with their IDs and what this call built."""

    tags: Mapping[str, str]
    ids: Mapping[str, str]
    built: tuple[str, ...] = ()
    build_seconds: Mapping[str, float] = field(default_factory=dict)

    def __getitem__(self, role: str) -> str:
        return self.tags[role]

    def for_kind(self, kind: str) -> str:
        """The image tag a topology node kind runs on."""
        return self.tags[image_role_for_kind(kind)]


@dataclass(frozen=True)
class ImageInfo:
    """One labctl image known to the Docker engine."""

    role: str
    tag: str | None  # None for an untagged (dangling) labctl image
    image_id: str
    size: int  # bytes, including the parent layers
    created: datetime
    in_use_by: tuple[str, ...]  # names of containers created from this image
    current: bool  # the tag the recipes in the project produce today


class ImageBuilder:
    """Builds labctl's images from the recipes under `project_root/images/`."""

    def __init__(
        self,
        project_root: Path | None = None,
        *,
        progress: ProgressFn | None = None,
        cache_dir: Path | None = None,
        client: docker.DockerClient | None = None,
        package_cache: bool = True,
    ) -> None:
        self.project_root = (project_root or default_project_root()).resolve()
        self.progress: ProgressFn = progress or no_progress
        self.cache_dir = cache_dir or default_cache_dir()
        self.package_cache = package_cache
        self._client = client

    # -- what should exist -----------------------------------------------------------------

    def plan(self) -> dict[str, PlannedImage]:
        """Every role's tag from the recipes alone (no Docker needed), in build order."""
        planned: dict[str, PlannedImage] = {}
        for role in ROLES:
            recipe = load_recipe(self.project_root, role)
            parent = PARENT_ROLE[role]
            parent_tag = planned[parent].tag if parent else None
            digest = content_hash(recipe, parent_tag)
            planned[role] = PlannedImage(role, image_tag(role, digest), digest, parent_tag, recipe)
        return planned

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = engine.connect()
        return self._client

    # -- building --------------------------------------------------------------------------

    def ensure(self, roles: Iterable[str] = DEFAULT_ROLES, *, force: bool = False) -> ImageSet:
        """Make sure the current images of `roles` (and their ancestors) exist.

        force=True rebuilds all of them even if their tags exist.
        """
        plan = self.plan()
        wanted = _with_ancestors(roles)
        tags: dict[str, str] = {}
        ids: dict[str, str] = {}
        built: list[str] = []
        seconds: dict[str, float] = {}
        for role in ROLES:
            if role not in wanted:
                continue
            planned = plan[role]
            parent = PARENT_ROLE[role]
            parent_id = ids[parent] if parent else None
            started = time.monotonic()
            if build_once(
                self._lock_path(planned.tag),
                functools.partial(self._is_current, planned, parent_id, force),
                functools.partial(self._build, planned, parent_id, fresh=force),
                on_wait=functools.partial(self._report_wait, planned),
            ):
                built.append(role)
                seconds[role] = time.monotonic() - started
                self.progress(role, f"built {planned.tag} in {seconds[role]:.1f} s")
            else:
                self.progress(role, f"{planned.tag} up to date")
            tags[role] = planned.tag
            ids[role] = self._image_id(planned)
        return ImageSet(tags, ids, tuple(built), seconds)

    def build(self, role: str, force: bool = False) -> str:
        """Build one role's current image (its ancestors only if missing); returns its tag.

        force=True rebuilds it even if the tag exists. Images built FROM it notice the new
        parent ID (label labctl.parent-id) and are rebuilt by the next ensure().
        """
        if role not in PARENT_ROLE:
            raise RecipeError(f"unknown image role {role!r} (roles: {', '.join(ROLES)})")
        if not force:
            return self.ensure([role])[role]
        parent = PARENT_ROLE[role]
        parent_id = self.ensure([parent]).ids[parent] if parent else None
        planned = self.plan()[role]
        started = time.monotonic()
        with file_lock(self._lock_path(planned.tag), on_wait=lambda: self._report_wait(planned)):
            self._build(planned, parent_id, fresh=True)
        self.progress(role, f"built {planned.tag} in {time.monotonic() - started:.1f} s")
        return planned.tag

    def _is_current(self, planned: PlannedImage, parent_id: str | None, force: bool) -> bool:
        """Built and not to be rebuilt (--force rebuilds whatever is there)."""
        return not force and self._is_built(planned, parent_id)

    def _is_built(self, planned: PlannedImage, parent_id: str | None) -> bool:
        image = engine.find_image(self.client, planned.tag)
        if image is None:
            return False
        # same tag but built FROM an older parent (the parent was force-rebuilt): stale
        return parent_id is None or image.labels.get(engine.LABEL_PARENT_ID) == parent_id

    def _image_id(self, planned: PlannedImage) -> str:
        image = engine.find_image(self.client, planned.tag)
        if image is None:
            raise ImageBuildError(planned.role, f"{planned.tag} vanished right after the build")
        return image.id

    def _report_wait(self, planned: PlannedImage) -> None:
        holder = lock_holder(self._lock_path(planned.tag)) or "?"
        self.progress(
            planned.role, f"waiting for another labctl (pid {holder}) building {planned.tag}"
        )

    def _build(self, planned: PlannedImage, parent_id: str | None, *, fresh: bool) -> None:
        """Build one image; fresh=True also bypasses Docker's build cache (forced builds)."""
        try:
            if planned.role == "base":
                self._build_base(planned)
            else:
                assert planned.parent_tag is not None and parent_id is not None
                self._build_from_parent(planned, planned.parent_tag, parent_id, fresh)
        except docker.errors.DockerException as exc:
            raise ImageBuildError(planned.role, f"docker: {exc}") from None

    def _labels(self, planned: PlannedImage) -> dict[str, str]:
        return {
            engine.LABEL_ROLE: planned.role,
            engine.LABEL_HASH: planned.digest,
            "labctl.image-format": FORMAT_VERSION,
        }

    def _log_path(self, planned: PlannedImage) -> Path:
        logs = self.cache_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        path = logs / f"{planned.role}-{planned.digest[:12]}.log"
        with open(path, "w") as log:  # one log per attempt: the last one is what matters
            log.write(f"# {datetime.now(UTC).isoformat()} building {planned.tag}\n")
        return path

    def _build_base(self, planned: PlannedImage) -> None:
        config = load_base_config(self.project_root)
        log_path = self._log_path(planned)
        stage = "base: debootstrap"
        scratch = self.cache_dir / "tmp"
        package_cache = self.cache_dir / "debootstrap" if self.package_cache else None
        # One base build at a time per cache dir: debootstrap's --cache-dir is not safe for
        # two writers, and while we hold this lock every rootfs-* scratch directory is the
        # leftover of a killed build, safe to remove.
        with file_lock(
            self.cache_dir / "locks" / "rootfs.lock",
            on_wait=lambda: self.progress(stage, "waiting for another base build"),
        ):
            self._sweep_stale_rootfs(scratch)
            started = time.monotonic()
            self.progress(stage, f"{config.source.suite}, {len(config.packages)} packages asked")
            with temporary_rootfs(scratch) as target:
                counter = run_debootstrap(
                    config,
                    target,
                    cache_dir=package_cache,
                    log_path=log_path,
                    report=lambda detail: self.progress(stage, detail),
                )
                if package_cache is not None:
                    _trim_package_cache(package_cache, counter.retrieved)
                debootstrap_seconds = time.monotonic() - started
                self._slim_and_import(planned, config, target, log_path, debootstrap_seconds)

    def _sweep_stale_rootfs(self, scratch: Path) -> None:
        for leftover in sorted(scratch.glob("rootfs-*")):
            self.progress("base: debootstrap", f"removing {leftover}, left by a killed build")
            remove_tree(leftover)

    def _slim_and_import(
        self,
        planned: PlannedImage,
        config: BaseConfig,
        target: Path,
        log_path: Path,
        debootstrap_seconds: float,
    ) -> None:
        slim = slim_rootfs(target, config)
        self.progress(
            "base: slim",
            f"removed {slim.removed_files} paths ({_mib(slim.removed_bytes)}), "
            f"root file system {_mib(slim.size_bytes)}",
        )
        started = time.monotonic()
        changes = [f"LABEL {key}={value}" for key, value in self._labels(planned).items()]
        changes += _BASE_CONFIG_CHANGES
        with tar_stream(target, log_path) as chunks:
            engine.import_rootfs(
                self.client,
                chunks,
                planned.tag,
                changes,
                report=lambda sent: self.progress(
                    "base: import",
                    f"{_mib(sent)} of {_mib(slim.size_bytes)}, {time.monotonic() - started:.0f} s",
                ),
            )
        with open(log_path, "a") as log:
            log.write(
                f"# debootstrap {debootstrap_seconds:.1f} s, import "
                f"{time.monotonic() - started:.1f} s, rootfs {slim.size_bytes} bytes\n"
            )

    def _build_from_parent(
        self, planned: PlannedImage, parent_tag: str, parent_id: str, fresh: bool
    ) -> None:
        stage = f"{planned.role}: build"
        log_path = self._log_path(planned)
        scratch = self.cache_dir / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"context-{planned.role}-", dir=scratch) as ctx:
            context_dir = Path(ctx)
            for entry in planned.recipe.files:
                dest = context_dir / entry.dest
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(entry.source, dest, follow_symlinks=False)
            labels = self._labels(planned) | {engine.LABEL_PARENT_ID: parent_id}
            _append_label_instruction(context_dir / "Dockerfile", labels)
            self.progress(stage, f"FROM {parent_tag}")
            engine.build_image(
                self.client,
                context_dir,
                planned.tag,
                buildargs={"BASE": parent_tag},
                stage=stage,
                log_path=log_path,
                report=lambda detail: self.progress(stage, detail),
                nocache=fresh,
            )

    # -- inventory -------------------------------------------------------------------------

    def current_tags(self) -> set[str]:
        try:
            return {planned.tag for planned in self.plan().values()}
        except RecipeError:
            return set()  # outside a project checkout nothing is "current"

    def list_images(self) -> list[ImageInfo]:
        current = self.current_tags()
        users = engine.container_users(self.client)
        infos = []
        for image in engine.labctl_images(self.client):
            tags = [t for t in image.tags if t.startswith("labctl/")]
            if image.tags and not tags:
                continue  # someone's image built FROM ours: it inherited the labels, not ours
            role = image.labels.get(engine.LABEL_ROLE, "?")
            created = _parse_created(image.attrs.get("Created", ""))
            size = int(image.attrs.get("Size", 0))
            in_use = tuple(sorted(users.get(image.id, ())))
            infos += [
                ImageInfo(role, tag, image.id, size, created, in_use, tag in current)
                for tag in (tags or [None])
            ]
        order = {role: i for i, role in enumerate(ROLES)}
        return sorted(infos, key=lambda i: (order.get(i.role, 99), i.created))

    def prune(self, keep_current: bool = True, roles: Iterable[str] | None = None) -> list[str]:
        """Remove labctl images no container uses (and, by default, not current).

        `roles` limits pruning to images of those roles. Children go before parents. An
        image being built right now (its lock is held) is left alone. Returns the removed
        tags (or IDs of untagged images).
        """
        keep = self.current_tags() if keep_current else set()
        only = set(roles) if roles is not None else None
        removed: list[str] = []
        for info in sorted(self.list_images(), key=_children_first):
            if only is not None and info.role not in only:
                continue
            if info.in_use_by or (info.tag is not None and info.tag in keep):
                continue
            ref = info.tag or info.image_id
            lock_path = self._lock_path(info.tag) if info.tag else None
            try:
                if lock_path is None:
                    self.client.images.remove(ref, noprune=False)
                else:
                    with file_lock(lock_path, blocking=False) as locked:
                        if not locked:
                            self.progress("prune", f"kept {ref}: being built")
                            continue
                        self.client.images.remove(ref, noprune=False)
            except docker.errors.ImageNotFound:
                continue
            except docker.errors.APIError as exc:
                # e.g. a child image still needs it, or a container appeared meanwhile
                self.progress("prune", f"kept {ref}: {exc.explanation or exc}")
                continue
            removed.append(ref)
            self.progress("prune", f"removed {ref}")
        return removed

    def _lock_path(self, tag: str) -> Path:
        repository, _, digest = tag.partition(":")
        return self.cache_dir / "locks" / f"{repository.replace('/', '-')}-{digest}.lock"


def _with_ancestors(roles: Iterable[str]) -> set[str]:
    wanted: set[str] = set()
    for role in roles:
        if role not in PARENT_ROLE:
            raise RecipeError(f"unknown image role {role!r} (roles: {', '.join(ROLES)})")
        current: str | None = role
        while current is not None:
            wanted.add(current)
            current = PARENT_ROLE[current]
    return wanted


def _children_first(info: ImageInfo) -> int:
    depth = {role: i for i, role in enumerate(ROLES)}
    return -depth.get(info.role, -1)


def _append_label_instruction(dockerfile: Path, labels: Mapping[str, str]) -> None:
    """Add the identity labels as ONE Dockerfile step.

    The classic builder turns each label passed through the API into its own step, and
    every step commits a layer (about 2 s each on fuse-overlayfs).
    """
    pairs = " ".join(f"{json.dumps(key)}={json.dumps(value)}" for key, value in labels.items())
    with open(dockerfile, "a") as out:
        out.write(f"\n# added by labctl's image builder: identity labels\nLABEL {pairs}\n")


def _trim_package_cache(cache: Path, used: set[tuple[str, str]]) -> None:
    """Keep only the .debs the last debootstrap used, so the cache stays one release big."""
    if not used:
        return
    keep_prefixes = tuple(f"{name}_{version.replace(':', '%3a')}_" for name, version in used)
    for deb in cache.glob("*.deb"):
        if not deb.name.startswith(keep_prefixes):
            deb.unlink(missing_ok=True)


def _parse_created(text: str) -> datetime:
    # Docker writes nanoseconds ("2025-01-01T10:00:00.123456789Z"); Python takes micro
    head, dot, rest = text.rstrip("Z").partition(".")
    try:
        return datetime.fromisoformat(f"{head}.{rest[:6]}" if dot else head).replace(tzinfo=UTC)
    except ValueError:
        return datetime.fromtimestamp(0, UTC)


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.0f} MiB"
