"""Slot owners from several nodes' views: the newest config epoch wins (cluster_view.py)."""

from __future__ import annotations

from typing import Any

from exporter.store.cluster_view import newest_slot_owners


def node(flags: str, epoch: int, *ranges: tuple[int, int]) -> dict[str, Any]:
    return {"flags": flags, "epoch": str(epoch), "slots": [[str(a), str(b)] for a, b in ranges]}


HEALTHY = {
    "a:1": node("master", 1, (0, 5460)),
    "b:1": node("master", 2, (5461, 10922)),
    "c:1": node("master", 3, (10923, 16383)),
    "d:1": node("slave", 1),
}


def test_a_healthy_cluster_is_its_masters() -> None:
    assert newest_slot_owners([HEALTHY, HEALTHY]) == ["a:1", "b:1", "c:1"]


def test_a_restarted_master_that_still_claims_its_slots_loses_to_the_promoted_replica() -> None:
    # a:1 came back believing it is master (epoch 1); the others promoted d:1 (epoch 7).
    stale = {**HEALTHY, "a:1": node("myself,master", 1, (0, 5460))}
    promoted = {**HEALTHY, "a:1": node("slave", 1), "d:1": node("myself,master", 7, (0, 5460))}
    for views in ([stale, promoted], [promoted, stale]):
        assert newest_slot_owners(views) == ["b:1", "c:1", "d:1"]


def test_a_failed_master_keeps_its_slots_until_its_replica_is_promoted() -> None:
    # Tracking the other masters only would leave its slots' writes unheard once promoted.
    failing = {**HEALTHY, "a:1": node("master,fail", 1, (0, 5460))}
    assert newest_slot_owners([failing]) == ["a:1", "b:1", "c:1"]
    promoted = {**failing, "d:1": node("master", 8, (0, 5460))}
    assert newest_slot_owners([failing, promoted]) == ["b:1", "c:1", "d:1"]


def test_a_partial_newer_claim_overrides_only_where_it_overlaps() -> None:
    resharded = {**HEALTHY, "b:1": node("master", 9, (5000, 10922))}
    assert newest_slot_owners([HEALTHY, resharded]) == ["a:1", "b:1", "c:1"]
    taken = {**HEALTHY, "b:1": node("master", 9, (0, 10922))}
    assert newest_slot_owners([HEALTHY, taken]) == ["b:1", "c:1"]
