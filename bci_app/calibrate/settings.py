"""What a calibration runs, validated once: trial :class:`Timings` (seconds) and the session's
:class:`CalibrationSettings` (classes, trial counts, output folder, training, what it leaves
besides the model: the session report and a BIDS export)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bci_app.calibrate.speller import SpellerSettings
from bci_app.config import DECODER_CHOICES
from bci_app.export.bids import check_label

__all__ = [
    "DEFAULT_BIDS_SUBJECT",
    "DEFAULT_BIDS_TASK",
    "REPORT_NAME",
    "CalibrationSettings",
    "Timings",
    "check_classes",
]

Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]

#: The session report, in the calibration's output folder (next to ``model/``).
REPORT_NAME = "report.html"
#: BIDS entities of a calibration's export unless given (``--bids-subject``, ``--bids-task``).
DEFAULT_BIDS_SUBJECT = "01"
DEFAULT_BIDS_TASK = "calibration"


def check_classes(classes: list[str] | tuple[str, ...], trials_per_class: int) -> None:
    """Raise ValueError unless ``classes`` are >= 2 distinct plain names and
    ``trials_per_class`` >= 1."""
    if len(classes) < 2:
        raise ValueError(f"a calibration needs at least 2 classes, got {list(classes)}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct, got {list(classes)}")
    if any(not c or c.startswith("bci-app:") or ":" in c for c in classes):
        raise ValueError(f"class names must be non-empty and hold no ':', got {list(classes)}")
    if not (isinstance(trials_per_class, int) and trials_per_class >= 1):
        raise ValueError(f"trials per class must be an integer >= 1, got {trials_per_class!r}")


class Timings(BaseModel):
    """Trial timing in seconds; defaults close to EEGMMIDB / Graz (2 s fixation, 4 s imagery,
    1.5-2.5 s rest)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fixation_s: Seconds = 2.0
    imagery_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 4.0
    rest_min_s: Seconds = 1.5
    rest_max_s: Seconds = 2.5

    @model_validator(mode="after")
    def _rest_ordered(self) -> Timings:
        if self.rest_max_s < self.rest_min_s:
            raise ValueError(
                f"rest_max_s ({self.rest_max_s}) must be >= rest_min_s ({self.rest_min_s})"
            )
        return self

    @property
    def mean_trial_s(self) -> float:
        return self.fixation_s + self.imagery_s + (self.rest_min_s + self.rest_max_s) / 2


class CalibrationSettings(BaseModel):
    """What the calibration runs: ``trials_per_class`` valid trials of each class, then (with
    ``feedback_trials`` > 0) as many feedback trials per class. ``out_dir`` receives
    ``calibration.xdf``, ``model/``, ``report.html`` (unless ``report`` is False) and
    ``feedback.xdf``. With ``bids_root``, ``calibration.xdf`` is exported there as
    ``sub-<bids_subject>[_ses-<bids_session>]_task-<bids_task>`` once it is closed (the labels:
    letters and digits, checked here)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    classes: tuple[str, ...]
    trials_per_class: StrictInt
    out_dir: Path
    timings: Timings = Timings()
    seed: StrictInt = 0
    feedback_trials: Annotated[StrictInt, Field(ge=0)] = 0
    epochs: Annotated[StrictInt, Field(ge=1)] = 30  # the network's (the recipe's default)
    cv_folds: Annotated[StrictInt, Field(ge=2)] = 5  # for a named decoder; auto folds its own way
    # auto: chosen on this calibration alone (leave one run out / stratified folds)
    decoder: Literal[DECODER_CHOICES] = "auto"  # runtime Literal of the tuple's values
    auto_feedback: bool = False  # start feedback as soon as the model is trained
    close_when_done: bool = False
    report: bool = True  # write report.html with the trained model (in the background)
    bids_root: Path | None = None  # export calibration.xdf there as BIDS-EEG at the end
    bids_subject: str = DEFAULT_BIDS_SUBJECT
    bids_session: str | None = None
    bids_task: str = DEFAULT_BIDS_TASK
    #: p300: the copy-spelling calibration (``speller.text``: its characters, one trial each;
    #: ``classes``: target and non-target flashes), then ``feedback_trials`` characters of
    #: free spelling with the model just trained. The trial timings are unused.
    paradigm: Literal["mi", "p300"] = "mi"
    speller: SpellerSettings | None = None

    @field_validator("classes")
    @classmethod
    def _plain_classes(cls, classes: tuple[str, ...]) -> tuple[str, ...]:
        check_classes(classes, 1)
        return classes

    @field_validator("trials_per_class")
    @classmethod
    def _some_trials(cls, trials: int) -> int:
        if trials < 1:
            raise ValueError(f"trials per class must be an integer >= 1, got {trials!r}")
        return trials

    @field_validator("bids_subject", "bids_session", "bids_task")
    @classmethod
    def _bids_label(cls, value: str | None, info: ValidationInfo) -> str | None:
        return check_label(value, "--" + info.field_name.replace("_", "-"))

    @model_validator(mode="after")
    def _paradigm(self) -> CalibrationSettings:
        if self.paradigm == "p300":
            if self.speller is None or self.speller.text is None:
                raise ValueError(
                    "a P300 calibration is copy spelling: give the text to copy (--copy TEXT)"
                )
            if self.trials_per_class != len(self.speller.text):
                raise ValueError(
                    f"a P300 calibration's trials are the {len(self.speller.text)} characters "
                    f"of its copy text, got trials_per_class={self.trials_per_class}"
                )
        elif self.speller is not None:
            raise ValueError("speller settings belong to a p300 calibration (paradigm='p300')")
        return self

    def free_spelling(self) -> SpellerSettings:
        """The speller after training (p300): ``feedback_trials`` characters of free spelling,
        timed as the copy spelling, its flash order seeded apart."""
        if self.speller is None:
            raise ValueError("only a p300 calibration spells")
        return SpellerSettings(
            **self.speller.model_dump(exclude={"text", "characters", "seed"}),
            characters=self.feedback_trials or None,
            seed=self.speller.seed + 1,
        )

    @property
    def calibration_xdf(self) -> Path:
        return self.out_dir / "calibration.xdf"

    @property
    def feedback_xdf(self) -> Path:
        return self.out_dir / "feedback.xdf"

    @property
    def model_dir(self) -> Path:
        return self.out_dir / "model"

    @property
    def report_html(self) -> Path:
        return self.out_dir / REPORT_NAME
