"""sealvm benchmark driver modules (Python 3 standard library only)."""
