"""Shared queue: HTTP workers produce, a consumer root context consumes.

One module, two plugins selected by root_id:

* ``producer`` (the HTTP filter, on every worker) puts each request's method and path
  on the queue ``requests``;
* ``consumer`` (best run as a singleton service) registers that queue and, whenever
  it has items, drains it, counts the messages and logs them.
"""

import proxywasm
from proxywasm import Action, HttpContext, RootContext, SharedQueue

QUEUE = "requests"
CONSUMED = proxywasm.Counter("shared_queue.consumed")


class Producing(HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        queue = self.root.queue()
        if queue is not None:
            queue.enqueue(f"{headers.get(':method', '-')} {headers.get(':path', '-')}")
        return Action.CONTINUE


class Producer(RootContext):
    http_context = Producing
    _queue = None

    def queue(self):
        """The consumer's queue, resolved once it exists."""
        if self._queue is None:
            self._queue = SharedQueue.resolve(QUEUE)
            if self._queue is None:
                proxywasm.log_warn("shared_queue: no consumer registered the queue yet")
        return self._queue


class Consumer(RootContext):
    def on_vm_start(self, vm_configuration):
        self.queue = SharedQueue.register(QUEUE)
        return True

    def on_queue_ready(self, queue_id):
        for message in self.queue.drain():
            CONSUMED.inc()
            proxywasm.log_info(f"shared_queue: consumed {message.decode()}")


proxywasm.register(Producer, root_id="producer")
proxywasm.register(Consumer, root_id="consumer")
