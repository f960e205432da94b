"""Whether a Redis Cluster client routes writes to the masters that own the slots now.

A master woken from a pause after its replica took over still takes writes for its slots until
gossip demotes it, then drops them in its resync: a replay sent there is lost (torture seed 13
round 16). redis-py refreshes its slot map from one random node, which may be that very master.
So the owners are judged from every node's `CLUSTER NODES` (`cluster_view`: the newest config
epoch wins) and compared with the client's map.
"""

from __future__ import annotations

import asyncio

from redis.asyncio.cluster import RedisCluster

from exporter.store.cluster_view import newest_slot_owners


async def cluster_slot_owners(client: RedisCluster) -> list[str]:
    """The names of the masters owning the slots by the newest config epoch any node the client
    knows reports; empty if no node answered."""
    replies = await asyncio.gather(
        *(
            client.execute_command("CLUSTER NODES", target_nodes=node)
            for node in client.get_nodes()
        ),
        return_exceptions=True,
    )
    return newest_slot_owners(reply for reply in replies if isinstance(reply, dict))


async def stale_routes(client: RedisCluster, owners: list[str]) -> str | None:
    """Why the client's slot map is not to be trusted with a replay yet; None if it names the
    `owners` (`cluster_slot_owners`; none: no evidence). The map is refreshed once when it does
    not; the refresh may read the stale master again, so it can take another call to settle."""
    if not owners or _routed_to(client) == owners:
        return None
    # Not `client.initialize()`: once initialized, redis-py refreshes there only after an error
    # asked it to.
    await client.nodes_manager.initialize()
    routed = _routed_to(client)
    if routed == owners:
        return None
    return (
        f"the Cluster's slot map is not settled: {', '.join(owners)} own the slots,"
        f" the client still routes to {', '.join(routed)}"
    )


def _routed_to(client: RedisCluster) -> list[str]:
    return sorted(node.name for node in client.get_primaries())
