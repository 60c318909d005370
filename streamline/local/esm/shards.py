"""One shard of a Kinesis / DynamoDB Streams mapping, processed in order (items 14-19, 23-24).

A :class:`ShardWorker` thread reads records after its durable checkpoint, drops filtered records
(the checkpoint moves past them: item 23), splits the rest into ``ParallelizationFactor`` lanes by
partition key (order kept per key: item 24), and processes each lane's batches in order with
retries (15), partial-failure resume (16), bisect (17), record age (18) and on-failure records
(18-19). The checkpoint (``state_dir/checkpoints/<uuid>/<shard>.json``) only advances past
records that succeeded or were handed to the on-failure destination.
"""

from __future__ import annotations

import threading
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamline.local.contracts import InvokeResult
from streamline.local.destinations import failure_record
from streamline.local.esm.config import MappingConfig, SourceKind
from streamline.local.esm.filters import filter_view
from streamline.local.esm.invoke import invoke_batch, report_iterator_age
from streamline.local.esm.responses import OutcomeKind, parse_batch_response
from streamline.local.esm.sources import PolledRecord
from streamline.local.esm.worker import Backoff, WorkerState, log

if TYPE_CHECKING:
    from streamline.local.esm.streams import StreamWorker

__all__ = ["ShardWorker"]


@dataclass
class _Pending:
    """A (sub-)batch awaiting delivery, with what it has used so far."""

    records: list[PolledRecord]
    retries: int = 0
    invokes: int = 0
    last: Any = None  # the last InvokeResult, for responseContext
    function_error: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class ShardWorker:
    """Processes one shard, one round of batches at a time, in order."""

    def __init__(self, parent: StreamWorker, shard_id: str, *, initial: bool) -> None:
        self.parent = parent
        self.ctx = parent.ctx
        self.shard_id = shard_id
        self.initial = initial
        self.state = WorkerState.STARTING
        self.position: int | None = None
        self.last_error: str | None = None
        self.in_round = False
        self._thread: threading.Thread | None = None
        self._lanes: ThreadPoolExecutor | None = None
        self._empty = parent.ctx.empty_backoff

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"esm-shard-{self.shard_id}", daemon=True
        )
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
        if self._lanes is not None:
            self._lanes.shutdown(wait=False)

    @property
    def stopping(self) -> bool:
        return self.parent.stop_event.is_set()

    def wait(self, seconds: float) -> bool:
        return self.parent.wait(seconds)

    def error(self, message: str) -> None:
        self.last_error = message
        self.parent.error(f"{self.shard_id}: {message}")

    # -- checkpoints -------------------------------------------------------------------------
    def _load_position(self) -> int:
        config = self.parent.config
        saved = self.ctx.checkpoints.load(config.uuid, self.shard_id)
        if saved is not None and "sequenceNumber" in saved:
            position = int(saved["sequenceNumber"])
            with self.ctx.backends.lock:
                latest = self.parent.source.latest(self.shard_id)
            if position > latest:
                # The stream was restored to less than the checkpoint saw (state lost in a
                # crash): resuming past what exists would skip every record written from now
                # until the numbers catch up. Resume at what exists, and say so.
                self.error(
                    f"checkpoint {position} was past the restored stream's last record "
                    f"{latest}; moved back to it"
                )
                self._save(latest)
                return latest
            return position
        with self.ctx.backends.lock:
            if not self.initial or config.starting_position == "TRIM_HORIZON":
                position = self.parent.source.trim_horizon(self.shard_id)
            elif config.starting_position == "AT_TIMESTAMP":
                position = self.parent.source.position_before(
                    self.shard_id, float(config.starting_position_timestamp or 0)
                )
            else:  # LATEST
                position = self.parent.source.position_before(
                    self.shard_id, self.parent.latest_from
                )
        # Persist at once so LATEST stays put across restarts.
        self._save(position)
        return position

    def _save(self, position: int) -> None:
        self.position = position
        config = self.parent.config
        self.ctx.checkpoints.save(
            config.uuid,
            self.shard_id,
            {
                "sequenceNumber": str(position),
                "shardId": self.shard_id,
                "eventSourceArn": config.source_arn,
                "updatedAt": self.ctx.clock.now(),
            },
        )

    def _advance(self, seq: int) -> None:
        if self.position is None or seq > self.position:
            self._save(seq)

    # -- main loop ---------------------------------------------------------------------------
    def _run(self) -> None:
        errors = self.ctx.error_backoff
        while not self.stopping:
            try:
                self.position = self._load_position()
                break
            except Exception as exc:
                self.error(f"cannot start shard: {type(exc).__name__}: {exc}; retrying")
                self.state = WorkerState.RETRYING
                self.wait(errors.next())
        while not self.stopping:
            try:
                self._poll_once(errors)
            except Exception as exc:
                # Whatever happens in a round, the worker lives: it shows the error, backs
                # off, and reads the same records again (the checkpoint did not move).
                log.exception("ESM %s %s: round failed", self.parent.config.uuid, self.shard_id)
                self.error(f"round failed: {type(exc).__name__}: {exc}; retrying")
                self.state = WorkerState.RETRYING
                self.in_round = False
                self.wait(errors.next())
        self.state = WorkerState.STOPPED

    def _poll_once(self, errors: Backoff) -> None:
        """Read, deliver and checkpoint one round (the body of the shard's loop)."""
        empty = self._empty
        config = self.parent.config
        self.state = WorkerState.POLLING
        try:
            records, closed_and_done = self._fetch(config)
        except Exception as exc:
            self.error(f"read failed: {type(exc).__name__}: {exc}")
            self.state = WorkerState.RETRYING
            self.wait(errors.next())
            return
        errors.reset()
        if self.stopping:
            return  # disabled or deleted: what was read is read again if it is enabled again
        if closed_and_done:
            # AWS never writes to a closed shard, but moto 5.2.5 routes PutRecord to the
            # first shard whose hash range matches, open or not: after a split every new
            # record lands in the closed parent. Finishing for good here lost those records
            # whenever the worker saw the split before the next put, so a finished shard
            # keeps being re-read at the poll interval (one dict lookup per interval).
            self.state = WorkerState.FINISHED
            self.wait(self.ctx.poll_interval)
            return
        if not records:
            self.state = WorkerState.WAITING
            self.wait(empty.next())
            return
        empty.reset()
        self.in_round = True
        try:
            if self._round(config, records):
                self._advance(records[-1].seq)
        finally:
            self.in_round = False

    def _fetch(self, config: MappingConfig) -> tuple[list[PolledRecord], bool]:
        """Up to BatchSize x ParallelizationFactor records, waiting out the batching window."""
        limit = config.batch_size * max(1, config.parallelization)
        deadline: float | None = None
        role = self._role(config)
        while True:
            with self.ctx.backends.lock:
                if self.stopping:
                    return [], False  # stopped by the request that disabled the mapping
                assert self.position is not None
                records = self.parent.source.read(self.shard_id, self.position, limit, role)
                if not records:
                    closed = any(
                        s.closed for s in self.parent.source.shards() if s.shard_id == self.shard_id
                    )
                    return [], closed
            if len(records) >= limit or config.batching_window <= 0 or self.stopping:
                return records, False
            now = self.ctx.clock.now()
            if deadline is None:
                deadline = now + config.batching_window
            if now >= deadline:
                return records, False
            self.state = WorkerState.WAITING
            self.wait(min(deadline - now, 0.1))

    def _role(self, config: MappingConfig) -> str | None:
        if config.kind is not SourceKind.KINESIS:
            return None
        try:
            with self.ctx.backends.lock:
                return str(self.ctx.backends.lambda_().get_function(config.function_arn).role)
        except Exception:
            return None

    def _round(self, config: MappingConfig, records: list[PolledRecord]) -> bool:
        """Deliver one fetched round; True when every record is settled (checkpoint may move)."""
        matcher = config.matcher()
        if matcher.active:
            kind = config.kind.value
            delivered = [r for r in records if matcher.matches(filter_view(kind, r.record))]
            self.parent.count(filtered=len(records) - len(delivered))
        else:
            delivered = records
        if not delivered:
            return True  # item 23: the checkpoint moves past filtered records
        lanes = _lanes(delivered, config.parallelization)
        if len(lanes) == 1:
            return self._lane(config, lanes[0], checkpoint=True)
        if self._lanes is None:
            # At most 10 lanes (ParallelizationFactor's maximum); threads are created lazily.
            self._lanes = ThreadPoolExecutor(
                max_workers=10, thread_name_prefix=f"esm-lane-{self.shard_id}"
            )
        futures = [self._lanes.submit(self._lane, config, lane, checkpoint=False) for lane in lanes]
        return all(f.result() for f in futures)

    def _lane(
        self, config: MappingConfig, records: list[PolledRecord], *, checkpoint: bool
    ) -> bool:
        """Deliver one lane's records in order, BatchSize at a time."""
        for start in range(0, len(records), config.batch_size):
            chunk = records[start : start + config.batch_size]
            if not self._deliver(config, chunk, checkpoint=checkpoint):
                return False
        return True

    # -- one batch: retries, partial failure, bisect, record age -----------------------------
    def _deliver(  # noqa: C901 - each branch is one stream rule (retry, bisect, age, destination)
        self, config: MappingConfig, batch: list[PolledRecord], *, checkpoint: bool
    ) -> bool:
        progress = self._advance if checkpoint else (lambda seq: None)
        queue: deque[_Pending] = deque([_Pending(batch)])
        retry_backoff = Backoff(0.05, 2.0)
        system_backoff = self.ctx.error_backoff
        while queue:
            if self.stopping:
                return False
            config = self.parent.config  # updates apply between attempts
            pending = queue[0]
            if config.max_record_age >= 0:
                now = self.ctx.clock.now()
                expired = [r for r in pending.records if now - r.arrival > config.max_record_age]
                if expired:
                    # Item 18: too-old records are never delivered; a RecordAgeExceeded record
                    # goes to the destination and the shard moves on past them.
                    if not self._fail(config, expired, pending, "RecordAgeExceeded"):
                        return False
                    pending.records = [r for r in pending.records if r not in expired]
                    if not pending.records:
                        queue.popleft()
                        progress(expired[-1].seq)
                        continue
            result = self._invoke(config, pending.records)
            if result is None:  # throttled / system error: retry without using an attempt
                self.state = WorkerState.RETRYING
                self.wait(system_backoff.next())
                continue
            system_backoff.reset()
            pending.invokes += 1
            pending.last = result
            ids = {r.seq_str for r in pending.records}
            outcome = parse_batch_response(
                result, report_item_failures=config.report_item_failures, batch_ids=ids
            )
            if outcome.kind is OutcomeKind.SUCCESS:
                self.parent.count(succeeded=len(pending.records))
                queue.popleft()
                progress(pending.records[-1].seq)
                continue
            if outcome.kind is OutcomeKind.PARTIAL:
                # Item 16: resume from the lowest reported sequence number; one attempt used.
                lowest = min(int(i) for i in outcome.failed_ids)
                done = [r for r in pending.records if r.seq < lowest]
                if done:
                    self.parent.count(succeeded=len(done))
                    progress(done[-1].seq)
                pending.records = [r for r in pending.records if r.seq >= lowest]
                pending.function_error = False
                self.error(f"partial batch failure from sequence number {lowest}")
            else:
                pending.function_error = outcome.kind is OutcomeKind.FUNCTION_ERROR
                self.error(f"batch failed ({outcome.kind.value}): {outcome.reason}")
                if config.bisect and len(pending.records) > 1:
                    # Item 17: split in two and retry each half; no retry attempt is used.
                    middle = len(pending.records) // 2
                    queue.popleft()
                    for half in (pending.records[middle:], pending.records[:middle]):
                        queue.appendleft(
                            _Pending(
                                half,
                                retries=pending.retries,
                                invokes=pending.invokes,
                                last=result,
                                function_error=pending.function_error,
                            )
                        )
                    continue
            if config.max_retry_attempts == -1 or pending.retries < config.max_retry_attempts:
                pending.retries += 1
                self.state = WorkerState.RETRYING
                if self.wait(retry_backoff.next()):
                    return False
                continue
            # Item 18: retries exhausted -> on-failure record, then move on past these records.
            if not self._fail(config, pending.records, pending, "RetryAttemptsExhausted"):
                return False
            queue.popleft()
            progress(pending.records[-1].seq)
        return True

    def _invoke(self, config: MappingConfig, records: list[PolledRecord]) -> InvokeResult | None:
        self.state = WorkerState.INVOKING
        age_ms = (self.ctx.clock.now() - records[-1].arrival) * 1000
        result = invoke_batch(
            self.parent,
            config.function_arn,
            {"Records": [r.record for r in records]},
            records=len(records),
            throttled="function throttled; retrying (does not use a retry attempt)",
            shown_on=self,
        )
        if result is not None:
            report_iterator_age(self.ctx, config.function_arn, config.source_arn, age_ms)
        return result

    def _fail(
        self, config: MappingConfig, records: list[PolledRecord], pending: _Pending, condition: str
    ) -> bool:
        """Send the on-failure record; True once sent (or there is no destination: AWS drops
        the records then), False when the worker stops first (the shard must not move on)."""
        self.parent.count(failed=len(records))
        target = config.on_failure_arn
        if not target:
            log.warning(
                "ESM %s %s: %d records dropped (%s), no on-failure destination",
                config.uuid,
                self.shard_id,
                len(records),
                condition,
            )
            return True
        result = pending.last
        aged = condition == "RecordAgeExceeded"
        now = self.ctx.clock.now()
        record = failure_record(
            condition=condition,
            function_arn=config.function_arn,
            request_id=None if aged or result is None else result.request_id,
            invoke_count=pending.invokes,
            batch_info_key=self.parent.source.batch_info_key,
            shard_id=self.shard_id,
            stream_arn=config.source_arn,
            first_seq=records[0].seq_str,
            last_seq=records[-1].seq_str,
            first_arrival=records[0].arrival,
            last_arrival=records[-1].arrival,
            batch_size=len(records),
            now=now,
            status_code=None if result is None else result.status_code,
            function_error=(
                (result.function_error or "Unhandled")
                if pending.function_error and result
                else None
            ),
            payload={"Records": [r.record for r in records]}
            if target.split(":")[2] == "s3"
            else None,
        )
        backoff = self.ctx.error_backoff
        while True:
            try:
                self.ctx.run(
                    "esm.send_failure_record", target, record, config.uuid, self.shard_id, now
                )
                return True
            except Exception as exc:
                # The record is all that names these records once the shard moves on: the shard
                # waits (visibly) until the destination takes it, never drops it.
                self.error(
                    f"on-failure destination {target} refused the record "
                    f"({type(exc).__name__}: {exc}); retrying, the shard waits"
                )
                self.state = WorkerState.RETRYING
                if self.wait(backoff.next()):
                    return False

    # -- observation -------------------------------------------------------------------------
    def idle(self) -> bool:
        if self.in_round or self.state in (WorkerState.STARTING, WorkerState.INVOKING):
            return False
        if self.position is None:
            return False
        try:
            with self.ctx.backends.lock:
                return self.parent.source.latest(self.shard_id) <= self.position
        except Exception:
            return True

    def status(self) -> dict[str, Any]:
        backlog: int | None = None
        latest: int | None = None
        try:
            with self.ctx.backends.lock:
                latest = self.parent.source.latest(self.shard_id)
        except Exception:
            latest = None
        if latest is not None and self.position is not None:
            backlog = max(0, latest - self.position)
        return {
            "state": self.state.value,
            "position": None if self.position is None else str(self.position),
            "latest": None if latest is None else str(latest),
            "backlog": backlog,
            "last_error": self.last_error,
        }


def _lanes(records: list[PolledRecord], factor: int) -> list[list[PolledRecord]]:
    """Split records into up to ``factor`` ordered lanes by partition key (stable hash)."""
    if factor <= 1:
        return [records]
    lanes: dict[int, list[PolledRecord]] = {}
    for record in records:
        lane = zlib.crc32(record.partition_key.encode()) % factor
        lanes.setdefault(lane, []).append(record)
    return [lanes[k] for k in sorted(lanes)]
