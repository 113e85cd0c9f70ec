"""Imports a package that is not available inside the module."""

import requests  # line 3: not in the plugin dir, the SDK or the stdlib
