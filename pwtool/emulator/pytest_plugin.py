"""pytest plugin for pwtool (placeholder while the emulator lands)."""
