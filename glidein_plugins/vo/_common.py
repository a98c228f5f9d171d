"""What the reference VO plugins share: images checked the way the built-in ``images`` plugin
checks its own (restrictions, CVMFS rebasing and real paths, existence). Their settings are
checked with ``glidein_plugins.spec.checks``."""

from __future__ import annotations

from collections.abc import Sequence

from glidein_plugins import Context, Image, paths
from glidein_plugins.container.image_checks import advertisable, resolve
from glidein_plugins.container.images import rebase_cvmfs, refusal, restrictions, under


def usable_images(context: Context, wanted: Sequence[tuple[str, str]], source: str,
                  timeout: float) -> list[Image]:
    """The ``(platform, uri)`` images that pass the built-in ``images`` plugin's checks, CVMFS
    ones replaced by their real paths; each refusal is a trace line with the reason."""
    root = context.cvmfs_root
    allowed = restrictions(context)
    candidates = []
    for platform, configured in wanted:
        uri = rebase_cvmfs(configured, root)
        why = refusal(uri, allowed, root)
        if why:
            context.note(f"{platform}: {configured} ({source}) refused: {why}", "warning")
        else:
            candidates.append((platform, uri))
    resolved = resolve(context, [uri for _, uri in candidates if under(uri, root)], root,
                       timeout)
    real = {uri: resolved.real.get(uri) or uri for _, uri in candidates}
    local = [path for path in real.values() if path.startswith("/")]
    found = paths.inspect(local, timeout, context.quiet_run, split_under=[root])
    usable = []
    for platform, uri in candidates:
        image = Image(platform, real[uri], source if real[uri] == uri else
                      f"{source}, configured as {uri}")
        why = found[image.uri].reason if image.uri in found else ""
        why = why or refusal(image.uri, allowed, root) or advertisable(image)
        if why:
            context.note(f"{platform}: {image.uri} ({source}) unusable: {why}", "warning")
        else:
            context.note(f"{platform}: {image.uri} ({source}) usable")
            usable.append(image)
    return usable
