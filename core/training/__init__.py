"""Training: a config, batches, a trainer whose loop reads top to bottom, and a progress snapshot.

    config.py      TrainConfig, its choices as Literal types, the presets
    batches.py     three batch sources behind one protocol; Preprocess; the feature cache
    schedule.py    optimiser and learning-rate schedule (stepped in one place)
    evaluation.py  the training loss and the evaluation of a split
    progress.py    the frozen Progress every subscriber reads; the hook names; StopTraining
    trainer.py     Trainer (the loop), the out-of-memory restart policy, fit()
    ranks.py       every rank's own part of a distributed run's training state, gathered for its checkpoint
"""

from core.training.batches import (
    BatchSource,
    DeviceBatches,
    HeadView,
    LoaderBatches,
    Preprocess,
    augmentation_preview,
    epoch,
    feature_cache,
    make_batches,
    training_order,
    training_steps,
)
from core.training.config import (
    OPTIMIZERS,
    PRESETS,
    SCHEDULES,
    STRATEGIES,
    Optimizer,
    Schedule,
    Strategy,
    TrainConfig,
    config_dict,
    config_from_dict,
    preset,
)
from core.training.evaluation import Evaluation, evaluate, model_num_classes, training_loss
from core.training.progress import LOG_EVERY, Callback, EpochFigures, Progress, Status, StopTraining, TestFigures, Which
from core.training.trainer import (
    FitResult,
    Trainer,
    build_model,
    fit,
    is_out_of_memory,
    restart_on_out_of_memory,
    training_input_size,
)

__all__ = [
    "LOG_EVERY", "OPTIMIZERS", "PRESETS", "SCHEDULES", "STRATEGIES", "BatchSource", "Callback", "DeviceBatches",
    "EpochFigures", "Evaluation", "FitResult", "HeadView", "LoaderBatches", "Optimizer", "Preprocess", "Progress",
    "Schedule", "Status", "StopTraining", "Strategy", "TestFigures", "TrainConfig", "Trainer", "Which",
    "augmentation_preview", "build_model", "config_dict", "config_from_dict", "epoch", "evaluate", "feature_cache",
    "fit", "is_out_of_memory", "make_batches", "model_num_classes", "preset", "restart_on_out_of_memory",
    "training_input_size", "training_loss", "training_order", "training_steps",
]
