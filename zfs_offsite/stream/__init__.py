"""Bytes in motion: send -> compress -> upload, read-back, progress."""
