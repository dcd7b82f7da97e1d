"""The local storage on its own: path rules and confinement, without a protocol in between."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sftphook.errors import InvalidInput, OutsideHome
from sftphook.sftp.transfer import Digests
from sftphook.storage import FileInfo, LocalStorage, client_to_org, org_to_client
from sftphook.storage import local as local_module
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


def test_a_just_changed_file_has_no_identity_and_its_digest_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: list[tuple[str, ...]]
) -> None:
    """The racy-timestamp rule: a file whose ctime is less than `SETTLED_SECONDS` old may yet
    be written without its times changing, so it has no identity and is read every time; once
    settled it is read once."""
    (tmp_path / "org").mkdir()
    data = b"just written" * 100
    (tmp_path / "org" / "f").write_bytes(data)
    storage, digests = LocalStorage(tmp_path, "org"), Digests()

    def digest() -> str | None:
        handle = storage.open_read("/f")
        try:
            return digests.read(handle, len(data))
        finally:
            handle.close()

    try:
        handle = storage.open_read("/f")
        assert handle.identity() is None  # changed just now
        handle.close()
        assert [digest(), digest()] == [hashlib.sha256(data).hexdigest()] * 2
        assert len(reads) == 2 and len(digests) == 0
        monkeypatch.setattr(local_module, "SETTLED_SECONDS", 0)  # as if 2 s had gone by
        handle = storage.open_read("/f")
        s = (tmp_path / "org" / "f").stat()
        assert handle.identity() == (
            s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns
        )  # fmt: skip
        handle.close()
        assert [digest(), digest()] == [hashlib.sha256(data).hexdigest()] * 2
        assert len(reads) == 3 and len(digests) == 1
    finally:
        storage.close()


class _Handle:
    """A read handle whose identity is scripted: one value per look."""

    org_parts: tuple[str, ...] = ("f",)

    def __init__(self, data: bytes, identities: list[tuple[object, ...] | None]) -> None:
        self.data, self.identities, self.reads = data, identities, 0

    def info(self) -> FileInfo:
        return FileInfo("f", self.org_parts, len(self.data), 0o100644, 0.0, 0.0)

    def close(self) -> None:
        pass

    def pread(self, offset: int, size: int) -> bytes:
        self.reads += offset == 0
        return self.data[offset : offset + size]

    def identity(self) -> tuple[object, ...] | None:
        return self.identities.pop(0)


def test_a_digest_is_kept_only_for_a_file_unchanged_by_its_read_and_used_for_its_size() -> None:
    data = b"content"
    sha = hashlib.sha256(data).hexdigest()
    digests = Digests(kept=2)
    # Changed while it was read (the identity after differs): not kept.
    changing = _Handle(data, [("a", 1), ("a", 2)])
    assert digests.read(changing, len(data)) == sha
    assert len(digests) == 0
    kept = _Handle(data, [("a", 1), ("a", 1)])
    assert digests.read(kept, len(data)) == sha
    again = _Handle(data, [("a", 1)])
    assert digests.read(again, len(data)) == sha and again.reads == 0
    # Another size asked than the one read (the file looked at was another): read, as ever.
    other_size = _Handle(data, [("a", 1), ("a", 1)])
    assert digests.read(other_size, len(data) - 1) is None
    assert other_size.reads == 1
    # The least recently used is forgotten past `kept`.
    for name in ("b", "c"):
        digests.read(_Handle(data, [(name, 1), (name, 1)]), len(data))
    assert len(digests) == 2
    forgotten = _Handle(data, [("a", 1), ("a", 1)])
    assert digests.read(forgotten, len(data)) == sha and forgotten.reads == 1
