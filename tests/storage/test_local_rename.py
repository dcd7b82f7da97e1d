"""`rename_noreplace`: a rename that never replaces what holds the new name, in one step where
the kernel can, and the same answers where it cannot."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sftphook.storage import local


@pytest.fixture(params=["renameat2", "without"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "renameat2":
        assert local._RENAMEAT2 is not None, "libc has renameat2 on this Linux"
    else:
        monkeypatch.setattr(local, "_RENAMEAT2", None)
    yield request.param


def _rename(tmp_path: Path, old: str, new: str) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        local.rename_noreplace(old, new, fd, fd)
    finally:
        os.close(fd)


def test_a_free_name_is_taken(tmp_path: Path, way: str) -> None:
    (tmp_path / "a").write_text("a")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "inside").write_text("i")
    (tmp_path / "link").symlink_to("elsewhere")
    _rename(tmp_path, "a", "b")
    _rename(tmp_path, "d", "e")
    _rename(tmp_path, "link", "link2")
    assert (tmp_path / "b").read_text() == "a" and not (tmp_path / "a").exists()
    assert (tmp_path / "e" / "inside").read_text() == "i" and not (tmp_path / "d").exists()
    # The link itself moved, not what it names.
    assert os.readlink(tmp_path / "link2") == "elsewhere"
    assert not (tmp_path / "link").is_symlink()
    assert (tmp_path / "b").stat().st_nlink == 1


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("file", "other"),
        ("file", "empty"),
        ("dir", "empty"),
        ("dir", "other"),
        ("file", "dangling"),
    ],
)
def test_a_taken_name_is_never_replaced(tmp_path: Path, way: str, old: str, new: str) -> None:
    # rename(2) alone replaces a file, and a directory over an empty one.
    (tmp_path / "file").write_text("file")
    (tmp_path / "other").write_text("other")
    (tmp_path / "dir").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "dangling").symlink_to("nowhere")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(FileExistsError) as caught:
        _rename(tmp_path, old, new)
    assert caught.value.errno == errno.EEXIST
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "file").read_text() == "file"
    assert (tmp_path / "other").read_text() == "other"


def test_a_missing_name_is_not_found(tmp_path: Path, way: str) -> None:
    with pytest.raises(FileNotFoundError):
        _rename(tmp_path, "missing", "new")


def test_an_upload_whose_directory_moves_while_its_path_is_walked_knows_where_it_lands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another session renames the directory just after this upload's walk reached it: the
    # upload's file lands in it under the new name, and the upload must say so at its commit.
    storage = local.LocalStorage(tmp_path / "files", "org")
    storage.mkdir("/in")
    resolve = storage._resolve
    moved = []

    def resolve_then_move(path: str, *, follow: bool) -> object:
        target = resolve(path, follow=follow)
        if not moved:
            moved.append(path)
            storage.rename("/in", "/inbound", replace=False)
        return target

    monkeypatch.setattr(storage, "_resolve", resolve_then_move)
    handle = storage.open_write(
        "/in/x.csv", truncate=True, exclusive=False, append=False, read=False
    )
    monkeypatch.undo()
    handle.pwrite(0, b"x")
    info = handle.commit()
    assert moved == ["/in/x.csv"]
    assert handle.org_parts == ("inbound", "x.csv") and info.org_parts == ("inbound", "x.csv")
    assert (tmp_path / "files" / "org" / "inbound" / "x.csv").read_bytes() == b"x"
    storage.close()
