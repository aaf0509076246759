"""The grain record pipeline: a resumed iterator yields exactly the remaining batches; host shards
are disjoint and together cover the data; every epoch is a permutation, reshuffled per epoch."""

import collections

import pytest

from dlrl_jax.data.pipeline import BatchStream, record_dataset

RECORDS = [{"id": i} for i in range(23)]


def _ids(batch):
    return [r["id"] for r in batch]


def test_resuming_from_saved_state_yields_exactly_the_remaining_batches():
    uninterrupted = BatchStream(RECORDS, 4, seed=7)
    expected = [_ids(next(uninterrupted)) for _ in range(15)]  # crosses two epoch boundaries
    first = BatchStream(RECORDS, 4, seed=7)
    seen = [_ids(next(first)) for _ in range(6)]
    state = first.state()
    resumed = BatchStream(RECORDS, 4, seed=7)
    resumed.restore(state)
    assert seen + [_ids(next(resumed)) for _ in range(9)] == expected


def test_each_epoch_is_a_fresh_permutation():
    ds = list(record_dataset(RECORDS, 1, seed=3, repeat=False))
    assert sorted(_ids(sum(ds, []))) == list(range(23))
    stream = BatchStream(RECORDS, 1, seed=3)
    epoch1 = [_ids(next(stream))[0] for _ in range(23)]
    epoch2 = [_ids(next(stream))[0] for _ in range(23)]
    assert sorted(epoch1) == sorted(epoch2) == list(range(23)) and epoch1 != epoch2
    assert epoch1 != list(range(23))
    other_seed = BatchStream(RECORDS, 1, seed=4)
    assert [_ids(next(other_seed))[0] for _ in range(23)] != epoch1


def test_two_hosts_see_disjoint_shards_that_cover_the_data():
    shards = [sum(record_dataset(RECORDS, 5, seed=1, shard_index=i, shard_count=2, repeat=False), [])
              for i in range(2)]
    ids = [set(_ids(s)) for s in shards]
    assert ids[0].isdisjoint(ids[1]) and ids[0] | ids[1] == set(range(23))
    assert collections.Counter(_ids(shards[0]) + _ids(shards[1])) == collections.Counter(range(23))
    # endless training streams stay inside their shard
    host1 = BatchStream(RECORDS, 3, seed=1, shard_index=1, shard_count=2)
    assert set(sum((_ids(next(host1)) for _ in range(10)), [])) <= ids[1]


def test_bad_sharding_is_refused():
    with pytest.raises(ValueError, match="shard_index 2 must be in"):
        record_dataset(RECORDS, 2, seed=0, shard_index=2, shard_count=2)
    with pytest.raises(ValueError, match="cannot be split over 30 hosts"):
        record_dataset(RECORDS, 2, seed=0, shard_index=0, shard_count=30)
