"""Everything ZFS: command lines, where they run, members, snapshot protection."""
