"""The S3 backend against a real S3-compatible server (Ceph radosgw on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from sftphook.errors import (
    InvalidInput,
    NotFound,
    StorageFull,
    StorageUnavailable,
    Unsupported,
)
from sftphook.storage.s3 import PART_SIZE, S3Location, S3Storage, make_client


@pytest.fixture(scope="module")
def s3_client(radosgw):
    return make_client(
        endpoint_url=radosgw.endpoint,
        region="us-east-1",
        access_key_id=radosgw.access_key,
        secret_access_key=radosgw.secret_key,
    )


@pytest.fixture
def bucket(s3_client):
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def storage(s3_client, bucket):
    return S3Storage(s3_client, S3Location(bucket, "tenants/"), "org1", "/")


def _keys(client, bucket):
    listed = client.list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def _upload(storage, path, data, *, chunk=256 * 1024):
    handle = storage.open_write(path, truncate=True, exclusive=False, append=False, read=False)
    for offset in range(0, len(data), chunk):
        handle.pwrite(offset, data[offset : offset + chunk])
    return handle


def test_upload_appears_only_on_commit_and_streams_in_parts(storage, s3_client, bucket):
    data = os.urandom(2 * PART_SIZE + 12345)
    handle = _upload(storage, "/big.bin", data)
    # Two full parts went to the server while writing, but no object exists yet.
    assert handle._sent == 2 * PART_SIZE
    assert _keys(s3_client, bucket) == []
    info = handle.commit()
    assert info.size == len(data)
    assert _keys(s3_client, bucket) == ["tenants/org1/big.bin"]
    reader = storage.open_read("/big.bin")
    got = b"".join(reader.pread(o, 1 << 20) for o in range(0, len(data), 1 << 20))
    reader.close()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_aborted_upload_leaves_nothing(storage, s3_client, bucket):
    handle = _upload(storage, "/gone.bin", os.urandom(PART_SIZE + 10))
    handle.abort()
    assert _keys(s3_client, bucket) == []
    pending = s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert pending == []


def test_out_of_order_writes_are_reassembled(storage):
    data = os.urandom(PART_SIZE + 5000)
    handle = storage.open_write(
        "/ooo.bin", truncate=True, exclusive=False, append=False, read=False
    )
    half = len(data) // 2
    handle.pwrite(half, data[half:])
    handle.pwrite(0, data[:half])
    handle.commit()
    reader = storage.open_read("/ooo.bin")
    assert reader.pread(0, len(data)) == data
    assert reader.pread(half, 10) == data[half : half + 10]  # a seek reopens the range
    reader.close()


def test_directories_are_prefixes_and_empty_ones_survive(storage, s3_client, bucket):
    storage.mkdir("/inbound")
    assert storage.stat("/inbound").is_dir
    _upload(storage, "/inbound/a b+c.csv", b"x,y\n").commit()
    storage.mkdir("/inbound/empty")
    parts, entries = storage.listdir("/inbound")
    listed = {(e.name, e.is_dir) for e in entries}
    assert parts == ("inbound",)
    assert listed == {("a b+c.csv", False), ("empty", True)}
    with pytest.raises(OSError):
        storage.rmdir("/inbound")  # not empty
    storage.rmdir("/inbound/empty")
    with pytest.raises(NotFound):
        storage.stat("/inbound/empty")


def test_listing_pages_through_many_entries(storage, s3_client, bucket):
    storage.mkdir("/many")

    def put(i: int) -> None:
        s3_client.put_object(Bucket=bucket, Key=f"tenants/org1/many/f{i:05d}", Body=b"")

    # More than one ListObjectsV2 page of 1000; seeded in parallel to keep the test short.
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put, range(1003)))
    _, entries = storage.listdir("/many")
    assert len(list(entries)) == 1003


def test_a_file_removed_during_a_rename_is_not_found_not_an_outage(
    storage, s3_client, bucket, monkeypatch
):
    # Another session removes the file between the rename's look at it and its copy: the
    # store answers NoSuchKey, which means "no such file", not "try again in a moment".
    _upload(storage, "/gone.txt", b"x").commit()
    head = storage._head

    def head_then_remove(parts):
        found = head(parts)
        if parts == ("gone.txt",):
            s3_client.delete_object(Bucket=bucket, Key="tenants/org1/gone.txt")
        return found

    monkeypatch.setattr(storage, "_head", head_then_remove)
    with pytest.raises(NotFound):
        storage.rename("/gone.txt", "/new.txt", replace=False)
    assert _keys(s3_client, bucket) == []


def test_rename_file_and_directory(storage, s3_client, bucket):
    storage.mkdir("/d")
    _upload(storage, "/d/one.txt", b"1").commit()
    _upload(storage, "/d/two.txt", b"22").commit()
    before, after, info = storage.rename("/d/one.txt", "/d/uno.txt", replace=False)
    assert (before, after, info.size) == (("d", "one.txt"), ("d", "uno.txt"), 1)
    storage.rename("/d", "/e", replace=False)
    assert _keys(s3_client, bucket) == [
        "tenants/org1/e/",
        "tenants/org1/e/two.txt",
        "tenants/org1/e/uno.txt",
    ]
    _upload(storage, "/f.txt", b"f").commit()
    with pytest.raises(FileExistsError):
        storage.rename("/f.txt", "/e/two.txt", replace=False)


def test_a_replacing_rename_takes_only_what_rename_2_would(storage, s3_client, bucket):
    # A file replaces a file, a directory an empty directory; nothing else is merged.
    storage.mkdir("/src")
    _upload(storage, "/src/a.txt", b"a").commit()
    storage.mkdir("/full")
    _upload(storage, "/full/b.txt", b"b").commit()
    storage.mkdir("/empty")
    _upload(storage, "/file.txt", b"f").commit()
    before = _keys(s3_client, bucket)
    with pytest.raises(OSError, match="not empty"):
        storage.rename("/src", "/full", replace=True)
    with pytest.raises(NotADirectoryError):
        storage.rename("/src", "/file.txt", replace=True)
    with pytest.raises(IsADirectoryError):
        storage.rename("/file.txt", "/empty", replace=True)
    assert _keys(s3_client, bucket) == before
    storage.rename("/src", "/empty", replace=True)
    storage.rename("/file.txt", "/full/b.txt", replace=True)
    assert _keys(s3_client, bucket) == [
        "tenants/org1/empty/",
        "tenants/org1/empty/a.txt",
        "tenants/org1/full/",
        "tenants/org1/full/b.txt",
    ]


def test_paths_stay_inside_the_home_and_links_are_refused(s3_client, bucket):
    partner = S3Storage(s3_client, S3Location(bucket, ""), "org1", "/partners/acme")
    assert partner.org_parts("/../../x") == ("partners", "acme", "x")
    _upload(partner, "/../../escape.txt", b"no").commit()
    assert _keys(s3_client, bucket) == ["org1/partners/acme/escape.txt"]
    with pytest.raises(Unsupported):
        partner.symlink("/etc/passwd", "/link")
    with pytest.raises(Unsupported):
        partner.link("/escape.txt", "/hard")


def test_organizations_do_not_see_each_other(s3_client, bucket):
    one = S3Storage(s3_client, S3Location(bucket, ""), "org1", "/")
    two = S3Storage(s3_client, S3Location(bucket, ""), "org2", "/")
    _upload(one, "/secret.txt", b"s").commit()
    with pytest.raises(NotFound):
        two.stat("/secret.txt")
    assert [e.name for e in two.listdir("/")[1]] == []


def _multipart_uploads(client, bucket):
    return client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


@pytest.mark.parametrize("size", [100, PART_SIZE + 100], ids=["put", "multipart"])
def test_an_exclusive_upload_does_not_replace_a_file_that_appeared_while_it_was_open(
    storage, s3_client, bucket, size
):
    mine = storage.open_write("/x.bin", truncate=True, exclusive=True, append=False, read=False)
    mine.pwrite(0, b"m" * size)
    _upload(storage, "/x.bin", b"theirs").commit()
    with pytest.raises(FileExistsError, match="taken while this exclusive upload was open"):
        mine.commit()
    reader = storage.open_read("/x.bin")
    assert reader.pread(0, 100) == b"theirs"
    reader.close()
    assert _multipart_uploads(s3_client, bucket) == []


def test_a_download_never_joins_a_file_to_the_one_that_replaced_it(storage):
    old, new = os.urandom(3 << 20), os.urandom(3 << 20)
    _upload(storage, "/r.bin", old).commit()
    reader = storage.open_read("/r.bin")
    assert reader.pread(0, 1 << 20) == old[: 1 << 20]
    _upload(storage, "/r.bin", new).commit()
    # A read elsewhere reopens the range: on the new object it would hand out the new bytes
    # as the rest of the old file.
    with pytest.raises(OSError, match="replaced or removed while it was being read") as raised:
        reader.pread(2 << 20, 1 << 20)
    assert raised.value.errno == errno.ESTALE
    reader.close()
    reader = storage.open_read("/r.bin")
    storage.remove("/r.bin")
    with pytest.raises(OSError, match="replaced or removed") as raised:
        reader.pread(0, 1 << 20)
    assert raised.value.errno == errno.ESTALE
    reader.close()


def test_a_path_too_long_for_the_store_is_refused_at_the_open(storage, s3_client, bucket):
    # Four 250-byte directories fit in S3's 1,024-byte keys ("tenants/org1/" and four
    # "<name>/" make 1,017 bytes); a file of 20 bytes' name in the last one does not.
    path = ""
    for letter in "abcd":
        path += "/" + letter * 250
        storage.mkdir(path)
    with pytest.raises(InvalidInput, match="1,024 bytes"):
        storage.open_write(
            path + "/" + "f" * 20, truncate=True, exclusive=False, append=False, read=False
        )
    with pytest.raises(InvalidInput, match="1,024 bytes"):
        storage.mkdir(path + "/" + "e" * 20)
    # What fits still works, to the last byte of a key.
    _upload(storage, path + "/" + "f" * 7, b"fits").commit()
    assert storage.stat(path + "/" + "f" * 7).size == 4
    assert len(_keys(s3_client, bucket)[-1].encode()) == 1024


def test_a_shrink_drops_out_of_order_writes_beyond_the_new_end(storage):
    mib = 1 << 20
    early, head, tail = os.urandom(8 * mib), os.urandom(4 * mib), os.urandom(8 * mib)
    handle = storage.open_write("/t.bin", truncate=True, exclusive=False, append=False, read=False)
    handle.pwrite(4 * mib, early)  # arrives before the bytes ahead of it
    handle.truncate(6 * mib)  # keeps early[: 2 MiB]
    handle.pwrite(0, head)
    handle.pwrite(8 * mib, tail)  # 6-8 MiB is a hole: zeros
    expected = head + early[: 2 * mib] + bytes(2 * mib) + tail
    assert handle.commit().size == len(expected)
    reader = storage.open_read("/t.bin")
    got = b"".join(reader.pread(o, mib) for o in range(0, len(expected) + mib, mib))
    reader.close()
    assert len(got) == len(expected)
    assert hashlib.sha256(got).digest() == hashlib.sha256(expected).digest()


class _ReadsCutAfterOnePart:
    """The real client, but a GET's body fails (as a dropped connection does) after one part."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def get_object(self, **params):
        response = self._client.get_object(**params)
        body, reads = response["Body"], []

        def read(size=None):
            if reads:
                raise ReadTimeoutError(endpoint_url="http://127.0.0.1")
            reads.append(size)
            return body.read(size)

        return {**response, "Body": type("CutBody", (), {"read": staticmethod(read)})()}


def test_a_resume_whose_read_back_fails_leaves_no_upload_behind(storage, s3_client, bucket):
    _upload(storage, "/big.bin", os.urandom(PART_SIZE + 10)).commit()
    cut = S3Storage(_ReadsCutAfterOnePart(s3_client), S3Location(bucket, "tenants/"), "org1")
    with pytest.raises(StorageUnavailable):
        cut.open_write("/big.bin", truncate=False, exclusive=False, append=True, read=False)
    assert _multipart_uploads(s3_client, bucket) == []


def test_a_bucket_over_its_quota_is_reported_as_full_not_as_down(radosgw, storage, bucket):
    for args in (
        ("quota", "set", "--quota-scope=bucket", f"--bucket={bucket}", "--max-size=4096"),
        ("quota", "enable", "--quota-scope=bucket", f"--bucket={bucket}"),
    ):
        subprocess.run(
            ["radosgw-admin", "-c", str(radosgw.conf), *args], check=True, capture_output=True
        )
    handle = _upload(storage, "/big.bin", os.urandom(8192))
    with pytest.raises(StorageFull, match="file store is full"):
        handle.commit()


class _SecondPartFails:
    """The real client, but the second UploadPart fails (the store's retries ran out)."""

    def __init__(self, client):
        self._client = client
        self.sent = 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    def upload_part(self, **params):
        self.sent += 1
        if self.sent == 2:
            raise ClientError({"Error": {"Code": "InternalError"}}, "UploadPart")
        return self._client.upload_part(**params)


def test_a_commit_after_a_lost_part_sends_it_again_rather_than_leave_a_gap(s3_client, bucket):
    flaky = _SecondPartFails(s3_client)
    with ThreadPoolExecutor(max_workers=2) as senders:
        storage = S3Storage(flaky, S3Location(bucket, ""), "org1", part_senders=senders)
        data = os.urandom(3 * PART_SIZE + 10)
        handle = storage.open_write(
            "/g.bin", truncate=True, exclusive=False, append=False, read=False
        )
        failed = []
        for offset in range(0, len(data), 1 << 20):
            try:
                handle.pwrite(offset, data[offset : offset + (1 << 20)])
            except StorageUnavailable:
                failed.append(offset)  # the bytes are in the spool all the same
        assert failed
        assert handle.commit().size == len(data)
    reader = storage.open_read("/g.bin")
    got = b"".join(reader.pread(o, 1 << 20) for o in range(0, len(data), 1 << 20))
    reader.close()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


class _SlowToStartUploads:
    """The real client, but creating a multipart upload waits until `go` is set (or 2 s)."""

    def __init__(self, client):
        self._client = client
        self.creating = threading.Event()
        self.go = threading.Event()

    def __getattr__(self, name):
        return getattr(self._client, name)

    def create_multipart_upload(self, **params):
        self.creating.set()
        self.go.wait(2)
        return self._client.create_multipart_upload(**params)


def test_an_abort_during_a_write_that_starts_the_upload_leaves_no_upload_behind(s3_client, bucket):
    # A session ending (the client went away) aborts its uploads while a write of theirs may
    # still be running in an I/O thread.
    slow = _SlowToStartUploads(s3_client)
    storage = S3Storage(slow, S3Location(bucket, ""), "org1")
    handle = storage.open_write("/w.bin", truncate=True, exclusive=False, append=False, read=False)
    with ThreadPoolExecutor(max_workers=2) as threads:
        writing = threads.submit(handle.pwrite, 0, os.urandom(PART_SIZE))
        assert slow.creating.wait(5)
        aborting = threads.submit(handle.abort)
        time.sleep(0.3)
        slow.go.set()
        aborting.result(timeout=10)
        with contextlib.suppress(Exception):
            writing.result(timeout=10)
    assert _multipart_uploads(s3_client, bucket) == []


def test_a_directory_rename_that_would_make_a_key_too_long_moves_nothing(
    storage, s3_client, bucket
):
    storage.mkdir("/s")
    storage.mkdir("/s/" + "a" * 250)
    storage.mkdir("/s/" + "a" * 250 + "/" + "b" * 250)
    storage.mkdir("/s/" + "a" * 250 + "/" + "b" * 250 + "/" + "c" * 250)
    deep = "/s/" + "a" * 250 + "/" + "b" * 250 + "/" + "c" * 250 + "/" + "f" * 240
    _upload(storage, deep, b"deep").commit()  # a key of 1,007 bytes
    before = _keys(s3_client, bucket)
    with pytest.raises(InvalidInput, match="1,024 bytes"):
        storage.rename("/s", "/" + "t" * 30, replace=False)
    assert _keys(s3_client, bucket) == before


class _FirstDownloadCut(_ReadsCutAfterOnePart):
    """The real client, but the first GET's body fails after one read; later GETs are whole."""

    def __init__(self, client):
        super().__init__(client)
        self.gets = 0

    def get_object(self, **params):
        self.gets += 1
        if self.gets == 1:
            return super().get_object(**params)
        return self._client.get_object(**params)


def test_a_read_after_a_dropped_connection_starts_a_new_range(s3_client, bucket):
    data = os.urandom(3 << 20)
    plain = S3Storage(s3_client, S3Location(bucket, ""), "org1")
    _upload(plain, "/d.bin", data).commit()
    cut = S3Storage(_FirstDownloadCut(s3_client), S3Location(bucket, ""), "org1")
    reader = cut.open_read("/d.bin")
    assert reader.pread(0, 1 << 20) == data[: 1 << 20]
    with pytest.raises(StorageUnavailable):
        reader.pread(1 << 20, 1 << 20)
    # The client asks again: a new GET, from where it asks.
    assert reader.pread(1 << 20, 1 << 20) == data[1 << 20 : 2 << 20]
    reader.close()


class _CompletionAnswerLost:
    """The real client, but the answer to CompleteMultipartUpload is lost after the store did
    it: as botocore's retry then sees it (`NoSuchUpload`), or as a timeout past its retries."""

    def __init__(self, client, error):
        self._client = client
        self._error = error
        self.completed = 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    def complete_multipart_upload(self, **params):
        self._client.complete_multipart_upload(**params)
        self.completed += 1
        raise self._error


@pytest.mark.parametrize(
    "error",
    [
        ClientError({"Error": {"Code": "NoSuchUpload"}}, "CompleteMultipartUpload"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1"),
    ],
    ids=["retried", "timed-out"],
)
def test_a_completion_whose_answer_was_lost_is_recognised_as_done(s3_client, bucket, error):
    lost = _CompletionAnswerLost(s3_client, error)
    storage = S3Storage(lost, S3Location(bucket, ""), "org1")
    data = os.urandom(2 * PART_SIZE + 10)
    info = _upload(storage, "/c.bin", data, chunk=1 << 20).commit()
    assert lost.completed == 1
    assert info.size == len(data)
    reader = storage.open_read("/c.bin")
    got = b"".join(reader.pread(o, 1 << 20) for o in range(0, len(data), 1 << 20))
    reader.close()
    assert got == data


class _UploadGoneBeforeCompletion:
    """The real client, but the multipart upload is aborted (by a cleanup of stale uploads,
    say) just before it is completed: the store answers `NoSuchUpload`, and has no object."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def complete_multipart_upload(self, **params):
        self._client.abort_multipart_upload(
            Bucket=params["Bucket"], Key=params["Key"], UploadId=params["UploadId"]
        )
        return self._client.complete_multipart_upload(**params)


def test_a_completion_the_store_did_not_do_is_still_a_failure(s3_client, bucket):
    storage = S3Storage(_UploadGoneBeforeCompletion(s3_client), S3Location(bucket, ""), "org1")
    handle = _upload(storage, "/f.bin", os.urandom(2 * PART_SIZE + 10), chunk=1 << 20)
    with pytest.raises(StorageUnavailable):
        handle.commit()
    assert _keys(s3_client, bucket) == []


def test_a_file_and_a_directory_of_one_name_list_as_the_file_alone(storage, s3_client, bucket):
    # Written by another program: a key `a` and keys under `a/`. `stat` finds the file, so the
    # listing shows the file, once, however the store's pages fall.
    for key in ("a", "a/inner.txt", "a!", "a.txt", "b/c.txt", "b"):
        s3_client.put_object(Bucket=bucket, Key=f"tenants/org1/{key}", Body=b"x")
    _, entries = storage.listdir("/")
    listed = [(e.name, e.is_dir) for e in entries]
    assert sorted(listed) == [("a", False), ("a!", False), ("a.txt", False), ("b", False)]
    assert storage.stat("/a").is_dir is False
    small_pages = S3Storage(_PagesOf(s3_client, 1), S3Location(bucket, "tenants/"), "org1")
    _, entries = small_pages.listdir("/")
    assert sorted((e.name, e.is_dir) for e in entries) == sorted(listed)


class _PagesOf:
    """The real client, but listings come `size` keys a page."""

    def __init__(self, client, size):
        self._client = client
        self._size = size

    def __getattr__(self, name):
        return getattr(self._client, name)

    def get_paginator(self, name):
        paginator = self._client.get_paginator(name)
        size = self._size

        class Small:
            def paginate(self, **params):
                return paginator.paginate(**params, PaginationConfig={"PageSize": size})

        return Small()
