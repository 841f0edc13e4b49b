"""One module per job (backup, restore, verify, drill, prune, status), end to end."""
