"""`zfs-offsite`: the command line, an entry layer above the flows (like `deployments/`)."""
