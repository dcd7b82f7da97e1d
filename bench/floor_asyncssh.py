"""asyncssh with files kept in memory: the least any SFTP server built on asyncssh can cost.

Usage: floor_asyncssh.py PORT HOST_KEY AUTHORIZED_KEYS LS_ENTRIES [CIPHER,...]

Every request is answered from a dictionary: no system call for a file, no event, no hash, no
temporary name. What is left of a request's time is asyncssh's (decryption, the SSH packet and
channel layers, the SFTP handler, encryption) and the event loop's. bench/sftp.py runs it as
`--servers floor`: a server built on asyncssh cannot be faster per request than this, so its
ratio to OpenSSH bounds what any handler design can reach. `/bench/lsdir` is made at the start
with LS_ENTRIES empty files (the other servers get theirs on disk).
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import stat
import sys
import time
from collections.abc import AsyncIterator

import asyncssh
import experiments
from stock_asyncssh import serve

_NOW = int(time.time())


class Node:
    __slots__ = ("children", "data", "longname", "mode")

    def __init__(self, name: bytes, mode: int) -> None:
        self.mode = mode
        self.data = bytearray()
        # A directory's entries by name, in the order they were made.
        self.children: dict[bytes, Node] | None = {} if stat.S_ISDIR(mode) else None
        kind = "d" if self.children is not None else "-"
        self.longname = f"{kind}rw-r--r--    1 bench    bench           0 Jan  1 00:00 ".encode()
        self.longname += name

    def attrs(self) -> asyncssh.SFTPAttrs:
        return asyncssh.SFTPAttrs(
            type=asyncssh.FILEXFER_TYPE_DIRECTORY
            if self.children is not None
            else asyncssh.FILEXFER_TYPE_REGULAR,
            size=len(self.data),
            uid=0,
            gid=0,
            permissions=self.mode,
            atime=_NOW,
            mtime=_NOW,
        )


class Tree:
    def __init__(self) -> None:
        self.root = Node(b"/", stat.S_IFDIR | 0o755)

    def find(self, path: bytes) -> Node:
        node = self.root
        for part in path.split(b"/"):
            if not part:
                continue
            if node.children is None or part not in node.children:
                raise asyncssh.SFTPNoSuchFile("No such file")
            node = node.children[part]
        return node

    def parent(self, path: bytes) -> tuple[Node, bytes]:
        head, name = posixpath.split(path.rstrip(b"/"))
        parent = self.find(head)
        if parent.children is None or not name:
            raise asyncssh.SFTPNoSuchFile("No such directory")
        return parent, name

    def make(self, path: bytes, mode: int) -> Node:
        parent, name = self.parent(path)
        assert parent.children is not None
        node = Node(name, mode)
        parent.children[name] = node
        return node


class Handle:
    __slots__ = ("node",)

    def __init__(self, node: Node) -> None:
        self.node = node


class FloorServer(asyncssh.SFTPServer):
    tree = Tree()

    def realpath(self, path: bytes) -> bytes:
        return posixpath.normpath(posixpath.join(b"/", path))

    def _abs(self, path: bytes) -> bytes:
        return self.realpath(path)

    def stat(self, path: bytes) -> asyncssh.SFTPAttrs:
        return self.tree.find(self._abs(path)).attrs()

    lstat = stat

    def fstat(self, file_obj: object) -> asyncssh.SFTPAttrs:
        assert isinstance(file_obj, Handle)
        return file_obj.node.attrs()

    def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        self.tree.find(self._abs(path))

    def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        return None

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> Handle:
        full = self._abs(path)
        if not pflags & (asyncssh.FXF_WRITE | asyncssh.FXF_APPEND):
            node = self.tree.find(full)
            if node.children is not None:
                raise asyncssh.SFTPFailure("Is a directory")
            return Handle(node)
        try:
            node = self.tree.find(full)
        except asyncssh.SFTPNoSuchFile:
            node = self.tree.make(full, stat.S_IFREG | 0o644)
        if pflags & asyncssh.FXF_TRUNC:
            node.data = bytearray()
        return Handle(node)

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        assert isinstance(file_obj, Handle)
        return bytes(file_obj.node.data[offset : offset + size])

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        assert isinstance(file_obj, Handle)
        buf = file_obj.node.data
        if offset == len(buf):
            buf += data
        else:
            if offset > len(buf):
                buf.extend(bytes(offset - len(buf)))
            buf[offset : offset + len(data)] = data
        return len(data)

    def close(self, file_obj: object) -> None:
        return None

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        node = self.tree.find(self._abs(path))
        if node.children is None:
            raise asyncssh.SFTPNoSuchFile("Not a directory")
        for name in (b".", b".."):
            yield asyncssh.SFTPName(name, node.longname, node.attrs())
        for name, child in list(node.children.items()):
            yield asyncssh.SFTPName(name, child.longname, child.attrs())

    def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        full = self._abs(path)
        parent, name = self.tree.parent(full)
        assert parent.children is not None
        if name in parent.children:
            raise asyncssh.SFTPFailure("File exists")
        self.tree.make(full, stat.S_IFDIR | 0o755)

    def remove(self, path: bytes) -> None:
        parent, name = self.tree.parent(self._abs(path))
        assert parent.children is not None
        if parent.children.pop(name, None) is None:
            raise asyncssh.SFTPNoSuchFile("No such file")

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        old_parent, old_name = self.tree.parent(self._abs(oldpath))
        new_parent, new_name = self.tree.parent(self._abs(newpath))
        assert old_parent.children is not None and new_parent.children is not None
        if old_name not in old_parent.children:
            raise asyncssh.SFTPNoSuchFile("No such file")
        new_parent.children[new_name] = old_parent.children.pop(old_name)

    posix_rename = rename


def make_lsdir(entries: int) -> None:
    tree = FloorServer.tree
    for directory in (b"/bench", b"/bench/lsdir"):
        tree.make(directory, stat.S_IFDIR | 0o755)
    for i in range(entries):
        tree.make(f"/bench/lsdir/entry-{i:06d}.dat".encode(), stat.S_IFREG | 0o644)


def main() -> None:
    port, host_key, authorized, ls_entries = sys.argv[1:5]
    ciphers = sys.argv[5].split(",") if len(sys.argv) > 5 and sys.argv[5] else []
    experiments.apply()
    make_lsdir(int(ls_entries))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(int(port), host_key, authorized, ciphers, FloorServer))


if __name__ == "__main__":
    main()
