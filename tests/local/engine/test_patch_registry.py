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
