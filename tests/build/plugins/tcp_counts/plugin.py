"""A TCP filter that counts connections and reads no data: its module exports no data callback."""

import proxywasm
from proxywasm import Counter, TcpContext

CONNECTIONS = Counter("tcp_counts.connections")


class Counted(TcpContext):
    def on_new_connection(self):
        CONNECTIONS.inc()


proxywasm.register(type("Plugin", (proxywasm.RootContext,), {"tcp_context": Counted}))
