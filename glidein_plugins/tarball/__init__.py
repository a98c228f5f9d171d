"""The glidein tarball: pack, the VO plugins and the vendored dependencies it ships."""
