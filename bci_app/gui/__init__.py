"""Qt GUI: live traces, prediction, electrode weights and latency of a running pipeline.

Entry points: :func:`bci_app.gui.app.run_gui` (the CLI), :class:`bci_app.gui.window.MainWindow`
(tests, embedding) and :func:`bci_app.gui.bench.frame_benchmark`. Importing this package does
not import Qt; the modules below do.
"""
