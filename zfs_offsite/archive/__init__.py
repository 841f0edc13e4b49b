"""The archive's layout: file names, the remote index, the lock, the commit."""
