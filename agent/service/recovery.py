"""Ticks a crash left half done. Every state change holds the home lock, so a tick thread still in the
checkpointer when a process takes the lock belongs to a process that died. One stopped before its guard step
decided anything is dropped (nothing was claimed or done); one that reached `act` is resumed from its last
checkpoint with `recovering` set. Actions it had claimed are finished (their effects converge: a job's id
derives from its key, scaling sets a count) and recorded "recovered: done"; actions it had not reached are
recorded "recovered: not done" rather than run late on a stale observation."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("brainops")


def unfinished_ticks(checkpointer: Any) -> list[str]:
    """Thread ids of tick graphs (approval threads are named after their approval, "apr-...")."""
    seen: dict[str, None] = {}
    for saved in checkpointer.list(None):
        thread_id = str(saved.config["configurable"]["thread_id"])
        if not thread_id.startswith("apr-"):
            seen[thread_id] = None
    return list(seen)


def recover_ticks(checkpointer: Any, tick_graph: Callable[[], Any], on_state: Callable[[dict[str, Any]], None]) -> int:
    """Resume each unfinished tick to its end; `on_state` gets each final state (to start its approvals)."""
    threads = unfinished_ticks(checkpointer)
    if not threads:
        return 0
    graph = tick_graph()
    for thread_id in threads:
        config = {"configurable": {"thread_id": thread_id}}
        snapshot = graph.get_state(config)
        if snapshot.next and "verdicts" not in snapshot.values:
            # Stopped while observing or planning: nothing was decided, claimed or done; nothing to finish.
            log.warning("tick %s stopped before acting (at %s); dropped", thread_id, ", ".join(snapshot.next))
            checkpointer.delete_thread(thread_id)
            continue
        if snapshot.next:
            log.warning("tick %s was interrupted at %s; finishing it", thread_id, ", ".join(snapshot.next))
            graph.update_state(config, {"recovering": True})
            graph.invoke(None, config, durability="sync")
        state = graph.get_state(config).values
        if state.get("outcomes") is not None:
            on_state(state)
        checkpointer.delete_thread(thread_id)
    return len(threads)
