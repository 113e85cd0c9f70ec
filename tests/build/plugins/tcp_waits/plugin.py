"""A TCP filter whose on_new_connection awaits 300 ms before letting the connection go;
it reads no data, and its module exports no data callback."""

import proxywasm
from proxywasm import TcpContext


class Waits(TcpContext):
    async def on_new_connection(self):
        await proxywasm.sleep(300)
        proxywasm.log_warn("connection let through")


proxywasm.register(type("Plugin", (proxywasm.RootContext,), {"tcp_context": Waits}))
