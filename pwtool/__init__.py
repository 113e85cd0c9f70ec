"""pwtool: a Python toolkit for proxy-wasm plugins (Envoy / Istio)."""

__version__ = "0.1.0"
