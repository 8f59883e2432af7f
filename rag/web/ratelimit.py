"""A per-client sliding-window rate limit shared by the HTTP API and the chat."""
from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from typing import Callable


class RateLimiter:
    """At most `per_minute` requests per client in any 60-second window; 0 turns the limit off.

    Thread-safe (the chat runs its handlers in worker threads). Only the most recently seen `max_clients`
    clients are tracked, so memory stays bounded under a flood of addresses.
    """

    def __init__(self, per_minute: int, *, window_s: float = 60.0, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 0:
            raise ValueError(f"per_minute={per_minute} must be 0 (off) or positive")
        self.per_minute = per_minute
        self.window_s = window_s
        self.max_clients = max_clients
        self._clock = clock
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def hit(self, client: str) -> int:
        """Count one request for `client`: 0 when allowed, else the whole seconds to wait (for Retry-After)."""
        if not self.enabled:
            return 0
        now = self._clock()
        with self._lock:
            stamps = self._seen.get(client)
            if stamps is None:
                stamps = self._seen[client] = deque()
                while len(self._seen) > self.max_clients:
                    self._seen.popitem(last=False)
            else:
                self._seen.move_to_end(client)
            while stamps and now - stamps[0] >= self.window_s:
                stamps.popleft()
            if len(stamps) >= self.per_minute:
                return max(1, math.ceil(stamps[0] + self.window_s - now))
            stamps.append(now)
            return 0
