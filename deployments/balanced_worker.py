"""gunicorn's gthread worker, letting the sibling with fewer connections accept a new one first.

Every worker waits on the same listening socket and the first to call ``accept`` gets the connection, which
then stays with that worker for as long as the client keeps it alive. A burst of clients therefore splits by
chance (16 keep-alive clients on 2 workers came out 11/5, 10/6, 6/10 in bench/api_load.py runs), and the
busier worker's clients wait about twice as long for as long as they stay connected. Here a worker that already
holds connections waits ``ACCEPT_DELAY_PER_CONNECTION_S`` per connection before accepting, so a less loaded
sibling usually wins the race; the loser's ``accept`` finds nothing and gunicorn ignores that. Accepting is rare
(once per connection), so the pause costs nothing measurable; bench/api_load.py shows the effect on p99.
"""

from __future__ import annotations

import time

from gunicorn.workers.gthread import ThreadWorker

ACCEPT_DELAY_PER_CONNECTION_S = 0.002
MAX_ACCEPT_DELAY_S = 0.05


class BalancedThreadWorker(ThreadWorker):
    def accept(self, listener):
        if self.nr_conns:
            time.sleep(min(ACCEPT_DELAY_PER_CONNECTION_S * self.nr_conns, MAX_ACCEPT_DELAY_S))
        super().accept(listener)
