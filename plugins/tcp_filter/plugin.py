"""TCP filter: count bytes both ways and log each connection when it closes.

Optionally refuses client data that starts with a configured prefix, by closing the
connection.
"""

import proxywasm
from proxywasm import Action, Counter, Gauge, TcpContext

OPEN = Gauge("tcp_filter.open_connections")
BYTES_IN = Counter("tcp_filter.bytes", {"direction": "downstream"})
BYTES_OUT = Counter("tcp_filter.bytes", {"direction": "upstream"})


class Connection(TcpContext):
    def __init__(self):
        self.received = 0
        self.sent = 0

    def on_new_connection(self):
        OPEN.add(1)
        return Action.CONTINUE

    def on_downstream_data(self, data, end_of_stream):
        if self.received == 0:
            reject = self.root.config["reject_prefix"]
            if reject and data.read(0, len(reject)) == reject.encode():
                proxywasm.log_warn(f"tcp_filter: connection {self.id} rejected")
                self.close_downstream()
                return Action.PAUSE
        self.received += len(data)
        BYTES_IN.inc(len(data))
        return Action.CONTINUE

    def on_upstream_data(self, data, end_of_stream):
        self.sent += len(data)
        BYTES_OUT.inc(len(data))
        return Action.CONTINUE

    def on_downstream_close(self, peer):
        OPEN.add(-1)

    def on_log(self):
        proxywasm.log_info(
            f"tcp_filter: connection {self.id}: {self.received} bytes in, {self.sent} bytes out"
        )


class TcpPlugin(proxywasm.RootContext):
    tcp_context = Connection
    default_config = {"reject_prefix": ""}


proxywasm.register(TcpPlugin)
