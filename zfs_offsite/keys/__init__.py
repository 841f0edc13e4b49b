"""Secret keys: the age identities that read encrypted backups back, and keygen."""
