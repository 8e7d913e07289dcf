"""Content-hash tags: what changes them and what must not."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from labctl.images import ImageBuilder, RecipeError, image_role_for_kind
from labctl.images.hashing import manifest
from labctl.images.recipes import MIRROR_ENV, load_recipe, parse_package_list

REAL_ROOT = Path(__file__).resolve().parents[3]
TAG = re.compile(r"^labctl/(base|node|vpn|strongswan):[0-9a-f]{12}$")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project's recipes plus a small labctl/ source tree."""
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    root = tmp_path / "project"
    shutil.copytree(REAL_ROOT / "images", root / "images", symlinks=True)
    (root / "labctl" / "ike").mkdir(parents=True)
    (root / "labctl" / "__init__.py").write_text('__version__ = "0"\n')
    (root / "labctl" / "ike" / "__init__.py").write_text("")
    (root / "labctl" / "ike" / "codec.py").write_text("X = 1\n")
    (root / "labctl" / "topology").mkdir()
    (root / "labctl" / "topology" / "model.py").write_text("host side only\n")
    return root


def tags(root: Path) -> dict[str, str]:
    return {role: planned.tag for role, planned in ImageBuilder(root).plan().items()}


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {role for role in before if before[role] != after[role]}


def test_tags_are_stable_and_well_formed(project: Path) -> None:
    first = tags(project)
    assert all(TAG.match(tag) for tag in first.values()), first
    assert tags(project) == first


def test_real_project_recipes_load() -> None:
    planned = ImageBuilder(REAL_ROOT).plan()
    assert list(planned) == ["base", "node", "vpn", "strongswan"]
    assert planned["node"].parent_tag == planned["base"].tag
    assert planned["vpn"].parent_tag == planned["node"].tag
    # strongSwan's image does not embed labctl's sources: built FROM node, not vpn
    assert planned["strongswan"].parent_tag == planned["node"].tag


def test_node_recipe_change_propagates_to_vpn_only(project: Path) -> None:
    before = tags(project)
    sshd_config = project / "images/node/rootfs/etc/labctl/sshd_config"
    sshd_config.write_text(sshd_config.read_text() + "LogLevel VERBOSE\n")
    assert changed(before, tags(project)) == {"node", "vpn", "strongswan"}


def test_base_change_propagates_to_every_image(project: Path) -> None:
    before = tags(project)
    cleanup = project / "images/base/cleanup.txt"
    cleanup.write_text(cleanup.read_text() + "usr/share/zoneinfo/right\n")
    assert changed(before, tags(project)) == {"base", "node", "vpn", "strongswan"}


def test_executable_bit_is_part_of_the_hash(project: Path) -> None:
    before = tags(project)
    (project / "images/node/rootfs/usr/local/sbin/labctl-init").chmod(0o644)
    assert changed(before, tags(project)) == {"node", "vpn", "strongswan"}


def test_new_recipe_file_changes_the_tag(project: Path) -> None:
    before = tags(project)
    (project / "images/vpn/rootfs/etc").mkdir(parents=True)
    (project / "images/vpn/rootfs/etc/motd").write_text("hi\n")
    assert changed(before, tags(project)) == {"vpn"}


def test_package_list_change_rebuilds_everything(project: Path) -> None:
    before = tags(project)
    packages = project / "images/base/packages.txt"
    packages.write_text(packages.read_text() + "strace\n")
    assert changed(before, tags(project)) == {"base", "node", "vpn", "strongswan"}


def test_package_list_comments_and_order_do_not_matter(project: Path) -> None:
    before = tags(project)
    packages = project / "images/base/packages.txt"
    names = parse_package_list(packages)
    packages.write_text("# reordered\n" + "\n".join(reversed(names)) + "\npython3  # again\n")
    assert tags(project) == before


def test_debian_source_is_part_of_the_base_hash(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = tags(project)
    monkeypatch.setenv(MIRROR_ENV, "http://mirror.example.invalid/debian")
    assert changed(before, tags(project)) == {"base", "node", "vpn", "strongswan"}
    monkeypatch.delenv(MIRROR_ENV)
    debian = project / "images/base/debian.toml"
    debian.write_text(debian.read_text().replace('"bookworm"', '"trixie"'))
    assert changed(before, tags(project)) == {"base", "node", "vpn", "strongswan"}


def test_vpn_sources_change_only_the_vpn_tag(project: Path) -> None:
    before = tags(project)
    (project / "labctl/ike/codec.py").write_text("X = 2\n")
    assert changed(before, tags(project)) == {"vpn"}


def test_new_source_package_is_picked_up(project: Path) -> None:
    before = tags(project)
    (project / "labctl/agent").mkdir()
    (project / "labctl/agent/cli.py").write_text("print('vpn')\n")
    after = tags(project)
    assert changed(before, after) == {"vpn"}
    files = {str(f.dest) for f in load_recipe(project, "vpn").files}
    assert "src/labctl/agent/cli.py" in files


def test_pycache_and_host_side_code_do_not_change_tags(project: Path) -> None:
    before = tags(project)
    cache = project / "labctl/ike/__pycache__"
    cache.mkdir()
    (cache / "codec.cpython-311.pyc").write_bytes(b"\x00compiled")
    (project / "labctl/ike/stray.pyc").write_bytes(b"\x00")
    (project / "labctl/topology/model.py").write_text("changed host side\n")
    assert tags(project) == before
    files = {str(f.dest) for f in load_recipe(project, "vpn").files}
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)


def test_manifest_explains_the_hash(project: Path) -> None:
    recipe = load_recipe(project, "node")
    text = manifest("node", "labctl/base:0123456789ab", recipe.files, recipe.settings)
    assert "parent\tlabctl/base:0123456789ab" in text
    assert re.search(r"file\trootfs/usr/local/sbin/labctl-init\texec\t[0-9a-f]{64}", text)
    assert re.search(r"file\tDockerfile\tfile\t[0-9a-f]{64}", text)


def test_bad_package_name_names_file_and_line(project: Path) -> None:
    packages = project / "images/base/packages.txt"
    packages.write_text("python3\nBad_Name\n")
    with pytest.raises(RecipeError, match=r"packages\.txt:2: 'Bad_Name'"):
        tags(project)


def test_missing_recipe_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="image recipes folder not found"):
        ImageBuilder(tmp_path).plan()


def test_kind_to_role_mapping() -> None:
    assert {k: image_role_for_kind(k) for k in ("host", "router", "pat-firewall")} == dict.fromkeys(
        ("host", "router", "pat-firewall"), "node"
    )
    assert image_role_for_kind("concentrator") == "vpn"
    assert image_role_for_kind("vpn-client") == "vpn"
    with pytest.raises(ValueError, match="unknown node kind 'switch'"):
        image_role_for_kind("switch")


def test_strongswan_recipe_change_rebuilds_only_strongswan(project: Path) -> None:
    before = tags(project)
    script = project / "images/strongswan/rootfs/usr/local/sbin/labctl-swan"
    script.write_text(script.read_text() + "# changed\n")
    assert changed(before, tags(project)) == {"strongswan"}


def test_default_roles_leave_strongswan_to_be_built_on_demand() -> None:
    from labctl.images.recipes import DEFAULT_ROLES

    assert "strongswan" not in DEFAULT_ROLES


def test_no_recipe_needs_a_network_to_build() -> None:
    """Packages come from debootstrap on the host (base/packages.txt); a Dockerfile that
    runs apt-get would need Docker's bridge to reach the mirror from a container."""
    for dockerfile in (REAL_ROOT / "images").glob("*/Dockerfile"):
        assert "apt-get" not in dockerfile.read_text(), dockerfile
