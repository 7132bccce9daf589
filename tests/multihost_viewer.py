"""The viewer client of tests/test_multihost.py: what ``bci-app gui --attach TARGET`` runs (the
main window on a :class:`RemoteWorker`, offscreen), plus a JSON line per prediction and a
state line every 0.2 s in OUT, so that the test can compare them with the worker's log.

    python tests/multihost_viewer.py TARGET OUT.jsonl SECONDS
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt5 import QtCore  # noqa: E402

from bci_app.config import AppConfig  # noqa: E402
from bci_app.gui.app import application  # noqa: E402
from bci_app.gui.window import MainWindow  # noqa: E402
from bci_app.pipeline.remote import RemoteWorker  # noqa: E402


def main(target: str, out: str, seconds: float) -> int:
    app = application()
    config = AppConfig()
    view = RemoteWorker(config.model_copy(update={"stream": config.stream.model_copy(
        update={"resolve_timeout": 20.0})}), target)  # fmt: skip
    log = open(out, "w", buffering=1, encoding="utf-8")  # noqa: SIM115 (closed at exit)

    def on_prediction(prediction) -> None:
        session = None if view.worker is None else view.worker.session_id
        log.write(json.dumps({"kind": "prediction", "session": session,
                              "time": prediction.timestamp,
                              "probabilities": [float(p) for p in prediction.probabilities],
                              "weights_finite": bool(all(w == w for w in prediction.weights))})
                  + "\n")  # fmt: skip

    view.add_prediction_sink(on_prediction)
    window = MainWindow(config, view)

    def state() -> None:
        status = view.status()
        log.write(json.dumps({
            "kind": "state", "lost": view.lost, "rebinds": view.rebinds,
            "session": None if view.worker is None else view.worker.session_id,
            "stream": None if status is None else status.stream.state.value,
            "offsets": view.clock_offsets_s, "window_live": window.running,
            "shown": window.prediction_panel.shown is not None}) + "\n")  # fmt: skip

    timer = QtCore.QTimer()
    timer.timeout.connect(state)
    timer.start(200)
    QtCore.QTimer.singleShot(round(seconds * 1000), window.close)
    window.show()
    app.exec_()
    log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
