"""The backup server: the store protocol, local and SFTP stores (SSH itself is `transport/`)."""
