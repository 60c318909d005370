"""The patch registry refuses to run on a moto it was not written for, or with a patch whose target
is gone: a moto upgrade fails at start-up naming the patch, never silently mid-pipeline."""

from __future__ import annotations

import pytest

from streamline.local import patches


def test_patches_are_version_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto

    monkeypatch.setattr(moto, "__version__", "9.9.9")
    with pytest.raises(patches.PatchError, match=r"moto 5\.2\.5.*9\.9\.9"):
        patches.apply_all()


def test_patches_fail_loudly_when_a_patched_attribute_is_gone() -> None:
    broken = patches.Patch(
        "broken", patches.MOTO_VERSION, ("moto.sqs.models:Queue.no_such",), lambda: None, "test"
    )
    patches.PATCHES.append(broken)
    try:
        with pytest.raises(patches.PatchError, match=r"broken.*Queue\.no_such"):
            patches.apply_all()
    finally:
        patches.PATCHES.remove(broken)


def test_the_per_request_lookups_are_moto_s_answers_computed_once() -> None:
    import inspect

    import moto.backends
    import moto.core.responses as responses
    from moto.sqs.responses import SQSResponse

    from streamline.local.patches.registry import moto_original

    patches.apply_all()
    names = responses.method_names_from_class(SQSResponse)
    assert names == {name for name, _ in inspect.getmembers(SQSResponse, inspect.isfunction)}
    assert "send_message" in names
    assert responses.method_names_from_class(SQSResponse) is names  # cached, not recomputed
    listed = moto.backends.list_of_moto_modules()
    original = moto_original(moto.backends, "list_of_moto_modules")
    assert listed == set(original()) and {"sqs", "dynamodb", "kinesis"} <= listed


class _KeysForbidden(dict):  # type: ignore[type-arg]
    """A shard's records that fail the test if anything lists every key."""

    def keys(self):  # type: ignore[no-untyped-def, override]
        raise AssertionError("listed every key of the shard: O(records) per call")


def test_a_shard_s_ends_are_moto_s_answers_without_listing_its_records() -> None:
    from moto.kinesis.models import Shard

    from streamline.local.patches.registry import moto_original

    patches.apply_all()
    shard = Shard(0, "0", "340282366920938463463374607431768211455", "123456789012", "us-east-1")
    original_max = moto_original(Shard, "get_max_sequence_number")
    original_min = moto_original(Shard, "get_min_sequence_number")
    assert (shard.get_min_sequence_number(), shard.get_max_sequence_number()) == (0, 0)
    for _ in range(5):
        shard.put_record("key", "ZGF0YQ==", None)
    del shard.records[1]  # trimmed by retention: the oldest is gone
    expected = (original_min(shard), original_max(shard))
    assert expected == (2, 5)
    shard.records = _KeysForbidden(shard.records)
    assert (shard.get_min_sequence_number(), shard.get_max_sequence_number()) == expected
    assert shard.put_record("key", "ZGF0YQ==", None) == "6"
