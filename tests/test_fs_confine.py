# -*- test-case-name: tests.test_fs_confine -*-
"""Proves path confinement holds against links, dangling links and prefix tricks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from twisted_ftpd.fs.confine import Confinement
from twisted_ftpd.protocol import errors


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home" / "sub").mkdir(parents=True)
    (tmp_path / "home" / "sub" / "f").write_bytes(b"x")
    (tmp_path / "outside").mkdir()
    return tmp_path / "home"


@pytest.fixture
def linked(home: Path) -> Confinement:
    """The home's confinement, with links out (to a directory, dangling, relative) and in."""
    outside = home.parent / "outside"
    os.symlink(outside, home / "dir_out")
    os.symlink(outside / "nothing", home / "dangling_out")
    os.symlink("../../outside", home / "sub" / "relative_out")
    os.symlink("f", home / "sub" / "leaf_in")
    return Confinement(str(home))


def test_resolve_plain_paths(home: Path) -> None:
    c = Confinement(str(home))
    assert c.real_root == os.path.realpath(home)
    assert c.resolve(()) == c.real_root
    assert c.resolve(("sub", "f")) == os.path.join(c.real_root, "sub", "f")
    assert c.resolve(("missing", "deeper")) == os.path.join(c.real_root, "missing", "deeper")


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "/", "nul\0byte"])
def test_bad_segments_are_invalid(home: Path, bad: str) -> None:
    c = Confinement(str(home))
    with pytest.raises(errors.InvalidPath):
        c.resolve(("sub", bad))
    with pytest.raises(errors.InvalidPath):
        c.resolve_parent(("sub", bad))


def test_links_out_are_denied(linked: Confinement) -> None:
    c = linked
    for segments in [
        ("dir_out",),
        ("dir_out", "x"),
        ("dangling_out",),
        ("sub", "relative_out"),
        ("sub", "relative_out", "x", "y"),
    ]:
        with pytest.raises(errors.PermissionDenied):
            c.resolve(segments)


def test_sibling_sharing_the_prefix_is_outside(home: Path) -> None:
    sibling = home.parent / (home.name + "2")
    sibling.mkdir()
    os.symlink(sibling, home / "trick")
    c = Confinement(str(home))
    assert not c.contains(str(sibling))
    assert c.contains(c.real_root)
    assert c.contains(os.path.join(c.real_root, "x"))
    with pytest.raises(errors.PermissionDenied):
        c.resolve(("trick",))


def test_links_inside_resolve_to_their_target(home: Path) -> None:
    os.symlink("sub", home / "alias")
    os.symlink("sub/nothing", home / "dangling_in")
    c = Confinement(str(home))
    assert c.resolve(("alias", "f")) == os.path.join(c.real_root, "sub", "f")
    assert c.resolve(("dangling_in",)) == os.path.join(c.real_root, "sub", "nothing")


def test_resolve_parent(linked: Confinement) -> None:
    c = linked
    with pytest.raises(errors.PermissionDenied):
        c.resolve_parent(())
    with pytest.raises(errors.PermissionDenied):
        c.resolve_parent(("dir_out", "new"))
    with pytest.raises(errors.PermissionDenied):
        c.resolve_parent(("dangling_out",))
    # The leaf itself is not followed: operations act on the link.
    assert c.resolve_parent(("sub", "leaf_in")) == os.path.join(c.real_root, "sub", "leaf_in")
    assert c.resolve_parent(("new",)) == os.path.join(c.real_root, "new")


def test_resolve_entry_does_not_follow_the_leaf_wherever_it_points(
        linked: Confinement) -> None:
    c = linked
    # The link itself is inside the home, so it may be removed or renamed...
    assert c.resolve_entry(("dir_out",)) == os.path.join(c.real_root, "dir_out")
    assert c.resolve_entry(("dangling_out",)) == os.path.join(c.real_root, "dangling_out")
    assert c.resolve_entry(("sub", "relative_out")) == os.path.join(
        c.real_root, "sub", "relative_out")
    assert c.resolve_entry(("new",)) == os.path.join(c.real_root, "new")
    # ...but nothing is reached through it, and the home itself is no entry.
    with pytest.raises(errors.PermissionDenied):
        c.resolve_entry(("dir_out", "x"))
    with pytest.raises(errors.PermissionDenied):
        c.resolve_entry(("sub", "relative_out", "x"))
    with pytest.raises(errors.PermissionDenied):
        c.resolve_entry(())
    with pytest.raises(errors.InvalidPath):
        c.resolve_entry(("sub", ".."))


def test_a_resolved_root_is_taken_as_it_is(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up: list[str] = []
    real = os.path.realpath
    monkeypatch.setattr(os.path, "realpath", lambda p: looked_up.append(p) or real(p))
    assert Confinement(str(home), resolved=True).real_root == str(home)
    assert looked_up == []  # a shell built on the reactor reads no links
    Confinement(str(home))
    assert looked_up == [str(home)]
