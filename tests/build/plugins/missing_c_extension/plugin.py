import proxywasm
import socket  # line 2: stdlib, but needs the _socket C extension the runtime lacks

proxywasm.register(proxywasm.HttpContext)
