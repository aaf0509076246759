"""Record batches on grain: the records (or one host's strided shard of them, `shard_index` of
`shard_count`), shuffled with a seed (a fresh order every epoch), repeated, batched, with an iterator
whose state can be saved and restored, so a resumed run sees exactly the batches it had not yet seen.
The trainer reads every record on every process (one shard: `app.run.Run.batches`), so all
processes see the same global batch.

Records stay Python dicts (prompts are tokenised per batch by the caller), so the pipeline has no
worker processes to start and its state is one small dict.
"""

from __future__ import annotations

import grain


def record_dataset(records: list[dict], batch_size: int, *, seed: int, shard_index: int = 0, shard_count: int = 1,
                   shuffle: bool = True, repeat: bool = True) -> grain.IterDataset:
    """Batches (lists of `batch_size` records) of the `shard_index`-th of `shard_count` disjoint shards.

    Shards are strided (record i goes to host i % shard_count), so together they cover every record.
    Without `repeat` the last partial batch is kept (evaluation); with it, batches are always full."""
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index {shard_index} must be in [0, {shard_count})")
    if len(records) < shard_count:
        raise ValueError(f"{len(records)} records cannot be split over {shard_count} hosts; need at least one each")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ds = grain.MapDataset.source(records)[shard_index::shard_count]
    if shuffle:
        ds = ds.shuffle(seed=seed)
    if repeat:
        ds = ds.repeat(None)
    ds = ds.batch(batch_size, drop_remainder=repeat, batch_fn=list)
    return ds.to_iter_dataset()


class BatchStream:
    """An endless iterator of record batches with `state()` / `restore(state)` for checkpoints."""

    def __init__(self, records: list[dict], batch_size: int, *, seed: int, shard_index: int = 0,
                 shard_count: int = 1):
        self._iter = iter(record_dataset(records, batch_size, seed=seed, shard_index=shard_index,
                                         shard_count=shard_count))

    def __iter__(self):
        return self

    def __next__(self) -> list[dict]:
        return next(self._iter)

    def state(self) -> dict:
        return self._iter.get_state()

    def restore(self, state: dict) -> None:
        self._iter.set_state(state)
