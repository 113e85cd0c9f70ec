import proxywasm

proxywasm.set_shared_data("started", b"yes")  # hostcalls are not allowed while importing
