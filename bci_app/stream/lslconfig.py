"""liblsl's own configuration file (``lsl_api.cfg``) for this process and its children.

liblsl reads its configuration once, on first use, from the file named by the ``LSLAPICFG``
environment variable (else ``./lsl_api.cfg``, ``~/lsl_api/lsl_api.cfg``,
``/etc/lsl_api/lsl_api.cfg``). Networks that block multicast need ``KnownPeers`` there;
``SessionID`` keeps two setups on one network apart. See ``docs/lsl_api.cfg``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bci_app.errors import InvalidArgument

__all__ = ["ENV_VAR", "use_lsl_config"]

log = logging.getLogger(__name__)

ENV_VAR = "LSLAPICFG"


def use_lsl_config(path: str | Path | None, replace: bool = True) -> Path | None:
    """Make liblsl read ``path`` (None: leave liblsl's search as it is); call before the first
    stream is resolved or opened: liblsl reads its configuration only once per process.
    Child processes inherit it. ``replace=False`` (a config file's field) leaves one already
    named by ``--lsl-config`` or the environment. Returns the absolute path, if used."""
    if path is None or (not replace and ENV_VAR in os.environ):
        return None
    config = Path(path).expanduser().resolve()
    if not config.is_file():
        raise InvalidArgument(
            f"LSL config file {path} does not exist; give the path of an lsl_api.cfg "
            "(an example: docs/lsl_api.cfg), or leave stream.lsl_config null"
        )
    try:
        config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"cannot read the LSL config file {config}: {exc}") from None
    previous = os.environ.get(ENV_VAR)
    if previous is not None and Path(previous) != config:
        log.warning("%s was %s; using %s", ENV_VAR, previous, config)
    os.environ[ENV_VAR] = str(config)
    return config
