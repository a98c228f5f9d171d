"""The node: bounded commands, paths, CVMFS paths, atomic files, background threads."""
