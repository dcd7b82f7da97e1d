"""Row ids: well-formed RFC 9562 UUIDs, unique, and (version 7) in creation order."""

import os
import time
import uuid

from sftphook.events import EventRecord, Topic
from sftphook.store.ids import IDS, Ids, ordered_id
from sftphook.store.models import Attempt, AuditEntry, Delivery, Event, User, new_id


def test_random_ids_are_unique_version_4_uuids():
    ids = [IDS.uuid4() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:1000]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_ordered_ids_carry_the_time_and_sort_by_it():
    before = time.time_ns() // 1_000_000
    ids = []
    for _ in range(5):
        ids.extend(ordered_id() for _ in range(2_000))
        time.sleep(0.002)
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for text in ids[::97]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before <= parsed.int >> 80 <= after
    # They sort in the order they were made, within a millisecond too (the counter).
    assert sorted(ids) == ids
    stamps = [uuid.UUID(t).int >> 80 for t in ids]
    assert stamps == sorted(stamps)


def test_ordered_ids_made_on_several_threads_are_unique_and_each_threads_in_order():
    from concurrent.futures import ThreadPoolExecutor

    def make(_: int) -> list[str]:
        return [ordered_id() for _ in range(5_000)]

    with ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(make, range(4)))
    every = [i for batch in batches for i in batch]
    assert len(set(every)) == len(every)
    for batch in batches:
        assert sorted(batch) == batch


def test_more_ids_than_the_counter_holds_in_one_millisecond_borrow_the_next(monkeypatch):
    ids = Ids()
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_000 * 1_000_000)
    made = [ids.uuid7() for _ in range(5_000)]
    assert sorted(made) == made and len(set(made)) == len(made)
    stamps = {uuid.UUID(t).int >> 80 for t in made}
    assert stamps == {1_700_000_000_000, 1_700_000_000_001}


def test_every_generator_draws_its_own_seed_and_a_reseed_changes_it():
    other = Ids()
    mine = {IDS.uuid4() for _ in range(100)}
    assert {other.uuid4() for _ in range(100)}.isdisjoint(mine)
    before = other.uuid4()
    other.reseed()
    assert other.uuid4() != before


def test_a_forked_child_does_not_repeat_the_parents_ids():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then leave at once
        os.close(read)
        os.write(write, ",".join(IDS.uuid4() for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split(","))
    os.waitpid(pid, 0)
    assert len(child) == 50
    assert child.isdisjoint({IDS.uuid4() for _ in range(50)})


def test_append_only_tables_take_ordered_ids_the_others_random_ones():
    for model in (Event, Delivery, Attempt, AuditEntry):
        text = model.__table__.c.id.default.arg(None)
        assert uuid.UUID(text).version == 7, model
    assert uuid.UUID(User.__table__.c.id.default.arg(None)).version == 4
    assert uuid.UUID(new_id()).version == 4
    record = EventRecord(organization_id="o", topic=Topic.FILE_CREATED, actor_id="a", path="p")
    assert uuid.UUID(record.id).version == 7
