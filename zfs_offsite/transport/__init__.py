"""SSH transports below the store and the runner: endpoints, host-key checks, one set of
SSH error messages, and the OpenSSH channel."""
