"""bci-app: real-time EEG BCI over Lab Streaming Layer."""

__version__ = "0.1.0"
