"""Reference VO plugins (``osg``, ``cms``, ``atlas``): built in, but run only on the entries that
enable them (``plugins: {enable: [osg]}``). Each is small and shows one extension technique;
``_common`` holds what they share (checked settings, images checked as the built-in does)."""
