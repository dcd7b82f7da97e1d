"""The local storage on its own: path rules and confinement, without a protocol in between."""

from __future__ import annotations

from pathlib import Path

import pytest

from sftphook.errors import InvalidInput, OutsideHome
from sftphook.storage import LocalStorage, client_to_org, org_to_client
from sftphook.storage.paths import event_path, normalize_client


def test_client_paths_stop_at_the_home() -> None:
    assert normalize_client("/a/./b/../c") == ["a", "c"]
    assert normalize_client("../../etc/passwd") == ["etc", "passwd"]
    assert client_to_org("/partners/acme", "/../x") == ["partners", "acme", "x"]
    assert org_to_client("/partners/acme", ["partners", "acme", "x"]) == "/x"
    assert event_path(["in", "box"], directory=True) == "in/box/"
    assert event_path([], directory=True) == ""
    with pytest.raises(InvalidInput):
        normalize_client("a\x00b")


def test_storage_refuses_links_out_and_follows_links_in(tmp_path: Path) -> None:
    files = tmp_path / "files"
    storage = LocalStorage(files, "org", "/home")
    root = files / "org"
    (root / "home" / "in.txt").write_text("in")
    (root / "outside.txt").write_text("out")
    (root / "home" / "good").symlink_to("in.txt")
    (root / "home" / "up").symlink_to("../outside.txt")
    (root / "home" / "loop").symlink_to("loop")
    try:
        assert storage.stat("/good").size == 2
        assert storage.stat("/good").org_parts == ("home", "in.txt")
        assert storage.stat("/up", follow=False).is_link
        with pytest.raises(OutsideHome):
            storage.stat("/up")
        with pytest.raises(OutsideHome):
            storage.open_read("/up")
        with pytest.raises(OSError):
            storage.stat("/loop")
        upload = storage.open_write(
            "/new.txt", truncate=True, exclusive=False, append=False, read=False
        )
        upload.pwrite(0, b"data")
        assert not (root / "home" / "new.txt").exists()
        info = upload.commit()
        assert info.size == 4 and (root / "home" / "new.txt").read_bytes() == b"data"
        aborted = storage.open_write(
            "/gone.txt", truncate=True, exclusive=False, append=False, read=False
        )
        aborted.pwrite(0, b"partial")
        aborted.abort()
        assert not (root / "home" / "gone.txt").exists()
        assert list((files / ".uploads").iterdir()) == []
    finally:
        storage.close()


def test_a_resolved_names_first_lstat_is_the_walks_and_later_ones_look_again(
    tmp_path: Path,
) -> None:
    (tmp_path / "org" / "d").mkdir(parents=True)
    (tmp_path / "org" / "d" / "f").write_bytes(b"1")
    storage = LocalStorage(tmp_path, "org")
    try:
        target = storage._resolve("/d/f", follow=True)
        try:
            (tmp_path / "org" / "d" / "f").write_bytes(b"12345")
            first, second = target.lstat(), target.lstat()
            assert first is not None and second is not None
            assert (first.st_size, second.st_size) == (1, 5)
        finally:
            target.close()
        missing = storage._resolve("/d/new", follow=True)
        try:
            assert missing.lstat() is None
            (tmp_path / "org" / "d" / "new").write_bytes(b"")
            assert missing.lstat() is not None
        finally:
            missing.close()
        # A name the walk did not look at (no link following) is looked at when asked.
        unseen = storage._resolve("/d/f", follow=False)
        try:
            stat = unseen.lstat()
            assert stat is not None and stat.st_size == 5
        finally:
            unseen.close()
    finally:
        storage.close()
