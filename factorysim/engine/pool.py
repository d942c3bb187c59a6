"""The job's slots, the servers in them, the spare pool, and which data-parallel replicas can train.

The job has one slot per server it needs; a slot holds a server or is empty. Servers are in one of six
states:

    active   in a slot, training          spare    healthy, waiting in the pool
    idle     in a slot of an isolated group, healthy, not training
    joining  a spare on its way into a slot (isolate-group)
    failed   down, not yet detected       in_repair  detected, coming back after its repair time

A replica is up when every slot holding one of its ranks is working; node groups (`node_group_size`
consecutive slots) are isolated and rejoin as a whole.
"""

from __future__ import annotations

import bisect

import numpy as np

from ..scenario.checks import ParallelLayout

ACTIVE, SPARE, FAILED, REPAIR, IDLE, JOINING = range(6)
STATUS = ("active", "spare", "failed", "in_repair", "idle", "joining")


class ServerPool:
    """Slots and servers, spares, isolated groups and replicas up. Pure bookkeeping: no time, no events."""

    def __init__(self, servers: int, layout: ParallelLayout, chips_per_node: int, group_size: int) -> None:
        self.cpn = chips_per_node
        self.dp = layout.dp
        self.slots = layout.chips // chips_per_node
        self.status = np.full(servers, SPARE, dtype=np.int8)
        self.status[: self.slots] = ACTIVE
        self.slot_server = np.arange(self.slots, dtype=np.int64)
        self.server_slot = np.full(servers, -1, dtype=np.int64)
        self.server_slot[: self.slots] = np.arange(self.slots)
        self.spares = list(range(self.slots, servers))  # kept sorted: the lowest-numbered spare joins first
        self.spares_used = 0
        self.min_spares = len(self.spares)
        self.recount_status()

        ranks = np.arange(layout.chips, dtype=np.int64)
        rank_replica = (ranks // (layout.tp * layout.cp)) % layout.dp
        rank_slot = ranks // chips_per_node
        pairs = np.unique(rank_slot * layout.dp + rank_replica)
        self._pairs = (pairs // layout.dp, pairs % layout.dp)  # sorted by slot
        starts = np.searchsorted(self._pairs[0], np.arange(self.slots + 1))
        replicas = self._pairs[1].tolist()
        self._slot_replicas = [replicas[starts[i] : starts[i + 1]] for i in range(self.slots)]
        self._replica_bad = [0] * layout.dp
        self.replicas_up = layout.dp
        self.group_size = group_size
        self.isolated: set[int] = set()
        self.slot_ok = np.ones(self.slots, dtype=bool)
        self._slot_group = np.arange(self.slots) // group_size
        self.empty: set[int] = set()  # slots without a server
        self.joining: dict[int, int] = {}  # slot -> spare on its way
        self._join_gen: dict[int, int] = {}

    # ------------------------------------------------------------ states

    def set_status(self, server: int, status: int) -> None:
        self._status_count[int(self.status[server])] -= 1
        self._status_count[status] += 1
        self.status[server] = status

    def recount_status(self) -> None:
        self._status_count = np.bincount(self.status.astype(np.int64), minlength=len(STATUS)).tolist()

    def chip_counts(self) -> dict[str, int]:
        n, c = self._status_count, self.cpn
        return {"healthy": (n[ACTIVE] + n[IDLE] + n[JOINING]) * c, "failed": n[FAILED] * c,
                "in_repair": n[REPAIR] * c, "spare": n[SPARE] * c, "total": sum(n) * c}  # fmt: skip

    def slot_active(self, slot: int) -> bool:
        """The slot holds a server that is training."""
        server = self.slot_server[slot]
        return server >= 0 and self.status[server] == ACTIVE

    # ------------------------------------------------------------ replicas

    def set_slot_ok(self, slot: int, ok: bool) -> None:
        if self.slot_ok[slot] == ok:
            return
        self.slot_ok[slot] = ok
        bad = self._replica_bad
        for r in self._slot_replicas[slot]:
            if ok:
                bad[r] -= 1
                self.replicas_up += bad[r] == 0
            else:
                self.replicas_up -= bad[r] == 0
                bad[r] += 1

    def _recount_replicas(self) -> None:
        slot_of, replica_of = self._pairs
        bad = np.bincount(replica_of, weights=~self.slot_ok[slot_of], minlength=self.dp).astype(np.int64)
        self._replica_bad = bad.tolist()
        self.replicas_up = int((bad == 0).sum())

    # ------------------------------------------------------------ slots and spares

    def place(self, slot: int, server: int, status: int) -> None:
        """Put a server in an empty slot."""
        self.empty.discard(slot)
        self.slot_server[slot] = server
        self.server_slot[server] = slot
        self.set_status(server, status)

    def vacate(self, slot: int) -> None:
        """Take the server out of a slot: the slot is empty and its replicas are down."""
        server = int(self.slot_server[slot])
        if server >= 0:
            self.server_slot[server] = -1
        self.slot_server[slot] = -1
        self.empty.add(slot)
        self.set_slot_ok(slot, False)

    def take_spare(self) -> int | None:
        """The lowest-numbered spare, out of the pool (None: the pool is empty)."""
        if not self.spares:
            return None
        server = self.spares.pop(0)
        self.spares_used += 1
        self.min_spares = min(self.min_spares, len(self.spares))
        return server

    def return_spare(self, server: int) -> None:
        """A healthy server goes (back) into the pool."""
        self.set_status(server, SPARE)
        bisect.insort(self.spares, server)

    def lose_spare(self, server: int) -> None:
        """A spare failed in the pool."""
        self.spares.remove(server)
        self.min_spares = min(self.min_spares, len(self.spares))

    # ------------------------------------------------------------ hot spares (isolate-group)

    def start_join(self, slot: int) -> tuple[int, int] | None:
        """Send a spare on its way into an empty slot: (server, join generation), or None without a spare."""
        server = self.take_spare()
        if server is None:
            return None
        self.set_status(server, JOINING)
        self.joining[slot] = server
        gen = self._join_gen[server] = self._join_gen.get(server, 0) + 1
        return server, gen

    def cancel_join(self, server: int) -> None:
        """A joining server failed on its way: the join it was on no longer lands."""
        self._join_gen[server] = self._join_gen.get(server, 0) + 1
        self.joining = {slot: s for slot, s in self.joining.items() if s != server}

    def finish_join(self, slot: int, server: int, gen: int) -> bool:
        """A join lands; False (and the server back in the pool if it was still joining) when it went stale."""
        if self.joining.get(slot) == server:
            del self.joining[slot]
        if self._join_gen.get(server) != gen or self.status[server] != JOINING or self.slot_server[slot] >= 0:
            if self.status[server] == JOINING:
                self.return_spare(server)
            return False
        self.place(slot, server, IDLE)
        return True

    # ------------------------------------------------------------ node groups

    def group_of(self, slot: int) -> int:
        return slot // self.group_size

    def group_slots(self, slot: int) -> range:
        g = slot // self.group_size
        return range(g * self.group_size, min(self.slots, (g + 1) * self.group_size))

    @property
    def groups(self) -> int:
        return -(-self.slots // self.group_size)

    def isolate(self, slot: int) -> bool:
        """Take the slot's node group out of training; False if it already was."""
        group = slot // self.group_size
        if group in self.isolated:
            return False
        self.isolated.add(group)
        for s in self.group_slots(slot):
            server = self.slot_server[s]
            if server >= 0 and self.status[server] == ACTIVE:
                self.set_status(server, IDLE)
            self.set_slot_ok(s, False)
        return True

    def replicas_left_without(self, slot: int) -> int:
        """Replicas that would still be up with the slot's node group out."""
        lost = {r for s in self.group_slots(slot) if self.slot_ok[s] for r in self._slot_replicas[s]
                if self._replica_bad[r] == 0}  # fmt: skip
        return self.replicas_up - len(lost)

    def group_ready(self, slot: int) -> bool:
        """Every slot of the group holds a working server (idle or active)."""
        return not any(
            self.slot_server[s] < 0 or self.status[self.slot_server[s]] not in (IDLE, ACTIVE)
            for s in self.group_slots(slot)
        )

    def rejoin(self, slot: int) -> range:
        """The slot's (ready) group trains again; returns its slots."""
        self.isolated.discard(slot // self.group_size)
        slots = self.group_slots(slot)
        for s in slots:
            self.set_status(self.slot_server[s], ACTIVE)
            self.set_slot_ok(s, True)
        return slots

    # ------------------------------------------------------------ a global restart

    def restart(self) -> None:
        """After a global restart: every filled slot trains again, except in groups that still miss a server."""
        if not self.empty and not self.isolated and (self.status[self.slot_server] == ACTIVE).all():
            self.slot_ok[:] = True  # the common case: every slot holds a working server
            self._replica_bad = [0] * self.dp
            self.replicas_up = self.dp
            return
        filled = self.slot_server >= 0
        servers = self.slot_server[filled]
        st = self.status[servers]
        st[(st == IDLE) | (st == ACTIVE)] = ACTIVE
        self.status[servers] = st
        isolated = np.zeros(self._slot_group[-1] + 1, dtype=bool)
        isolated[self._slot_group[~filled]] = True
        self.isolated = set(np.flatnonzero(isolated).tolist())
        in_isolated = isolated[self._slot_group]
        idle = self.slot_server[filled & in_isolated]
        self.status[idle[self.status[idle] == ACTIVE]] = IDLE
        ok = filled & ~in_isolated
        ok[filled] &= self.status[servers] == ACTIVE
        self.slot_ok = ok
        self._recount_replicas()
        self.recount_status()
