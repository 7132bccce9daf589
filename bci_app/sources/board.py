"""A BrainFlow board as LSL outlets: :class:`BoardStream` reads any board BrainFlow supports
(OpenBCI Cyton / Daisy / Ganglion, Muse, BrainBit, Unicorn, ..., and its synthetic board) and
publishes its EEG as a standard LSL outlet, plus its marker channel as a string marker outlet.

* EEG outlet: type ``"EEG"``, name ``settings.stream_name``, float32, the board's sampling rate,
  source_id ``brainflow-<board>[-<serial port>][-<ip address>]`` (:attr:`BoardSettings.source_id`);
  desc has ``<channels>`` (label from BrainFlow's board description or ``labels``, unit
  microvolts, type EEG) and ``<manufacturer>BrainFlow <board></manufacturer>``.
* Marker outlet (boards with a marker channel): type ``"Markers"``, name
  ``<stream_name>-markers``, one string channel, irregular rate, source_id ``<source_id>-markers``;
  each non-zero value of the marker channel (``BoardShim.insert_marker``) as text (``"3"``,
  ``"2.5"``), stamped with its sample's timestamp.

Every sample is stamped with BrainFlow's own timestamp (unix seconds, taken when the sample
reached the driver) moved onto the LSL clock by one offset, ``local_clock() - time.time()``,
measured when the stream starts.
"""

from __future__ import annotations

import atexit
import logging
import time
import warnings
import weakref
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import pylsl
from brainflow.board_shim import BoardIds, BoardShim, BrainFlowError, BrainFlowInputParams
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bci_app.errors import InvalidArgument, UserError
from bci_app.io.lslinfo import make_stream_info
from bci_app.lifecycle import STOP_TIMEOUT_S, Background

__all__ = ["BOARDS", "BoardDescription", "BoardSettings", "BoardStream", "describe_board"]

log = logging.getLogger(__name__)

#: BoardIds that are not a device one can open by port or address (no board, BrainFlow's own
#: file playback and streaming boards, which need a master board and a file or multicast group).
_NOT_DEVICES = {BoardIds.NO_BOARD, BoardIds.PLAYBACK_FILE_BOARD, BoardIds.STREAMING_BOARD}
STALL_WARNING_S = 2.0  # no sample for this long: one warning that the board sends nothing


def _board_key(name: str) -> str:
    """``CYTON_DAISY_BOARD``, ``cyton_daisy``, ``cyton-daisy-board`` -> ``cyton-daisy``."""
    return name.strip().lower().replace("_", "-").removesuffix("-board")


#: Board name (BrainFlow's enum name lower-cased, ``-`` for ``_``, no ``-board``) -> BoardIds.
BOARDS: dict[str, BoardIds] = {
    _board_key(board.name): board for board in BoardIds if board not in _NOT_DEVICES
}


def _brainflow_logging() -> None:
    """BrainFlow's own logger follows ours: on at DEBUG, else off (it writes to stderr). The
    first call loads BrainFlow's library."""
    with warnings.catch_warnings():
        # brainflow (<= 5.23) finds its library through the deprecated pkg_resources on Python
        # < 3.12; the warning says nothing a user of bci-app can act on.
        warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
        if log.isEnabledFor(logging.DEBUG):
            BoardShim.enable_dev_board_logger()
        else:
            BoardShim.disable_board_logger()


@dataclass(frozen=True)
class BoardDescription:
    """What BrainFlow's board description says about one board (rows index the arrays
    ``BoardShim.get_board_data`` returns)."""

    name: str  # BrainFlow's own name of the board, e.g. "Cyton"
    rate_hz: float  # sampling rate
    eeg_rows: tuple[int, ...]
    labels: tuple[str, ...]  # EEG channel labels; "EEG1"... where BrainFlow names none
    timestamp_row: int  # unix seconds per sample
    marker_row: int | None  # None: the board has no marker channel


def describe_board(board: str) -> BoardDescription:
    """The description of board ``board`` (a name of :data:`BOARDS`); raises
    :class:`~bci_app.errors.UserError` for a board without EEG channels."""
    _brainflow_logging()
    descr = BoardShim.get_board_descr(BOARDS[board].value)
    rows = tuple(descr.get("eeg_channels", ()))
    if not rows:
        raise UserError(
            f"BrainFlow board {board!r} ({descr.get('name', '?')}) has no EEG channels; "
            "choose an EEG board"
        )
    names = [n.strip() for n in descr.get("eeg_names", "").split(",") if n.strip()]
    if len(names) != len(rows):
        names = [f"EEG{i + 1}" for i in range(len(rows))]
    return BoardDescription(
        name=descr.get("name", board),
        rate_hz=float(descr["sampling_rate"]),
        eeg_rows=rows,
        labels=tuple(names),
        timestamp_row=descr["timestamp_channel"],
        marker_row=descr.get("marker_channel"),
    )


class BoardSettings(BaseModel):
    """Which BrainFlow board to read and how to publish it; validated, frozen.

    ``board``: a name of :data:`BOARDS` (BrainFlow's ``BoardIds`` name lower-cased with ``-``
    for ``_``, e.g. ``cyton-daisy``; ``CYTON_DAISY_BOARD`` is accepted too). ``serial_port``
    (e.g. ``/dev/ttyUSB0``) or ``ip_address`` as the board needs. ``labels``: EEG channel
    labels instead of BrainFlow's (one per EEG channel). ``name``: LSL stream name (default
    ``brainflow-<board>``). ``poll_s``: seconds between reads of BrainFlow's buffer.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    board: str
    serial_port: Annotated[str, Field(min_length=1)] | None = None
    ip_address: Annotated[str, Field(min_length=1)] | None = None
    labels: tuple[Annotated[str, Field(min_length=1)], ...] | None = None
    name: Annotated[str, Field(min_length=1)] | None = None
    poll_s: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.02

    @field_validator("board")
    @classmethod
    def _known_board(cls, board: str) -> str:
        key = _board_key(board)
        if key not in BOARDS:
            raise ValueError(
                f"unknown BrainFlow board {board!r}; valid boards: {', '.join(BOARDS)}"
            )
        return key

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, labels: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if labels is not None and len(set(labels)) != len(labels):
            raise ValueError(f"labels must be unique, got {', '.join(labels)}")
        return labels

    @model_validator(mode="after")
    def _one_label_per_channel(self) -> BoardSettings:
        if self.labels is not None:
            board = describe_board(self.board)
            if len(self.labels) != len(board.labels):
                raise ValueError(
                    f"labels: {len(self.labels)} given ({', '.join(self.labels)}) but board "
                    f"{self.board!r} has {len(board.labels)} EEG channels (BrainFlow calls them "
                    f"{', '.join(board.labels)}); give one label per EEG channel"
                )
        return self

    @property
    def board_id(self) -> int:
        """BrainFlow's ``BoardIds`` value of :attr:`board`."""
        return BOARDS[self.board].value

    @property
    def stream_name(self) -> str:
        return self.name or f"brainflow-{self.board}"

    @property
    def source_id(self) -> str:
        """``brainflow-<board>`` plus the serial port and the ip address where given, so that a
        restarted board is found again and two boards of one kind stay apart."""
        return "-".join(
            p for p in ("brainflow", self.board, self.serial_port, self.ip_address) if p
        )


_RUNNING: weakref.WeakSet[BoardStream] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """Stop streams still running at interpreter exit (release the board before liblsl and
    BrainFlow are torn down)."""
    for stream in list(_RUNNING):
        stream.stop()


class BoardStream(Background):
    """Runs a BrainFlow board as LSL outlets (see the module docstring) from a background
    thread that reads BrainFlow's buffer every ``settings.poll_s`` seconds.

    :meth:`start` opens the board (``prepare_session``, ``start_stream``): a missing device, a
    busy port or a wrong address is a :class:`~bci_app.errors.UserError` naming the board and
    the port or address. :meth:`stop` joins the thread within 2 s, pushes what was left and
    releases the board's session.
    """

    def __init__(self, settings: BoardSettings) -> None:
        super().__init__()
        self._settings = settings
        self._board_info = describe_board(settings.board)
        self.name = f"BoardStream[{settings.source_id}]"
        self._board: BoardShim | None = None
        self._outlet: pylsl.StreamOutlet | None = None
        self._marker_outlet: pylsl.StreamOutlet | None = None
        self._clock_offset = 0.0
        self._samples = 0
        self._markers = 0

    # -- properties ---------------------------------------------------------------------------
    @property
    def settings(self) -> BoardSettings:
        return self._settings

    @property
    def description(self) -> BoardDescription:
        return self._board_info

    @property
    def source_id(self) -> str:
        return self._settings.source_id

    @property
    def marker_source_id(self) -> str | None:
        """source_id of the marker outlet; None for a board without a marker channel."""
        return None if self._board_info.marker_row is None else self.source_id + "-markers"

    @property
    def marker_stream_name(self) -> str | None:
        return None if self._board_info.marker_row is None else self.stream_name + "-markers"

    @property
    def stream_name(self) -> str:
        return self._settings.stream_name

    @property
    def labels(self) -> tuple[str, ...]:
        """EEG channel labels of the outlet (``settings.labels`` or BrainFlow's)."""
        return self._settings.labels or self._board_info.labels

    @property
    def rate_hz(self) -> float:
        return self._board_info.rate_hz

    @property
    def samples_pushed(self) -> int:
        return self._samples

    @property
    def markers_pushed(self) -> int:
        return self._markers

    def insert_marker(self, value: float) -> None:
        """Write ``value`` (non-zero) into the board's marker channel at the next sample
        (``BoardShim.insert_marker``); it comes out on the marker outlet."""
        if self._board is None:
            raise RuntimeError(f"{self.name} is not started")
        try:
            self._board.insert_marker(value)
        except BrainFlowError as exc:
            raise InvalidArgument(f"cannot insert marker {value!r}: {exc}") from None

    # -- lifecycle ----------------------------------------------------------------------------
    def _where(self) -> str:
        s = self._settings
        where = [f"on serial port {s.serial_port}"] if s.serial_port else []
        where += [f"at ip address {s.ip_address}"] if s.ip_address else []
        return " ".join(where)

    def _hint(self) -> str:
        s = self._settings
        if s.serial_port:
            return (
                "check the dongle is plugged in, the board is switched on and no other "
                "program holds the port (--serial-port)"
            )
        if s.ip_address:
            return "check the board is on and reachable at that address (--ip-address)"
        return (
            "check the board is on and in range and no other program is connected to it; "
            "a board on a dongle or a network needs --serial-port or --ip-address"
        )

    def _open_error(self, exc: BrainFlowError) -> UserError:
        where = self._where()
        return UserError(
            f"cannot open board {self._settings.board!r}{' ' + where if where else ''}: {exc}; "
            f"{self._hint()}"
        )

    def _setup(self) -> BoardStream:
        """Open the board, create the outlets and start the read thread. Returns ``self``."""
        s, board_info = self._settings, self._board_info
        params = BrainFlowInputParams()
        params.serial_port = s.serial_port or ""
        params.ip_address = s.ip_address or ""
        _brainflow_logging()
        self._board = BoardShim(s.board_id, params)
        try:
            self._board.prepare_session()
            self._board.start_stream()
        except BrainFlowError as exc:
            raise self._open_error(exc) from None
        manufacturer = f"BrainFlow {s.board}"
        info = make_stream_info(
            s.stream_name,
            "EEG",
            s.source_id,
            rate_hz=board_info.rate_hz,
            labels=self.labels,
            unit="microvolts",
            manufacturer=manufacturer,
        )
        self._outlet = pylsl.StreamOutlet(info, max_buffered=60)
        if board_info.marker_row is not None:
            markers = make_stream_info(
                s.stream_name + "-markers",
                "Markers",
                s.source_id + "-markers",
                channel_format="string",
                n_channels=1,
                manufacturer=manufacturer,
            )
            self._marker_outlet = pylsl.StreamOutlet(markers)
        # BrainFlow stamps each sample in unix seconds when it reached the driver; one offset
        # onto the LSL clock keeps those stamps, so a dropout stays a gap downstream (counting
        # samples would hide it).
        self._clock_offset = pylsl.local_clock() - time.time()
        self._spawn(self._loop, self.name)
        _RUNNING.add(self)
        return self

    def _teardown(self) -> None:
        board, self._board = self._board, None
        if board is not None and board.is_prepared():
            try:
                board.release_session()  # also stops the stream
            except BrainFlowError as exc:
                log.warning("%s: releasing the board failed: %s", self.name, exc)
        # Dropping the last references destroys the liblsl outlets (streams vanish).
        self._outlet = None
        self._marker_outlet = None
        _RUNNING.discard(self)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Stop the thread (joins within ``timeout`` s), release the board and destroy the
        outlets. Idempotent."""
        return super().stop(timeout)

    # -- thread -------------------------------------------------------------------------------
    def _loop(self) -> None:
        last_data = time.monotonic()
        stalled = False
        while True:
            stopping = self._wait_stop(self._settings.poll_s)
            try:
                data = self._board.get_board_data()  # type: ignore[union-attr]
            except BrainFlowError as exc:
                raise UserError(f"board {self._settings.board!r} stopped: {exc}") from None
            if data.shape[1]:
                self._push(data)
                last_data, stalled = time.monotonic(), False
            elif not stalled and time.monotonic() - last_data > STALL_WARNING_S:
                stalled = True
                log.warning(
                    "board %r sent no data for %.0f s; is it on and in range?",
                    self._settings.board,
                    STALL_WARNING_S,
                )
            if stopping:  # the last read above pushed what was left
                return

    def _push(self, data: np.ndarray) -> None:
        """Push one ``get_board_data()`` array (rows x samples, float64) to the outlets."""
        board_info = self._board_info
        eeg = np.ascontiguousarray(data[list(board_info.eeg_rows)].T, dtype=np.float32)
        stamps = data[board_info.timestamp_row] + self._clock_offset
        self._outlet.push_chunk(eeg, stamps.tolist())  # type: ignore[union-attr]
        self._samples += eeg.shape[0]
        if board_info.marker_row is not None:
            values = data[board_info.marker_row]
            for i in np.flatnonzero(values):
                self._marker_outlet.push_sample([f"{values[i]:g}"], stamps[i])  # type: ignore[union-attr]
                self._markers += 1
