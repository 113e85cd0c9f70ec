from .text import shout

__all__ = ["shout"]
